"""The v1 jobs API: videos with metadata, jobs with stages, results, cancel, SSE.

Responses use the `{success, message, data}` envelope; errors `{success: false, error}`
(control_plane/errors.py). Same service layer, jobs and videos as the reels API.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from control_plane import envelope
from control_plane.clips import service as clips
from control_plane.deps import JobsReadAccount, JobsWriteAccount, SessionDep, SettingsDep, StorageDep, UploadsAccount
from control_plane.errors import ApiError
from control_plane.jobs import service, shapes
from control_plane.jobs.events import job_updates
from control_plane.jobs.schemas import parse_options
from control_plane.videos import service as videos
from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video
from reelfarm.states import JobStatus

router = APIRouter(prefix="/api/v1", tags=["v1"])

# The document's `config.quality`, as x264 effort (the encode's preset).
QUALITY_PRESETS = {"low": "ultrafast", "medium": "veryfast", "high": "medium"}


def _video_data(video: Video) -> dict:
    return {
        "video_id": video.id,
        "filename": video.original_name,
        "file_size_bytes": video.size_bytes,
        "metadata": {
            "width": video.width,
            "height": video.height,
            "duration_seconds": video.duration_seconds,
            "frame_rate": video.frame_rate,
            "codec": video.codec,
            "bitrate_kbps": (video.probe or {}).get("bitrate_kbps"),
            "format": (video.probe or {}).get("format"),
        },
        "uploaded_at": shapes.iso(video.created_at),
        # Content-addressed: the same bytes always have this address.
        "storage_url": f"sha256:{video.sha256}",
    }


class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(max_length=64)
    config: dict = Field(default_factory=dict, description="ProcessOptions fields, plus quality")
    webhook_url: str | None = Field(None, max_length=2000)


@router.post("/videos/upload", summary="Upload a video (multipart `file`); returns its ffprobe metadata")
async def upload_video(request: Request, account: UploadsAccount, session: SessionDep, settings: SettingsDep,
                       storage: StorageDep):
    received = await videos.receive_video(request, session=session, account=account, settings=settings,
                                          storage=storage, file_field="file", missing_message="file required")  # fmt: skip
    session.commit()
    return envelope.ok("Video uploaded successfully", _video_data(received.video))


@router.post("/jobs", summary="Create a processing job for an uploaded video")
def create_job(body: NewJob, request: Request, account: JobsWriteAccount, session: SessionDep, settings: SettingsDep):
    video = videos.get_video(session=session, account=account, video_id=body.video_id)
    config = dict(body.config)
    quality = config.pop("quality", None)
    if quality is not None and quality not in QUALITY_PRESETS:
        raise ApiError(400, f"config.quality: must be one of {list(QUALITY_PRESETS)}")
    options = parse_options(config)
    overrides = {"x264_preset": QUALITY_PRESETS[quality]} if quality else {}
    job = service.create_job(session=session, account=account, video=video, options=options, settings=settings,
                             api="v1", webhook_url=body.webhook_url, render_overrides=overrides)  # fmt: skip
    request.app.state.job_listener(job.id)
    return envelope.ok("Job created", _job(job))


def _job(job: Job) -> dict:
    return shapes.v1_job(shapes.JobSnapshot.of(job))


@router.get("/jobs/{job_id}", summary="A job's status, progress_percent and current_stage")
def get_job(job_id: str, account: JobsReadAccount, session: SessionDep):
    return envelope.ok("Job retrieved", _job(service.get_job(session=session, account=account, job_id=job_id)))


@router.get("/jobs/{job_id}/result", summary="The finished job's output (409 until it is completed)")
def get_result(job_id: str, account: JobsReadAccount, session: SessionDep):
    job = service.get_job(session=session, account=account, job_id=job_id)
    if job.status != JobStatus.completed:
        raise ApiError(409, f"job is not completed (status {job.status})")
    manifest = clips.manifest(session=session, job=job)
    data = {
        "job_id": job.id,
        "status": job.status,
        "progress_percent": 100,
        "output_video_url": manifest["clips"][0]["downloadUrl"] if manifest["clips"] else None,
        "processing_time_seconds": round((job.completed_at - job.created_at).total_seconds(), 3)
        if job.completed_at else None,
        "clips": manifest["clips"],
        # Style DNA arrives with its own issue: no style was extracted for this job.
        "style_json": None,
    }
    return envelope.ok("Job result retrieved", data)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job; its running tasks are stopped on their nodes")
def cancel_job(job_id: str, request: Request, account: JobsWriteAccount, session: SessionDep):
    job = service.request_cancel(session=session, account=account, job_id=job_id)
    request.app.state.job_listener(job.id)
    return envelope.ok("Job cancellation requested" if job.status != JobStatus.cancelled else "Job cancelled", _job(job))


@router.get("/jobs/{job_id}/events", summary="Server-sent events: the job's status, stage and progress as they change",
            response_class=StreamingResponse)
async def job_events(job_id: str, request: Request, account: JobsReadAccount, session: SessionDep):
    service.get_job(session=session, account=account, job_id=job_id)  # 404 before the stream starts
    session.close()  # the stream reads with its own sessions
    factory = request.app.state.session_factory

    async def stream():
        async for update in job_updates(factory, job_id):
            if await request.is_disconnected():
                return
            if update is None:
                yield ": keep-alive\n\n"
                continue
            yield f"event: job\ndata: {json.dumps(shapes.v1_event(update))}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
