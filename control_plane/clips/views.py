"""Reels endpoints for clips: the manifest and artifact downloads."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from control_plane.clips import service
from control_plane.deps import ClipsReadAccount, SessionDep, StorageDep
from control_plane.jobs.service import get_job

router = APIRouter(prefix="/api/clips", tags=["reels"])

# Artifacts are content-addressed: bytes under a name never change.
IMMUTABLE = "private, max-age=31536000, immutable"
STREAM_CHUNK = 1 << 20


@router.get("/{job_id}", summary="The generated-clips manifest (404 until the job is completed)")
def get_manifest(job_id: str, account: ClipsReadAccount, session: SessionDep):
    job = get_job(session=session, account=account, job_id=job_id)
    return service.manifest(session=session, job=job)


@router.get("/{job_id}/{filename}", summary="Download an artifact: clip_NN.mp4, clip_NN.jpg, clip_NN.ass, manifest.json")
def get_artifact(job_id: str, filename: str, request: Request, account: ClipsReadAccount,
                 session: SessionDep, storage: StorageDep):
    job = get_job(session=session, account=account, job_id=job_id)
    if filename == service.MANIFEST_NAME:
        return service.manifest(session=session, job=job)
    artifact = service.get_artifact(session=session, job=job, filename=filename)
    return artifact_response(artifact, request, storage)


def artifact_response(artifact, request: Request, storage) -> Response:
    """An artifact's bytes with its ETag (the SHA-256) and immutable caching; 304 when unchanged."""
    etag = f'"{artifact.sha256}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    local = storage.local_file(artifact.storage_key)
    if local is not None:
        return FileResponse(local, media_type=artifact.content_type, headers=headers)

    def chunks():
        with storage.open_read(artifact.storage_key) as stream:
            while data := stream.read(STREAM_CHUNK):
                yield data

    headers["Content-Length"] = str(artifact.size_bytes)
    return StreamingResponse(chunks(), media_type=artifact.content_type, headers=headers)
