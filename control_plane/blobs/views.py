"""v1 blob endpoints: upload URLs, the local backend's upload/download URLs, asset reads."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from control_plane import envelope
from control_plane.blobs import service
from control_plane.deps import (
    AssetsReadAccount,
    AssetsWriteAccount,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from control_plane.errors import ApiError
from control_plane.uploads import BackgroundWrites
from reelfarm.storage import BlobTooLarge

router = APIRouter(prefix="/api/v1", tags=["v1 ingest"])


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class BlobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(min_length=64, max_length=64, description="hex SHA-256 of the exact bytes")
    content_type: str = Field(min_length=3, max_length=100)
    size_bytes: int = Field(gt=0)


class UploadUrlsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blobs: list[BlobSpec] = Field(min_length=1, max_length=1000)


@router.post("/blobs/upload_urls", summary="Presigned upload URLs for blobs (or: already stored)")
def upload_urls(body: UploadUrlsRequest, request: Request, account: AssetsWriteAccount, session: SessionDep,
                settings: SettingsDep, storage: StorageDep):  # fmt: skip
    answers = service.upload_urls(
        session=session, account=account, storage=storage, settings=settings, base_url=base_url(request),
        requests=[service.UploadRequest(b.sha256, b.content_type, b.size_bytes) for b in body.blobs],
    )
    return envelope.ok(f"{sum(a['status'] == 'upload_required' for a in answers)} to upload", {"blobs": answers})


@router.put("/blobs/uploads/{token}", summary="Receive a blob's bytes (local storage's presigned URL)")
async def receive_upload(token: str, request: Request, session: SessionDep, settings: SettingsDep,
                         storage: StorageDep):  # fmt: skip
    claims = service.upload_claims(settings=settings, token=token)
    sha, size, content_type = claims["s"], claims["n"], claims["t"]
    sent_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent_type != content_type:
        raise ApiError(403, f"upload URL refused: it was made for Content-Type {content_type}, not {sent_type or 'none'}")
    length = request.headers.get("content-length")
    if length is not None and length != str(size):
        raise ApiError(400, f"Content-Length {length[:20]} does not match the declared size_bytes {size}")
    writer = storage.open_writer(max_bytes=size)
    writes = BackgroundWrites(writer)
    try:
        try:
            async for chunk in request.stream():
                await writes.write(chunk)
            await writes.flush()
        except BlobTooLarge:
            raise ApiError(400, f"more bytes than the declared size_bytes {size}") from None
        except ClientDisconnect:
            raise ApiError(400, "upload interrupted: the client disconnected") from None
        if writer.size_bytes != size:
            raise ApiError(400, f"received {writer.size_bytes} bytes, declared size_bytes {size}")
        if writer.sha256 != sha:
            raise ApiError(400, f"SHA-256 mismatch: the bytes hash to {writer.sha256}, not {sha}")
        try:
            asset = await run_in_threadpool(
                service.record_verified_upload, session=session, storage=storage,
                work_dir=settings.resolved_work_dir, account_id=claims["a"], sha256=sha,
                declared_content_type=content_type, local_path=writer.temp_path, staged_key=None,
                store=lambda: writer.commit().key,
            )  # fmt: skip
        except service.VerificationFailed as exc:
            raise ApiError(400, str(exc)) from None
    finally:
        await writes.settle()
        writer.abort()  # no-op once committed
    return envelope.ok("blob verified", {"sha256": sha, "asset_id": asset.id, "status": "verified"})


@router.get("/blobs/downloads/{token}", summary="A blob or preview by signed URL (local storage)")
def download(token: str, settings: SettingsDep, storage: StorageDep):
    claims = service.download_claims(settings=settings, token=token)
    key, content_type = claims["k"], claims["t"]
    headers = {"Cache-Control": "private, max-age=3600, immutable", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}  # fmt: skip
    local = storage.local_file(key)
    if local is not None:
        if not local.is_file():
            raise ApiError(404, "blob not found")
        return FileResponse(local, media_type=content_type, headers=headers)
    return RedirectResponse(storage.presigned_get_url(key, 600))  # (S3 hands out presigned GETs directly)


@router.get("/blobs", summary="The account's verified blobs, newest first")
def list_blobs(request: Request, account: AssetsReadAccount, session: SessionDep, settings: SettingsDep,
               storage: StorageDep):  # fmt: skip
    assets = service.list_assets(session=session, account=account)
    return envelope.ok(f"{len(assets)} blobs", {"blobs": [
        service.asset_view(session=session, asset=a, settings=settings, storage=storage, base_url=base_url(request),
                           with_urls=False) for a in assets]})  # fmt: skip


@router.get("/blobs/{sha256}", summary="One of the account's blobs, with signed download and preview URLs")
def get_blob(sha256: str, request: Request, account: AssetsReadAccount, session: SessionDep, settings: SettingsDep,
             storage: StorageDep):  # fmt: skip
    sha = service.normalise_sha256(sha256)
    found = service.ensure_assets(session=session, account=account, storage=storage,
                                  work_dir=settings.resolved_work_dir, hashes=[sha])[sha]  # fmt: skip
    if found == service.NOT_UPLOADED:
        raise ApiError(404, "blob not found")
    if isinstance(found, str):  # this account's own staged upload failed its checks
        raise ApiError(422, f"blob rejected: {found}")
    return envelope.ok("blob", service.asset_view(session=session, asset=found, settings=settings, storage=storage,
                                         base_url=base_url(request)))  # fmt: skip

