"""Resumable uploads for the dashboard: a file arrives in Content-Range chunks, spooled on disk.

The browser (static/upload.js) asks for an upload (POST /dashboard/uploads: name, size,
options, all checked first), then PUTs chunks in order; each one is appended to a spool
file under the work dir. Asking where the upload stands (HEAD/GET) answers the bytes
received so far, so a failed chunk or a reloaded page goes on from there. When the last
byte is in, the spool is stored as a video and its job made by the same services as
POST /api/upload (media_pages._finish).

Each upload is two files under `<work_dir>/dashboard-uploads/`: `<id>.part` (the bytes) and
`<id>.json` (a sidecar: its account, name, size, options, and its job once made). No table:
the spool is local to the API process's disk, and a day untouched it is removed.
One request at a time writes an upload (an exclusive, non-blocking flock on its .part);
a second is a 409.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from control_plane.errors import ApiError

SPOOL_DIR = "dashboard-uploads"
UPLOAD_ID = re.compile(r"^upl_[0-9a-f]{32}$")
# What the browser sends per PUT (any size is accepted; this is the suggestion).
CHUNK_BYTES = 8 << 20
# An upload untouched this long is abandoned: its spool and sidecar are removed.
STALE_SECONDS = 24 * 3600
MAX_NAME_CHARS = 500
_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


@dataclass
class PendingUpload:
    id: str
    account_id: str
    filename: str
    size: int
    options: dict
    created_at: float
    job_id: str | None = None


@dataclass(frozen=True)
class ContentRange:
    """`bytes start-end/total` (a chunk) or `bytes */total` (no bytes: finish, or ask)."""

    start: int | None
    end: int | None  # inclusive
    total: int

    @property
    def length(self) -> int:
        return 0 if self.start is None else self.end - self.start + 1


def parse_content_range(value: str | None) -> ContentRange:
    """400 unless the header is `bytes start-end/total` with start <= end < total, or `bytes */total`."""
    match = _RANGE.match((value or "").strip())
    if not match:
        raise ApiError(400, "Content-Range: expected 'bytes START-END/TOTAL' (or 'bytes */TOTAL')")
    start, end, total = (int(g) if g is not None else None for g in match.groups())
    if start is not None and not (start <= end < total):
        raise ApiError(400, f"Content-Range: bytes {start}-{end}/{total} is not a range inside the file")
    return ContentRange(start, end, total)


class UploadSpool:
    def __init__(self, work_dir: Path) -> None:
        self.root = work_dir / SPOOL_DIR

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        return self.root / f"{upload_id}.part", self.root / f"{upload_id}.json"

    def create(self, *, account_id: str, filename: str, size: int, options: dict) -> PendingUpload:
        self.root.mkdir(parents=True, exist_ok=True)
        upload = PendingUpload(id=f"upl_{secrets.token_hex(16)}", account_id=account_id,
                               filename=(filename or "video")[:MAX_NAME_CHARS], size=size, options=options,
                               created_at=time.time())  # fmt: skip
        part, _ = self._paths(upload.id)
        part.touch()
        self._save(upload)
        return upload

    def _save(self, upload: PendingUpload) -> None:
        _, meta = self._paths(upload.id)
        temp = meta.with_suffix(".json.tmp")
        temp.write_text(json.dumps(asdict(upload)))
        os.replace(temp, meta)

    def get(self, upload_id: str, account_id: str) -> PendingUpload:
        """The account's upload; another account's (or an unknown, or a malformed id) is a 404."""
        if not UPLOAD_ID.match(upload_id):
            raise ApiError(404, "upload not found")
        _, meta = self._paths(upload_id)
        try:
            upload = PendingUpload(**json.loads(meta.read_text()))
        except (OSError, ValueError, TypeError):
            raise ApiError(404, "upload not found") from None
        if upload.account_id != account_id:
            raise ApiError(404, "upload not found")
        return upload

    def offset(self, upload: PendingUpload) -> int:
        """Bytes received so far (all of them once its job is made)."""
        if upload.job_id:
            return upload.size
        part, _ = self._paths(upload.id)
        try:
            return part.stat().st_size
        except FileNotFoundError:
            return 0

    def part_path(self, upload: PendingUpload) -> Path:
        return self._paths(upload.id)[0]

    def open_for_writing(self, upload: PendingUpload) -> BinaryIO:
        """The spool, appending, locked for this request: 409 while another request holds it."""
        part, _ = self._paths(upload.id)
        handle = open(part, "ab")  # noqa: SIM115 (closed by the caller)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ApiError(409, "another request is writing this upload: ask for its offset and go on from there",
                           headers={"Retry-After": "1"}) from None  # fmt: skip
        return handle

    def finished(self, upload: PendingUpload, job_id: str) -> None:
        """Its job is made: keep the sidecar (a retried last chunk answers the same job), drop the bytes."""
        upload.job_id = job_id
        self._save(upload)
        self.part_path(upload).unlink(missing_ok=True)

    def discard(self, upload: PendingUpload) -> None:
        for path in self._paths(upload.id):
            path.unlink(missing_ok=True)

    def remove_stale(self, older_than_seconds: float = STALE_SECONDS) -> int:
        """Remove uploads untouched for `older_than_seconds` (abandoned, or finished long ago)."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        newest: dict[str, float] = {}  # an upload's last activity: the newer of its two files
        for path in self.root.iterdir():
            try:
                stamp = path.stat().st_mtime
            except FileNotFoundError:
                continue
            upload_id = path.name.split(".", 1)[0]
            newest[upload_id] = max(stamp, newest.get(upload_id, 0.0))
        removed = 0
        for upload_id, stamp in newest.items():
            if stamp < cutoff:
                for path in self.root.glob(f"{upload_id}.*"):
                    path.unlink(missing_ok=True)
                removed += 1
        return removed
