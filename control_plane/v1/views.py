"""The v1 jobs API: videos with metadata, jobs with stages, results, cancel, SSE.

Responses use the `{success, message, data}` envelope; errors `{success: false, error}`
(control_plane/errors.py). Same service layer, jobs and videos as the reels API.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from control_plane import envelope
from control_plane.clips.views import stored_response
from control_plane.deps import (
    JobsReadAccount,
    JobsWriteAccount,
    SessionDep,
    SettingsDep,
    StorageDep,
    UploadsAccount,
    public_url,
)
from control_plane.errors import ApiError
from control_plane.jobs import service, shapes
from control_plane.jobs.events import job_updates
from control_plane.jobs.pipeline import PipelineReady
from control_plane.jobs.schemas import parse_options
from control_plane.styles import service as styles
from control_plane.v1 import results
from control_plane.videos import service as videos
from control_plane.webhooks import service as webhooks
from reelfarm.models.jobs import Job
from reelfarm.models.videos import Video
from reelfarm.states import JobStatus

router = APIRouter(prefix="/api/v1", tags=["v1"])

# The document's `config.quality`, as x264 effort (the encode's preset).
QUALITY_PRESETS = {"low": "ultrafast", "medium": "veryfast", "high": "medium"}


def _video_data(video: Video, request: Request) -> dict:
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
            "format": videos.video_format(video),  # "mp4", not ffprobe's "mov,mp4,m4a,3gp,3g2,mj2"
        },
        "uploaded_at": shapes.iso(video.created_at),
        # The original's bytes, fetched with the caller's own credentials (GET /videos/{id}/file).
        "storage_url": public_url(request, f"/api/v1/videos/{video.id}/file"),
    }


class NewJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(max_length=64)
    config: dict = Field(default_factory=dict,
                         description="ProcessOptions fields, plus quality and style (an inline Style DNA to apply)")
    webhook_url: str | None = Field(None, max_length=2000)
    template_video_id: str | None = Field(None, max_length=64,
                                          description="Apply this uploaded video's Style DNA (docs/style-dna.md)")


@router.post("/videos/upload", summary="Upload a video (multipart `file`); returns its ffprobe metadata")
async def upload_video(request: Request, account: UploadsAccount, session: SessionDep, settings: SettingsDep,
                       storage: StorageDep):
    def check_fields(fields: dict[str, str]):  # before the file is stored: a bad template keeps nothing
        return styles.template_video(session=session, account=account, video_id=fields.get("template_video_id"),
                                     field="template_video_id")  # fmt: skip

    received = await videos.receive_video(request, session=session, account=account, settings=settings,
                                          storage=storage, file_field="file", missing_message="file required",
                                          check_fields=check_fields)  # fmt: skip
    if received.checked is not None:
        received.video.template_video_id = received.checked.id
    session.commit()
    return envelope.ok("Video uploaded successfully", _video_data(received.video, request))


# Media types of the containers a video may be in (videos.container_format); anything else is plain bytes.
VIDEO_MEDIA_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "m4a": "audio/mp4", "3gp": "video/3gpp",
                     "3g2": "video/3gpp2", "webm": "video/webm", "matroska": "video/x-matroska",
                     "avi": "video/x-msvideo", "mpegts": "video/mp2t"}  # fmt: skip


@router.get("/videos/{video_id}/file", summary="The uploaded video's original bytes (its `storage_url`)",
            response_class=Response)
def get_video_file(video_id: str, request: Request, account: JobsReadAccount, session: SessionDep,
                   storage: StorageDep):
    video = videos.get_video(session=session, account=account, video_id=video_id)  # 404 for another account's
    # A video's bytes never change under its id (stored by SHA-256): cacheable for good, by the caller only.
    return stored_response(request, storage, sha256=video.sha256, key=video.storage_key, size_bytes=video.size_bytes,
                           content_type=VIDEO_MEDIA_TYPES.get(videos.video_format(video) or "",
                                                              "application/octet-stream"))  # fmt: skip


@router.get("/videos/{video_id}/style",
            summary="The video's Style DNA, extracted if needed: 202 while it is being extracted (the first call "
                    "asks for it), then 200 with the DNA; 422 once if the extraction failed (a later call retries)")
def get_video_style(video_id: str, account: JobsReadAccount, session: SessionDep):
    video = videos.get_video(session=session, account=account, video_id=video_id)  # 404 for another account's
    style = styles.video_style(session=session, video=video)  # a request for the scheduler when there is no DNA
    if style.dna is not None:
        return envelope.ok("Style retrieved", {"video_id": video.id, "style_json": style.dna})
    if style.error is not None:
        raise ApiError(422, f"style extraction failed: {style.error} (GET it again to retry)")
    return JSONResponse(envelope.ok("Style is being extracted", {"video_id": video.id, "status": "extracting",
                                                                 "style_json": None}), status_code=202)  # fmt: skip


@router.post("/jobs", summary="Create a processing job for an uploaded video")
def create_job(body: NewJob, request: Request, account: JobsWriteAccount, _pipeline: PipelineReady, session: SessionDep,
               settings: SettingsDep):
    video = videos.get_video(session=session, account=account, video_id=body.video_id)
    config = dict(body.config)
    quality = config.pop("quality", None)
    if quality is not None and quality not in QUALITY_PRESETS:
        raise ApiError(400, f"config.quality: must be one of {list(QUALITY_PRESETS)}")
    inline = styles.inline_style(config.pop("style", None))
    options = parse_options(config)
    if body.webhook_url is not None:
        webhooks.check_webhook_url(body.webhook_url, settings=settings)  # 400 `webhook_url: ...`
    template = styles.template_video(session=session, account=account, field="template_video_id",
                                     video_id=body.template_video_id or video.template_video_id)  # fmt: skip
    overrides = {"x264_preset": QUALITY_PRESETS[quality]} if quality else {}
    if (style := styles.style_request(template=template, inline=inline)) is not None:
        # The template's shape unless the job asks for its own (docs/style-dna.md).
        style["aspect_from_template"] = "aspectRatio" not in config
        overrides["style"] = style
    job = service.create_job(session=session, account=account, video=video, options=options, settings=settings,
                             plans=request.app.state.plans, api="v1", webhook_url=body.webhook_url,
                             render_overrides=overrides)  # fmt: skip
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
    return envelope.ok("Job result retrieved", results.job_result(session=session, job=job))


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
