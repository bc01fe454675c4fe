"""The dev endpoints: projects, video upload, submit/poll clip generation, clips, summary."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from control_plane.clips.views import artifact_response
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
from control_plane.jobs import service as jobs
from control_plane.jobs import shapes
from control_plane.jobs.pipeline import PipelineReady
from control_plane.jobs.schemas import parse_options
from control_plane.projects import service
from control_plane.videos import service as videos
from reelfarm.states import ACTIVE_JOB_STATUSES

router = APIRouter(prefix="/api/dev", tags=["dev"])


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    accountId: str | None = Field(None, max_length=64, description="The workspace; defaults to the caller's")


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    videoId: str = Field(max_length=64)
    maxClips: int = Field(3, ge=1, le=10)
    minDuration: float = Field(30, ge=1, le=600)
    maxDuration: float = Field(60, ge=1, le=600)
    aspectRatio: str = Field("9:16", description="9:16 | 1:1 | 16:9 (4:5 too)")
    customInstructions: str = Field("", max_length=2000)


def _project(project) -> dict:
    return {"id": project.id, "name": project.name, "slug": project.slug, "accountId": project.account_id,
            "createdAt": project.created_at.isoformat()}  # fmt: skip


@router.post("/create-project", status_code=status.HTTP_201_CREATED, summary="Create a project (slug unique per account)")
def create_project(body: NewProject, account: UploadsAccount, session: SessionDep):
    service.check_account(account, body.accountId)
    return {"project": _project(service.create_project(session=session, account=account, name=body.name))}


@router.post("/upload-video", status_code=status.HTTP_201_CREATED,
             summary="Upload a video into a project (multipart: file, account_id, project_id); status uploaded")
async def upload_video(request: Request, account: UploadsAccount, session: SessionDep, settings: SettingsDep,
                       storage: StorageDep):
    def project_named(fields: dict[str, str]):
        service.check_account(account, fields.get("account_id"))
        if not fields.get("project_id"):
            raise ApiError(400, "project_id required")
        return service.get_project(session=session, account=account, project_id=fields["project_id"])

    received = await videos.receive_video(request, session=session, account=account, settings=settings,
                                          storage=storage, file_field="file", missing_message="file required",
                                          check_fields=project_named)  # fmt: skip
    video, project = received.video, received.checked
    video.project_id = project.id
    session.commit()
    return {"video": {"id": video.id, "title": video.original_name, "status": video.status,
                      "project_id": project.id, "duration_seconds": video.duration_seconds}}  # fmt: skip


@router.post("/process-video-submit", summary="Start clip generation for an uploaded video; returns a callId")
def submit(body: Submit, request: Request, account: JobsWriteAccount, _pipeline: PipelineReady, session: SessionDep,
           settings: SettingsDep):
    video = videos.get_video(session=session, account=account, video_id=body.videoId)
    options = parse_options({"numClips": body.maxClips, "minDuration": body.minDuration,
                             "maxDuration": body.maxDuration, "aspectRatio": body.aspectRatio,
                             "customInstructions": body.customInstructions})  # fmt: skip
    job = jobs.create_job(session=session, account=account, video=video, options=options, settings=settings,
                          plans=request.app.state.plans, api="dev")  # fmt: skip
    request.app.state.job_listener(job.id)
    return {"callId": job.id}


@router.get("/process-video-result", summary="202 while running, 200 with the result when done, 404 unknown call")
def result(callId: str, request: Request, account: JobsReadAccount, session: SessionDep, settings: SettingsDep):
    job = service.job_for_call(session=session, account=account, call_id=callId)
    if job.status in ACTIVE_JOB_STATUSES:
        return JSONResponse(shapes.dev_call_running(shapes.JobSnapshot.of(job)), status_code=202)
    video = videos.get_video(session=session, account=account, video_id=job.video_id)
    clips = [c for c in service.video_clips(session=session, video=video) if c[1].id == job.id]
    return {"callId": job.id, "status": job.status, "error": job.error, "videoId": video.id,
            "clips": [_clip(c, j, settings.secret_key, request) for c, j in clips]}  # fmt: skip


def _clip(clip, job, secret: str, request: Request) -> dict:
    metadata = clip.clip_metadata or {}
    return {
        "id": clip.id,
        "title": metadata.get("title") or f"{job.original_name} #{clip.clip_index}",
        "start_seconds": clip.start_seconds,
        "end_seconds": clip.end_seconds,
        "aspect_ratio": clip.aspect_ratio,
        "status": "ready",
        # Absolute (002 shows a full URL): the link works on its own, without the API's address.
        "preview_url": public_url(request, service.signed_preview_url(secret=secret, clip_id=clip.id)),
    }


@router.get("/videos/{video_id}/clips", summary="The video's rendered clips; preview_url is signed for one hour")
def list_clips(video_id: str, request: Request, account: JobsReadAccount, session: SessionDep, settings: SettingsDep):
    video = videos.get_video(session=session, account=account, video_id=video_id)
    return {"clips": [_clip(c, j, settings.secret_key, request)
                      for c, j in service.video_clips(session=session, video=video)]}  # fmt: skip


@router.get("/videos/{video_id}/summary", summary="The video's processing state and clip counts")
def summary(video_id: str, account: JobsReadAccount, session: SessionDep):
    video = videos.get_video(session=session, account=account, video_id=video_id)
    return service.video_summary(session=session, video=video)


@router.get("/preview/{clip_id}", summary="A clip by its signed preview URL (no other auth; expires after an hour)")
def preview(clip_id: str, expires: int, signature: str, request: Request, session: SessionDep,
            settings: SettingsDep, storage: StorageDep):
    service.verify_preview(secret=settings.secret_key, clip_id=clip_id, expires=expires, signature=signature)
    # The link is good for an hour: a cache may keep the bytes no longer than the link lives.
    remaining = max(0, int(expires - time.time()))
    return artifact_response(service.preview_artifact(session=session, clip_id=clip_id), request, storage,
                             cache_control=f"private, max-age={remaining}")  # fmt: skip
