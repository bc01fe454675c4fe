"""Videos: a source received (multipart upload or URL download), probed, stored by SHA-256.

Every upload endpoint (reels, v1, dev) receives its video through `receive_video`; the
URL downloader stores its bytes through `create_video_from_upload` too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Generic, TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request

from control_plane.accounts.service import owned
from control_plane.errors import ApiError
from control_plane.uploads import receive_multipart
from reelfarm.media import MediaError, probe
from reelfarm.models import Account, Video
from reelfarm.settings import Settings
from reelfarm.storage import BlobWriter, Storage

Checked = TypeVar("Checked")

# ISO base media major brands (ftyp) -> the name among ffprobe's "mov,mp4,m4a,3gp,3g2,mj2" they mean.
# Any other brand of that family (isom, iso2..iso9, mp41, mp42, avc1, dash, M4V, ...) is an MP4.
_BRAND_FORMATS = {"qt": "mov", "m4a": "m4a", "m4b": "m4a", "m4p": "m4a", "mj2": "mj2", "mjp2": "mj2"}
# File extensions that name a format by another spelling.
_EXTENSION_FORMATS = {"m4v": "mp4", "qt": "mov", "mkv": "matroska", "mk3d": "matroska", "mka": "matroska"}


def container_format(format_name: str | None, filename: str | None = None, major_brand: str | None = None) -> str | None:
    """The container's short name (`mp4`), not ffprobe's demuxer list (`mov,mp4,m4a,3gp,3g2,mj2`).

    One demuxer reads several containers; which of them this file is comes from its major brand
    (ISO files), else its extension, when that names one of the list, else the list's first.
    """
    names = [n.strip() for n in (format_name or "").split(",") if n.strip()]
    if len(names) <= 1:
        return names[0] if names else None
    brand = (major_brand or "").strip().lower()
    if brand and "mp4" in names:
        by_brand = _BRAND_FORMATS.get(brand) or ("3g2" if brand.startswith("3g2") else
                                                 "3gp" if brand.startswith("3gp") else "mp4")  # fmt: skip
        if by_brand in names:
            return by_brand
    extension = PurePosixPath(filename or "").suffix.lower().lstrip(".")
    by_extension = _EXTENSION_FORMATS.get(extension, extension)
    return by_extension if by_extension in names else names[0]


def video_format(video: Video) -> str | None:
    """`container_format` of a stored video (rows probed before it kept only ffprobe's list)."""
    probed = video.probe or {}
    return container_format(probed.get("format_name") or probed.get("format"), video.original_name,
                            probed.get("major_brand"))  # fmt: skip


def create_video_from_upload(
    *, session: Session, account: Account, writer: BlobWriter, original_name: str
) -> Video:
    """Probe the uploaded bytes, then keep them content-addressed; 400 for anything not a video."""
    if writer.size_bytes == 0:
        writer.abort()
        raise ApiError(400, "video file is empty")
    try:
        info = probe(writer.temp_path)
    except MediaError as exc:
        writer.abort()
        # ffprobe names the file it read: the caller's name, not the server's spool path.
        reason = str(exc).replace(str(writer.temp_path), original_name).removeprefix("not a decodable video: ")
        raise ApiError(400, f"video file is not a decodable video: {reason}") from None
    blob = writer.commit()
    major_brand = ((info.raw.get("format") or {}).get("tags") or {}).get("major_brand")
    video = Video(
        account_id=account.id,
        original_name=original_name[:500],
        sha256=blob.sha256,
        size_bytes=blob.size_bytes,
        storage_key=blob.key,
        duration_seconds=info.duration_seconds,
        width=info.width,
        height=info.height,
        frame_rate=info.frame_rate,
        codec=info.codec,
        has_audio=info.has_audio,
        probe={"format": container_format(info.format_name, original_name, major_brand),
               "format_name": info.format_name, "major_brand": major_brand, "bitrate_kbps": info.bitrate_kbps},
    )
    session.add(video)
    session.flush()
    return video


@dataclass
class ReceivedVideo(Generic[Checked]):
    video: Video  # flushed, not committed: the caller commits with its own changes
    fields: dict[str, str]
    checked: Checked | None  # what `check_fields` returned


async def receive_video(
    request: Request, *, session: Session, account: Account, settings: Settings, storage: Storage, file_field: str,
    missing_message: str, on_field: Callable[[str, str], None] | None = None,
    check_fields: Callable[[dict[str, str]], Checked] | None = None,
) -> ReceivedVideo[Checked]:
    """Receive a multipart upload's video: streamed to storage as it arrives (hashed on the
    way), probed, kept content-addressed.

    `on_field` sees each text field as it completes (bad options sent before the file are
    refused before the file is read); `check_fields` sees them all once the file is in,
    before it is stored, and may refuse the upload (an ApiError). Nothing stays in storage
    when anything is refused.
    """
    received = await receive_multipart(request, file_field=file_field,
                                       open_writer=lambda: storage.open_writer(max_bytes=settings.max_upload_bytes),
                                       max_bytes=settings.max_upload_bytes, on_field=on_field)  # fmt: skip
    if received.writer is None:
        raise ApiError(400, missing_message)
    try:
        checked = check_fields(received.fields) if check_fields is not None else None
        video = create_video_from_upload(session=session, account=account, writer=received.writer,
                                         original_name=received.filename or "video")  # fmt: skip
    finally:
        received.writer.abort()  # no-op once committed
    return ReceivedVideo(video=video, fields=received.fields, checked=checked)


def get_video(*, session: Session, account: Account, video_id: str) -> Video:
    return owned(session, Video, video_id, account, "video")
