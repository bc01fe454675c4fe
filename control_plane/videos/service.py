"""Videos: a source received (multipart upload or URL download), probed, stored by SHA-256.

Every upload endpoint (reels, v1, dev) receives its video through `receive_video`; the
URL downloader stores its bytes through `create_video_from_upload` too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
        probe={"format": info.format_name, "bitrate_kbps": info.bitrate_kbps},
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
