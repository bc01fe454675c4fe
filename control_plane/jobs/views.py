"""Reels endpoints for uploads and jobs: HTTP translation over jobs.service."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from control_plane.accounts import service as accounts
from control_plane.deps import (
    JobsReadAccount,
    SessionDep,
    SettingsDep,
    StorageDep,
    UploadsAccount,
    api_key_from,
    principal_from,
)
from control_plane.errors import ApiError
from control_plane.jobs import service, shapes
from control_plane.jobs.pipeline import PipelineReady
from control_plane.jobs.schemas import parse_options
from control_plane.routing import PlainRoute
from control_plane.videos import service as videos
from reelfarm.options import ProcessOptions

router = APIRouter(prefix="/api", tags=["reels"])
# The endpoint clients poll; main.py includes this router first (control_plane/routing.py says why).
status_router = APIRouter(prefix="/api", tags=["reels"], route_class=PlainRoute)


@router.post(
    "/upload",
    summary="Upload a video (multipart: `video` file + `options` JSON) and start a job",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["video"],
                        "properties": {
                            "video": {"type": "string", "format": "binary"},
                            "options": {"type": "string", "description": "JSON-encoded ProcessOptions"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request, account: UploadsAccount, _pipeline: PipelineReady, session: SessionDep, settings: SettingsDep,
    storage: StorageDep,
):
    parsed: dict[str, ProcessOptions] = {}

    def on_field(name: str, value: str) -> None:
        if name == "options":
            parsed["options"] = parse_options(value)

    received = await videos.receive_video(request, session=session, account=account, settings=settings,
                                          storage=storage, file_field="video", missing_message="video file required",
                                          on_field=on_field)  # fmt: skip
    video = received.video
    job = service.create_job(session=session, account=account, video=video,
                             options=parsed.get("options") or ProcessOptions(), settings=settings,
                             plans=request.app.state.plans)  # fmt: skip
    request.app.state.job_listener(job.id)
    return {
        "jobId": job.id,
        "originalName": job.original_name,
        "sizeBytes": video.size_bytes,
        "wsUrl": f"/ws?jobId={job.id}",
        "options": job.options,
    }


@router.get("/jobs", summary="List the account's jobs, newest first")
def list_jobs(account: JobsReadAccount, session: SessionDep):
    jobs = service.list_jobs(session=session, account=account)
    return {"jobs": [service.job_view(session=session, job=j, with_tasks=False) for j in jobs]}


@status_router.get("/jobs/{job_id}", summary="A job's status, stage and progress")
async def get_job(request: Request, job_id: str) -> Response:
    reads = request.app.state.job_status_reads
    plaintext = api_key_from(request)
    if plaintext is None or not reads.enabled:
        return await run_in_threadpool(_get_job_orm, request, job_id)
    # The polled path: one statement, no thread hop (jobs/status_reads.py).
    row = await reads.read(key_hash=accounts.hash_key(plaintext), job_id=job_id)
    if row is None:
        raise ApiError(401, accounts.INVALID_KEY, headers={"WWW-Authenticate": "Bearer"})
    scopes = tuple(row.scopes or accounts.SCOPES)
    request.state.api_scopes = " ".join(scopes)
    if not request.app.state.plans.of(row.plan).api_access:
        raise ApiError(403, accounts.NO_API_ACCESS)
    if "jobs:read" not in scopes:
        raise ApiError(403, accounts.missing_scope("jobs:read"))
    if row.job is None:
        raise ApiError(404, "job not found")
    return Response(orjson.dumps(shapes.reels_job(row.job, clip_count=row.clip_count, tasks=row.tasks)),
                    media_type="application/json")


def _get_job_orm(request: Request, job_id: str) -> JSONResponse:
    """Cookie logins and non-PostgreSQL databases: the ORM, in one thread hop."""
    with request.app.state.session_factory() as session:
        principal = principal_from(request, session)
        accounts.require_scope(principal, "jobs:read")
        job = service.get_job(session=session, account=principal.account, job_id=job_id)
        return JSONResponse(service.job_view(session=session, job=job))
