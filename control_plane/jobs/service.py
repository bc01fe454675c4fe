"""Jobs: creation from an upload, lookup, listing and their public views."""

from __future__ import annotations

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from control_plane.accounts.service import owned
from control_plane.billing import quotas
from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from control_plane.jobs import shapes
from reelfarm import quotas as quota_counts
from reelfarm.campaigns import CAMPAIGN_API
from reelfarm.database import utcnow
from reelfarm.models import Account, Artifact, Job, Task, Video
from reelfarm.options import ProcessOptions
from reelfarm.settings import Settings
from reelfarm.states import JOB_MACHINE, TASK_KIND_ORDER, JobStatus, transition

# SQL rank of a task's kind in reelfarm.states.TASK_KIND_ORDER (the order a job's tasks run in).
TASK_KIND_RANK = case({str(kind): rank for rank, kind in enumerate(TASK_KIND_ORDER)}, value=Task.kind)


def render_settings(settings: Settings) -> dict:
    """Render choices fixed when a job is made, so a settings change never alters a running job."""
    return {
        "output_height": settings.output_height,
        "encoder": settings.encoder,
        "x264_preset": settings.x264_preset,
        "two_faces": settings.two_faces,
    }


def check_options_fit(options: ProcessOptions, video: Video) -> None:
    if options.trimStart >= video.duration_seconds:
        raise ApiError(400, f"options.trimStart: beyond the video's duration ({video.duration_seconds:.2f} s)")


def _charge_quota(*, session: Session, account: Account, options: ProcessOptions, plans: PlanBook) -> dict:
    """Charge a new job's videos (the most clips it can produce) to the monthly quota before its
    commit, 429 over quota; the charge as the Job's quota_month and quota_videos."""
    charge = quotas.charge_videos(session=session, account=account, videos=quota_counts.videos_for(options),
                                  plans=plans)  # fmt: skip
    return {"quota_month": charge.month, "quota_videos": charge.videos}


def create_job(
    *, session: Session, account: Account, video: Video, options: ProcessOptions, settings: Settings,
    plans: PlanBook, api: str = "reels", webhook_url: str | None = None, render_overrides: dict | None = None,
) -> Job:
    check_options_fit(options, video)
    charged = _charge_quota(session=session, account=account, options=options, plans=plans)
    job = Job(
        **charged,
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


def request_cancel(*, session: Session, account: Account, job_id: str) -> Job:
    """Record a cancel request; the scheduler cancels the job and its running tasks.

    Idempotent: asking again, or after the job was cancelled, changes nothing.
    """
    job = get_job(session=session, account=account, job_id=job_id)
    if job.status in (JobStatus.completed, JobStatus.failed):
        raise ApiError(409, f"job already {job.status}")
    if job.cancel_requested_at is None and job.status != JobStatus.cancelled:
        job.cancel_requested_at = utcnow()
        session.commit()
    return job


def listed_jobs(account_id: str, *columns, limit: int = 100) -> Select:
    """The query of an account's listing: its video jobs, newest first (a campaign's job is listed
    as its campaign, under /api/v1/campaigns); whole rows, or just `columns`."""
    return (select(*columns) if columns else select(Job)).where(
        Job.account_id == account_id, Job.api != CAMPAIGN_API
    ).order_by(Job.created_at.desc()).limit(limit)


def list_jobs(*, session: Session, account: Account, limit: int = 100) -> list[Job]:
    return list(session.scalars(listed_jobs(account.id, limit=limit)))


def job_view(*, session: Session, job: Job, with_tasks: bool = True) -> dict:
    """The reels API's job, from the ORM (the coalesced read builds the same: jobs/status_reads.py)."""
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
                                     .order_by(TASK_KIND_RANK, Task.task_index))
        ]  # fmt: skip
    return shapes.reels_job(shapes.JobSnapshot.of(job), clip_count=clip_count, tasks=tasks)


def create_url_job(
    *, session: Session, account: Account, source_url: str, original_name: str, options: ProcessOptions,
    settings: Settings, plans: PlanBook, api: str = "reels", webhook_url: str | None = None,
) -> Job:
    """A job whose video is still to be downloaded (control_plane/url_imports/downloads.py).

    It starts in `downloading` with no video, so the scheduler leaves it alone until the
    downloader attaches the video and moves it to `queued`. Its videos are charged now
    (given back if the download fails).
    """
    charged = _charge_quota(session=session, account=account, options=options, plans=plans)
    job = Job(
        **charged,
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
