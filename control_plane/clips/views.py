"""Reels endpoints for clips: the manifest and artifact downloads."""

from __future__ import annotations

import hashlib

import orjson
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
        # 001: artifacts are "served with long-lived cache headers"; a completed job's manifest never changes.
        body = orjson.dumps(service.manifest(session=session, job=job))
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)
    artifact = service.get_artifact(session=session, job=job, filename=filename)
    return artifact_response(artifact, request, storage)


def artifact_response(artifact, request: Request, storage, cache_control: str = IMMUTABLE) -> Response:
    """An artifact's bytes with its ETag (the SHA-256) and immutable caching; 304 when unchanged."""
    return stored_response(request, storage, sha256=artifact.sha256, key=artifact.storage_key,
                           size_bytes=artifact.size_bytes, content_type=artifact.content_type,
                           cache_control=cache_control)  # fmt: skip


def stored_response(request: Request, storage, *, sha256: str, key: str, size_bytes: int, content_type: str,
                    cache_control: str = IMMUTABLE) -> Response:  # fmt: skip
    """Stored bytes with their ETag (the SHA-256) and `cache_control`; 304 when unchanged."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    local = storage.local_file(key)
    if local is not None:
        return FileResponse(local, media_type=content_type, headers=headers)

    def chunks():
        with storage.open_read(key) as stream:
            while data := stream.read(STREAM_CHUNK):
                yield data

    headers["Content-Length"] = str(size_bytes)
    return StreamingResponse(chunks(), media_type=content_type, headers=headers)
