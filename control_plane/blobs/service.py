"""Content-addressed blobs: upload URLs, verification, and who may read what.

Identity is the SHA-256 of the bytes. Storage keeps one object per hash for every
account (Blob); an account reads a blob only through its own Asset, made when *its*
upload of those bytes verified. So a hash someone else uploaded is, for this account,
exactly like a hash nobody uploaded: the upload URL looks the same, and the account
must send the bytes itself (they are then not stored again).

Two upload paths, one verification:
- S3: the client PUTs to a presigned URL for a staging key of its own asset; S3 checks
  the SHA-256, the size and the content type as it receives. The control plane verifies
  lazily (a batch naming the hash, or a GET of the blob): the staged object's checksum,
  size and format, then a server-side copy to the blob's key.
- Local storage: the URL points at the control plane (an HMAC-signed, expiring token);
  the body is hashed as it is written, and verified before anything is recorded.
Failed checks record nothing and leave no object behind.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.errors import ApiError
from reelfarm import signing
from reelfarm.models.accounts import Account
from reelfarm.models.blobs import Asset, Blob, UploadUrl
from reelfarm.settings import Settings
from reelfarm.storage import SINGLE_PUT_MAX_BYTES, Storage

log = logging.getLogger(__name__)

UPLOAD_URL_SECONDS = 3600
# A retry is given the URL already issued while it has at least this long to run.
UPLOAD_URL_REUSE_SECONDS = 600
DOWNLOAD_URL_SECONDS = 3600
SNIFF_BYTES = 64 * 1024
UPLOAD_PURPOSE = "blob-upload"
DOWNLOAD_PURPOSE = "blob-download"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIME = re.compile(r"^(video|audio|image|application)/[a-z0-9][a-z0-9.+-]*$")


NOT_UPLOADED = "blob not uploaded (request an upload URL and PUT the bytes first)"


class VerificationFailed(Exception):
    """The bytes are not what was declared, or not a supported format (a 400 for the caller)."""


@dataclass(frozen=True)
class UploadRequest:
    sha256: str
    content_type: str
    size_bytes: int


def normalise_sha256(value: str) -> str:
    sha = value.strip().lower()
    if not _SHA256.fullmatch(sha):
        raise ApiError(400, f"not a SHA-256 hex digest: {value[:80]!r}")
    return sha


def asset_id_for(account_id: str, sha256: str) -> str:
    """Stable per (account, hash), known before the upload; reveals nothing across accounts."""
    return "ast_" + hashlib.sha256(f"asset:{account_id}:{sha256}".encode()).hexdigest()[:24]


def staging_key(asset_id: str) -> str:
    return f"staging/{asset_id}"


def get_asset(*, session: Session, account: Account, sha256: str) -> Asset | None:
    return session.get(Asset, asset_id_for(account.id, sha256))


def upload_urls(*, session: Session, account: Account, storage: Storage, settings: Settings, base_url: str,
                requests: list[UploadRequest]) -> list[dict]:  # fmt: skip
    """Per blob: already stored for this account, or where to PUT it.

    Asking again is harmless and idempotent (000): the same hash, size and type get the
    same URL back while it has at least UPLOAD_URL_REUSE_SECONDS to run; past that, a
    fresh one (a URL about to expire would fail the retry it was asked for).
    """
    limit = min(settings.max_blob_bytes, SINGLE_PUT_MAX_BYTES)
    answers = []
    now = int(time.time())
    for req in requests:
        sha = normalise_sha256(req.sha256)
        content_type = req.content_type.strip().lower()
        if not _MIME.fullmatch(content_type):
            raise ApiError(400, f"blob {sha}: content_type {req.content_type[:80]!r} is not a media type")
        if req.size_bytes > limit:
            raise ApiError(413, f"blob {sha}: size_bytes {req.size_bytes} is over the limit of {limit} bytes")
        asset_id = asset_id_for(account.id, sha)
        if session.get(Asset, asset_id) is not None:
            answers.append({"sha256": sha, "asset_id": asset_id, "status": "exists", "upload_url": None})
            continue
        issued = _issued_upload_url(session=session, account=account, storage=storage, settings=settings,
                                    base_url=base_url, asset_id=asset_id, sha=sha, size_bytes=req.size_bytes,
                                    content_type=content_type, now=now)  # fmt: skip
        answers.append({
            "sha256": sha, "asset_id": asset_id, "status": "upload_required", "upload_url": issued.url,
            "upload_method": "PUT", "upload_headers": {"Content-Type": content_type},
            "expires_at": issued.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        })  # fmt: skip
    session.commit()
    return answers


def _issued_upload_url(*, session: Session, account: Account, storage: Storage, settings: Settings, base_url: str,
                       asset_id: str, sha: str, size_bytes: int, content_type: str, now: int) -> UploadUrl:
    issued = session.get(UploadUrl, asset_id)
    if (issued is not None and issued.size_bytes == size_bytes and issued.content_type == content_type
            and issued.expires_at.timestamp() - now >= UPLOAD_URL_REUSE_SECONDS):
        return issued
    expires_at = now + UPLOAD_URL_SECONDS
    url = storage.presigned_put_url(staging_key(asset_id), sha256=sha, size_bytes=size_bytes,
                                    content_type=content_type, expires_seconds=UPLOAD_URL_SECONDS)  # fmt: skip
    if url is None:  # the control plane receives the bytes itself
        token = signing.sign(secret=settings.secret_key, purpose=UPLOAD_PURPOSE, expires_at=expires_at,
                             claims={"a": account.id, "s": sha, "n": size_bytes, "t": content_type})  # fmt: skip
        url = f"{base_url.rstrip('/')}/api/v1/blobs/uploads/{token}"
    fields = {"account_id": account.id, "size_bytes": size_bytes, "content_type": content_type, "url": url,
              "expires_at": datetime.fromtimestamp(expires_at, UTC)}  # fmt: skip
    if issued is not None:
        for name, value in fields.items():
            setattr(issued, name, value)
        return issued
    fresh = UploadUrl(asset_id=asset_id, **fields)
    if _insert(session, fresh):
        return fresh
    # A concurrent request for the same blob issued one first: everyone gets that one.
    return session.scalars(select(UploadUrl).where(UploadUrl.asset_id == asset_id)
                           .execution_options(populate_existing=True)).one()


def _claims(settings: Settings, token: str, purpose: str, what: str) -> dict:
    try:
        return signing.verify(secret=settings.secret_key, purpose=purpose, token=token)
    except signing.BadToken as exc:
        raise ApiError(403, f"{what} URL refused: {exc}") from None


def upload_claims(*, settings: Settings, token: str) -> dict:
    return _claims(settings, token, UPLOAD_PURPOSE, "upload")


def record_verified_upload(*, session: Session, storage: Storage, work_dir: Path, account_id: str, sha256: str,
                           declared_content_type: str, local_path: Path | None, staged_key: str | None,
                           store) -> Asset:  # fmt: skip
    """Check the (already hash- and size-verified) bytes by content, make previews, store
    them once (`store()` puts them at the blob's key) and record the blob and the asset.

    Raises VerificationFailed when the content is not what was declared; nothing is
    stored or recorded then.
    """
    from control_plane.blobs import formats, previews

    blob = session.get(Blob, sha256)
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        if local_path is not None:
            with open(local_path, "rb") as f:
                head = f.read(SNIFF_BYTES)
        else:
            head = storage.read_head(staged_key, SNIFF_BYTES)
        try:
            detected = formats.sniff(head)
            formats.check_declared(declared_content_type, detected)
            if blob is None:  # first time these bytes are seen: validate deeply, make the preview
                source = local_path or _readable_source(storage, staged_key, detected, Path(tmp))
                media = formats.validate_file(source, detected)
                preview = Path(tmp) / "preview"
                try:
                    preview_type = previews.make_preview(source, detected, preview)
                    preview_key = storage.put_file(preview).key
                except previews.PreviewError as exc:  # a preview is a nicety, not a reason to refuse
                    log.warning("no preview for blob %s: %s", sha256, exc)
                    preview_type = preview_key = None
        except formats.FormatError as exc:
            raise VerificationFailed(str(exc)) from None
        key = store()
        if blob is None:
            blob = Blob(sha256=sha256, size_bytes=storage.size(key), format=detected.format, kind=detected.kind,
                        content_type=detected.content_type, media=media, storage_key=key, preview_key=preview_key,
                        preview_content_type=preview_type)  # fmt: skip
            if not _insert(session, blob):
                blob = session.get(Blob, sha256)
    asset = Asset(id=asset_id_for(account_id, sha256), account_id=account_id, sha256=sha256,
                  declared_content_type=declared_content_type)  # fmt: skip
    if not _insert(session, asset):
        asset = session.get(Asset, asset.id)
    session.commit()
    return asset


def ensure_assets(*, session: Session, account: Account, storage: Storage, work_dir: Path,
                  hashes: list[str]) -> dict[str, Asset | str]:  # fmt: skip
    """For each hash: the account's verified asset, or why it is not usable.

    Hashes only another account uploaded read as not uploaded, like unknown ones.
    Staged direct uploads (S3) are verified here on first use.
    """
    out: dict[str, Asset | str] = {}
    for sha in dict.fromkeys(hashes):
        asset = session.get(Asset, asset_id_for(account.id, sha))
        if asset is not None:
            out[sha] = asset
            continue
        out[sha] = _verify_staged(session=session, account=account, storage=storage, work_dir=work_dir, sha256=sha)
    return out


def _verify_staged(*, session: Session, account: Account, storage: Storage, work_dir: Path,
                   sha256: str) -> Asset | str:  # fmt: skip
    staged = staging_key(asset_id_for(account.id, sha256))
    try:
        head = storage.head(staged)
    except (FileNotFoundError, NotImplementedError):
        return NOT_UPLOADED
    if head.sha256 != sha256:
        storage.delete(staged)
        return "uploaded bytes do not match the SHA-256"
    try:
        return record_verified_upload(session=session, storage=storage, work_dir=work_dir, account_id=account.id,
                                      sha256=sha256, declared_content_type=head.content_type or "",
                                      local_path=None, staged_key=staged,
                                      store=lambda: storage.promote(staged, sha256))  # fmt: skip
    except VerificationFailed as exc:
        storage.delete(staged)
        return str(exc)


def _readable_source(storage: Storage, key: str, detected, tmp: Path) -> str | Path:
    """What ffprobe/ffmpeg/Pillow read: a presigned GET for audio/video (range requests,
    no full download), a local copy for images."""
    if detected.kind in ("video", "audio"):
        return storage.presigned_get_url(key, 600)
    local = tmp / "image"
    with storage.open_read(key) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return local


def _insert(session: Session, row) -> bool:
    """Insert unless a concurrent request inserted the same key first (then False)."""
    try:
        with session.begin_nested():
            session.add(row)
        return True
    except IntegrityError:
        return False


def download_url(*, settings: Settings, storage: Storage, base_url: str, key: str, content_type: str) -> str:
    """A signed URL valid for DOWNLOAD_URL_SECONDS: presigned GET on S3, else the control plane's."""
    try:
        return storage.presigned_get_url(key, DOWNLOAD_URL_SECONDS)
    except NotImplementedError:
        token = signing.sign(secret=settings.secret_key, purpose=DOWNLOAD_PURPOSE,
                             claims={"k": key, "t": content_type},
                             expires_at=int(time.time()) + DOWNLOAD_URL_SECONDS)  # fmt: skip
        return f"{base_url.rstrip('/')}/api/v1/blobs/downloads/{token}"


def download_claims(*, settings: Settings, token: str) -> dict:
    return _claims(settings, token, DOWNLOAD_PURPOSE, "download")


def asset_view(*, session: Session, asset: Asset, settings: Settings, storage: Storage, base_url: str,
               with_urls: bool = True) -> dict:  # fmt: skip
    blob = session.get(Blob, asset.sha256)
    view = {
        "asset_id": asset.id, "sha256": asset.sha256, "size_bytes": blob.size_bytes, "kind": blob.kind,
        "format": blob.format, "content_type": blob.content_type, "metadata": blob.media,
        "created_at": asset.created_at.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    if with_urls:
        view["download_url"] = download_url(settings=settings, storage=storage, base_url=base_url,
                                            key=blob.storage_key, content_type=blob.content_type)  # fmt: skip
        view["preview_url"] = (download_url(settings=settings, storage=storage, base_url=base_url,
                                            key=blob.preview_key, content_type=blob.preview_content_type)
                               if blob.preview_key else None)  # fmt: skip
    return view


def list_assets(*, session: Session, account: Account) -> list[Asset]:
    return list(session.scalars(select(Asset).where(Asset.account_id == account.id).order_by(Asset.created_at.desc())))
