"""POST /api/upload/url: a job from a video's URL, downloaded in the background."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from control_plane.deps import SessionDep, SettingsDep, UploadsAccount
from control_plane.errors import ApiError
from control_plane.jobs.pipeline import PipelineReady
from control_plane.jobs.schemas import parse_options
from control_plane.url_imports import downloads

router = APIRouter(prefix="/api", tags=["reels"])


class UrlUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Public http(s) URL: a media file (.mp4, .mov...) or a video page (yt-dlp)")
    options: dict | str | None = Field(None, description="ProcessOptions, as for /api/upload")


class UrlUploadAccepted(BaseModel):
    jobId: str
    originalName: str
    sizeBytes: int | None = Field(description="null until the download is done")
    wsUrl: str
    options: dict
    status: str = Field(description="downloading")


class ErrorOut(BaseModel):
    error: str


@router.post(
    "/upload/url",
    response_model=UrlUploadAccepted,
    responses={400: {"model": ErrorOut, "description": "missing or invalid url, refused address, bad options"}},
    summary="Start a job from a video's URL; it downloads in the background (poll GET /api/jobs/{jobId})",
)
def upload_url(request: Request, account: UploadsAccount, _pipeline: PipelineReady, session: SessionDep,
               settings: SettingsDep, body: UrlUpload | None = None):
    if body is None:
        raise ApiError(400, "url required (send JSON: {\"url\": ..., \"options\": {...}})")
    options = parse_options(body.options)
    job = downloads.submit_url(session=session, account=account, url=body.url, options=options, settings=settings,
                               plans=request.app.state.plans)
    request.app.state.downloads.submit(job.id)
    return {
        "jobId": job.id,
        "originalName": job.original_name,
        "sizeBytes": None,
        "wsUrl": f"/ws?jobId={job.id}",
        "options": job.options,
        "status": job.status,
    }
