"""Streaming multipart intake: file parts go straight to a BlobWriter, never into memory.

Starlette's own form parser spools files to a temporary file first; parsing the
request stream ourselves (with python-multipart's push parser) writes each chunk once,
hashes it on the way, and stops reading the moment the size limit is passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from control_plane.errors import ApiError
from reelfarm.storage import BlobTooLarge, BlobWriter

MAX_FIELD_BYTES = 64 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
WRITE_BATCH_BYTES = 1 << 20


class BackgroundWrites:
    """Feeds a BlobWriter from the event loop: megabyte batches hashed and written in a
    worker thread while the loop goes on receiving the next one.

    Receiving and hashing+writing overlap (on two cores an upload runs at the speed of the
    slower of the two, not their sum). At most one batch is in flight, so writes stay in
    order and a request holds about two batches of memory. A writer error (BlobTooLarge)
    surfaces from the next `write` or from `flush`.
    """

    def __init__(self, writer: BlobWriter, batch_bytes: int = WRITE_BATCH_BYTES) -> None:
        self.writer = writer
        self._batch_bytes = batch_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._in_flight: asyncio.Future | None = None

    async def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._batch_bytes:
            await self._submit()

    async def flush(self) -> None:
        """Everything written so far is in the writer (raises the writer's error, if any)."""
        if self._pending_bytes:
            await self._submit()
        await self._wait()

    async def settle(self) -> None:
        """Wait out a batch in flight, ignoring its error: call before aborting the writer."""
        self._pending, self._pending_bytes = [], 0
        with contextlib.suppress(Exception):
            await self._wait()

    async def _submit(self) -> None:
        batch = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        await self._wait()
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self.writer.write, batch)

    async def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight


@dataclass
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    writer: BlobWriter | None = None


async def receive_multipart(
    request: Request,
    *,
    file_field: str,
    open_writer: Callable[[], BlobWriter],
    max_bytes: int,
    on_field: Callable[[str, str], None] | None = None,
) -> ReceivedUpload:
    """Parse a multipart request; the caller owns (commits or aborts) `writer`.

    `on_field` sees each text field as soon as it is complete, so bad options sent
    before the file are refused before the file is read.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(400, f"{file_field} file required (send multipart/form-data)")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(413, f"upload too large (limit {max_bytes} bytes)")

    upload = ReceivedUpload()
    state: dict = {}
    file_chunks: list[bytes] = []
    writes: BackgroundWrites | None = None

    def on_part_begin() -> None:
        state.update(headers={}, header_field=b"", header_value=b"", name=None, is_file=False, value=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_field"].lower()] = state["header_value"]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if name == file_field and b"filename" in disposition:
            if upload.writer is not None:
                raise ApiError(400, f"more than one '{file_field}' file")
            state["is_file"] = True
            upload.filename = disposition[b"filename"].decode("utf-8", "replace")
            upload.writer = open_writer()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["is_file"]:
            file_chunks.append(data[start:end])
        else:
            state["value"] += data[start:end]
            if len(state["value"]) > MAX_FIELD_BYTES:
                raise ApiError(400, f"form field '{state['name']}' is too large")

    def on_part_end() -> None:
        if not state["is_file"] and state["name"]:
            value = state["value"].decode("utf-8", "replace")
            upload.fields[state["name"]] = value
            if on_field:
                on_field(state["name"], value)

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if file_chunks:
                    if writes is None:
                        writes = BackgroundWrites(upload.writer)
                    for data in file_chunks:
                        await writes.write(data)
                    file_chunks.clear()
            parser.finalize()
            if writes is not None:
                await writes.flush()
        except BaseException:
            if writes is not None:
                await writes.settle()
            _abort(upload)
            raise
    except BlobTooLarge:
        raise ApiError(413, f"upload too large (limit {max_bytes} bytes)") from None
    except ClientDisconnect:
        raise ApiError(400, "client disconnected during upload") from None
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart body
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    return upload


def _abort(upload: ReceivedUpload) -> None:
    if upload.writer is not None:
        upload.writer.abort()
