"""Jobs: creation from an upload, lookup, listing and their public views."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from control_plane.accounts.service import owned
from control_plane.errors import ApiError
from reelfarm.database import utcnow
from reelfarm.media import MediaError, probe
from reelfarm.models.accounts import Account
from reelfarm.models.clips import Artifact
from reelfarm.models.jobs import Job
from reelfarm.models.tasks import Task
from reelfarm.models.videos import Video
from reelfarm.options import ProcessOptions
from reelfarm.settings import Settings
from reelfarm.storage import BlobWriter

JobListener = Callable[[str], None]


def render_settings(settings: Settings) -> dict:
    """Render choices fixed when a job is made, so a settings change never alters a running job."""
    return {
        "output_height": settings.output_height,
        "encoder": settings.encoder,
        "x264_preset": settings.x264_preset,
        "two_faces": settings.two_faces,
    }


def create_video_from_upload(
    *, session: Session, account: Account, writer: BlobWriter, original_name: str
) -> Video:
    """Probe the uploaded bytes, then keep them content-addressed; 400 for anything not a video."""
    if writer.size_bytes == 0:
        writer.abort()
        raise ApiError(400, "video file is empty")
    try:
        info = probe(writer.temp_path)
    except MediaError as exc:
        writer.abort()
        # ffprobe names the file it read: the caller's name, not the server's spool path.
        reason = str(exc).replace(str(writer.temp_path), original_name).removeprefix("not a decodable video: ")
        raise ApiError(400, f"video file is not a decodable video: {reason}") from None
    blob = writer.commit()
    video = Video(
        account_id=account.id,
        original_name=original_name[:500],
        sha256=blob.sha256,
        size_bytes=blob.size_bytes,
        storage_key=blob.key,
        duration_seconds=info.duration_seconds,
        width=info.width,
        height=info.height,
        frame_rate=info.frame_rate,
        codec=info.codec,
        has_audio=info.has_audio,
        probe={"format": info.format_name, "bitrate_kbps": info.bitrate_kbps},
    )
    session.add(video)
    session.flush()
    return video


def check_options_fit(options: ProcessOptions, video: Video) -> None:
    if options.trimStart >= video.duration_seconds:
        raise ApiError(400, f"options.trimStart: beyond the video's duration ({video.duration_seconds:.2f} s)")


def create_job(
    *, session: Session, account: Account, video: Video, options: ProcessOptions, settings: Settings,
    api: str = "reels", webhook_url: str | None = None, render_overrides: dict | None = None,
) -> Job:
    check_options_fit(options, video)
    job = Job(
        account_id=account.id,
        video_id=video.id,
        original_name=video.original_name,
        options=options.model_dump(),
        render_settings={**render_settings(settings), **(render_overrides or {})},
        api=api,
        webhook_url=webhook_url,
    )
    session.add(job)
    session.commit()
    return job


def get_job(*, session: Session, account: Account, job_id: str) -> Job:
    return owned(session, Job, job_id, account, "job")


def get_video(*, session: Session, account: Account, video_id: str) -> Video:
    return owned(session, Video, video_id, account, "video")


def request_cancel(*, session: Session, account: Account, job_id: str) -> Job:
    """Record a cancel request; the scheduler cancels the job and its running tasks.

    Idempotent: asking again, or after the job was cancelled, changes nothing.
    """
    job = get_job(session=session, account=account, job_id=job_id)
    if job.status in ("completed", "failed"):
        raise ApiError(409, f"job already {job.status}")
    if job.cancel_requested_at is None and job.status != "cancelled":
        job.cancel_requested_at = utcnow()
        session.commit()
    return job


def list_jobs(*, session: Session, account: Account, limit: int = 100) -> list[Job]:
    return list(
        session.scalars(
            select(Job).where(Job.account_id == account.id).order_by(Job.created_at.desc()).limit(limit)
        )
    )


def millis(dt) -> int:
    return int(dt.timestamp() * 1000)


TASK_KIND_ORDER = case({"transcribe": 0, "analyze": 1}, value=Task.kind, else_=2)


def job_view(*, session: Session, job: Job, with_tasks: bool = True) -> dict:
    clip_count = session.scalar(
        select(func.count()).select_from(Artifact).where(Artifact.job_id == job.id, Artifact.filename.like("%.mp4"))
    )
    tasks = None
    if with_tasks:
        tasks = [
            {"kind": t.kind, "index": t.task_index, "state": t.state, "stage": t.stage,
             "progress_percent": t.progress_percent, "attempts": t.attempts, "error": t.error}
            # In the order they run: transcribe parts, face analysis, then clips.
            for t in session.scalars(select(Task).where(Task.job_id == job.id)
                                     .order_by(TASK_KIND_ORDER, Task.task_index))
        ]  # fmt: skip
    return render_job_view(
        job_id=job.id, original_name=job.original_name, status=job.status, stage=job.stage,
        progress_percent=job.progress_percent, error=job.error, created_at=job.created_at,
        updated_at=job.updated_at, options=job.options, clip_count=clip_count, tasks=tasks,
    )  # fmt: skip


def render_job_view(*, job_id: str, original_name: str, status: str, stage: str | None, progress_percent: float,
                    error: str | None, created_at, updated_at, options: dict, clip_count: int,
                    tasks: list[dict] | None) -> dict:
    """The reels API's job shape: the one place it is built (jobs/status_reads.py reads it too)."""
    view = {
        "id": job_id,
        "jobId": job_id,
        "originalName": original_name,
        "status": status,
        "stage": stage,
        "progress_percent": progress_percent,
        "error": error,
        "createdAt": millis(created_at),
        "updatedAt": millis(updated_at),
        "clipCount": clip_count,
        "posterUrl": f"/api/clips/{job_id}/clip_01.jpg" if clip_count else None,
        "options": options,
    }
    if tasks is not None:
        view["tasks"] = tasks
    return view


def create_url_job(
    *, session: Session, account: Account, source_url: str, original_name: str, options: ProcessOptions,
    settings: Settings, api: str = "reels", webhook_url: str | None = None,
) -> Job:
    """A job whose video is still to be downloaded (control_plane/url_imports/downloads.py).

    It starts in `downloading` with no video, so the scheduler leaves it alone until the
    downloader attaches the video and moves it to `queued`.
    """
    from reelfarm.states import JOB_MACHINE, JobStatus, transition

    job = Job(
        account_id=account.id,
        video_id=None,
        source_url=source_url,
        original_name=original_name[:500],
        status=str(JobStatus.queued),
        options=options.model_dump(),
        render_settings=render_settings(settings),
        api=api,
        webhook_url=webhook_url,
    )
    transition(JOB_MACHINE, job, JobStatus.downloading)
    session.add(job)
    session.commit()
    return job
