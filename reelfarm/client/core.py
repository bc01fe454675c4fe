"""What a request is, and every decision about it, written once for both executors.

A resource method (resources.py) describes its request as a `Call`; a composite operation
(an upload that hashes first, a download of every clip, `wait`) is a generator that yields
operations (`Call`, `Sleep`, `Blocking`, `OpenStream`, `NextEvent`, `CloseStream`, `Emit`)
and receives their results. The sync executor (sync.py) and the async one (aio.py) run the
same descriptions and generators; they differ only in how they do I/O. Retry decisions,
Retry-After, error bodies, response parsing, streamed bodies with progress and the SSE
parser live here.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import os
import random
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent
from pydantic import TypeAdapter

from reelfarm.client.errors import ReelFarmError
from reelfarm.client.models import FORBID_EXTRA

SESSION_COOKIE = "reels_session"
CHUNK = 1 << 20
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Refused before anything was done (rate limited, or not ready): any request may be sent again.
RETRY_ALWAYS = frozenset({429, 503})
# A proxy or gateway lost the answer: only a request that is safe to repeat is sent again.
RETRY_IF_IDEMPOTENT = frozenset({502, 504})

ProgressCallback = Callable[[int, int], Any]


# --- operations -------------------------------------------------------------------------------


@dataclass
class Call:
    """One route, one request (retried by the executor as the policy allows)."""

    method: str
    route: str  # the path template, as in the OpenAPI schema ("/api/jobs/{job_id}")
    path_params: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    json: Any = None
    body: Callable[[], Body] | None = None  # a fresh streamed body for each attempt
    headers: Mapping[str, str] | None = None
    model: Any = None  # validate the JSON answer as this type (None: return the JSON)
    envelope: bool = False  # /api/v1: the answer's `data`
    expect: tuple[int, ...] = ()  # statuses that are answers (returned), not errors
    idempotent: bool | None = None  # None: by method
    url: str | None = None  # an absolute URL (presigned upload, signed download) instead of the route
    dest: Path | None = None  # stream the body into this file (atomically); returns Downloaded
    on_progress: ProgressCallback | None = None  # for dest
    raw: bool = False  # return the body's bytes
    session: str | None = None  # "keep": remember the answer's session cookie; "drop": forget it
    timeout: httpx.Timeout | float | None = None

    @property
    def safe_to_repeat(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.method in IDEMPOTENT_METHODS

    def target(self) -> str:
        if self.url is not None:
            return self.url
        return self.route.format(**{k: quote(str(v), safe="") for k, v in self.path_params.items()})


@dataclass
class Sleep:
    seconds: float


@dataclass
class Blocking:
    """Blocking work (hashing a file): run inline by the sync executor, in a thread by the async one."""

    fn: Callable[..., Any]
    args: tuple = ()


@dataclass
class OpenStream:
    """Open a server-sent event stream (the call's answer must be text/event-stream); returns a handle.
    `read_timeout`: the longest silence (keep-alive comments count) before the stream is taken for dead."""

    call: Call
    read_timeout: float | None = 30.0


@dataclass
class NextEvent:
    """The stream's next event; None when the stream ended; IDLE when `deadline` (monotonic) passed first."""

    stream: Any
    deadline: float | None = None


@dataclass
class CloseStream:
    stream: Any


@dataclass
class Emit:
    """A value for the consumer of an iterating operation (jobs.events)."""

    value: Any


IDLE = object()


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    content_type: str | None


# --- retries ----------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """How long to wait before attempt `attempt + 1`, or None to give up.

    A small loop of our own rather than tenacity or stamina: the wait comes from each
    answer (Retry-After), whether to retry depends on how far the request got (a body
    that had started going out), and the one policy serves the sync and the async
    executor alike; a library would need both of its flavours and hooks for all three.

    The server's Retry-After (seconds or an HTTP date) is honoured as given (up to
    `max_retry_after`: a longer one is an answer, not a wait); otherwise exponential backoff
    with jitter, `backoff * 2**attempt` capped at `max_backoff`, drawn from its upper half.
    """

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_retry_delay(call: Call, response: httpx.Response, attempt: int, policy: RetryPolicy) -> float | None:
    """A wait before sending `call` again after this answer, or None (the answer stands)."""
    status = response.status_code
    if status in call.expect:
        return None
    if status in RETRY_ALWAYS or (status in RETRY_IF_IDEMPOTENT and call.safe_to_repeat):
        return policy.delay(attempt, parse_retry_after(response.headers.get("retry-after")))
    return None


def transport_retry_delay(call: Call, body: Body | None, exc: Exception, attempt: int,
                          policy: RetryPolicy) -> float | None:  # fmt: skip
    """A wait before sending `call` again after a network error, or None (give up).

    A request that is not safe to repeat is sent again only when the server cannot have
    acted on it: the connection never opened, or no byte of its body had gone out.
    """
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    if call.safe_to_repeat or never_sent or (body is not None and not body.started):
        return policy.delay(attempt)
    return None


def read_retry_delay(call: Call, failures: int, policy: RetryPolicy) -> float | None:
    """A wait before asking again when the answer broke off while it was read, or None: only a
    request safe to repeat is (the server acted on the other kind)."""
    return policy.delay(failures) if call.safe_to_repeat else None


def network_error(call: Call, exc: Exception) -> ReelFarmError:
    return ReelFarmError(f"{call.method} {call.route}: {type(exc).__name__}: {exc or 'no answer'}")


def error_from(response: httpx.Response, content: bytes) -> ReelFarmError:
    """The API's error: its `error` message, its body, its Retry-After."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("error") or body.get("detail") or body.get("message")
        if not isinstance(message, str):
            message = json.dumps(message) if message is not None else _phrase(response.status_code)
    else:
        message = content.decode("utf-8", "replace").strip()[:500] or _phrase(response.status_code)
        body = {}
    return ReelFarmError(message, status=response.status_code, body=body,
                         retry_after=parse_retry_after(response.headers.get("retry-after")))  # fmt: skip


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "request failed"


# --- answers ----------------------------------------------------------------------------------

_adapters: dict[Any, TypeAdapter] = {}


def adapter(model: Any) -> TypeAdapter:
    found = _adapters.get(model)
    if found is None:
        found = _adapters[model] = TypeAdapter(model)
    return found


def parse_answer(call: Call, response: httpx.Response, content: bytes, strict: bool = False) -> Any:
    """A successful answer as the call wants it: bytes, None (no content), JSON, or a model
    (`strict`: refusing fields the model does not know, at any depth)."""
    if call.raw:
        return content
    if response.status_code == 204 or not content:
        return None
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ReelFarmError(f"{call.method} {call.route}: the answer is not JSON",
                            status=response.status_code) from exc  # fmt: skip
    if call.envelope and isinstance(data, dict) and "data" in data:
        data = data["data"]
    if call.model is None:
        return data
    return adapter(call.model).validate_python(data, context={FORBID_EXTRA: True} if strict else None)


def session_cookie(response: httpx.Response) -> str | None:
    """The reels_session cookie an answer sets ("" when it clears it), read from Set-Cookie itself:
    a Secure cookie over plain http, or one for an IP address, is still the caller's session."""
    for header in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if SESSION_COOKIE in jar:
            morsel = jar[SESSION_COOKIE]
            return "" if morsel["max-age"] == "0" or not morsel.value.strip('"') else morsel.value
    return None


class Sink:
    """A download's destination: written to a temporary file beside it, hashed as it arrives,
    renamed into place when complete (an interrupted download leaves no partial file)."""

    def __init__(self, dest: Path, total: int | None, on_progress: ProgressCallback | None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        self.total = total
        self.on_progress = on_progress
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        self.tmp = Path(name)
        self.fh = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self.on_progress:
            self.on_progress(self.size, self.total if self.total is not None else self.size)

    def commit(self, content_type: str | None) -> Downloaded:
        self.fh.close()
        os.replace(self.tmp, self.dest)
        return Downloaded(self.dest, self.size, self.digest.hexdigest(), content_type)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


# --- streamed request bodies --------------------------------------------------------------------


class Progress:
    """Reports `on_progress(sent, total)` only forward: a retried upload starts its body again
    but the caller never sees the count go back."""

    def __init__(self, total: int, on_progress: ProgressCallback | None) -> None:
        self.total = total
        self.on_progress = on_progress
        self.reported = -1

    def advance(self, sent: int) -> None:
        if sent > self.reported:
            self.reported = sent
            if self.on_progress:
                self.on_progress(sent, self.total)


class Body:
    """A request body read from a file as it is sent (never whole in memory), in parts:
    bytes as given and the file's bytes between them. `started`: a byte has gone out."""

    def __init__(self, parts: list[bytes | Path], content_type: str, progress: Progress | None = None) -> None:
        self.parts = parts
        self.content_type = content_type
        self.progress = progress
        self.started = False
        self.file_sent = 0

    @property
    def headers(self) -> dict[str, str]:
        length = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in self.parts)
        return {"Content-Type": self.content_type, "Content-Length": str(length)}

    def _sent(self, n: int, from_file: bool) -> None:
        self.started = True
        if from_file:
            self.file_sent += n
            if self.progress:
                self.progress.advance(self.file_sent)

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                self._sent(len(part), False)
                yield part
                continue
            with part.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    self._sent(len(chunk), True)
                    yield chunk

    async def aiter(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                self._sent(len(part), False)
                yield part
                continue
            with part.open("rb") as fh:
                while chunk := await asyncio.to_thread(fh.read, CHUNK):
                    self._sent(len(chunk), True)
                    yield chunk


def file_body(path: Path, content_type: str, progress: Progress | None = None) -> Body:
    return Body([path], content_type, progress)


def multipart_body(fields: Mapping[str, str], file_field: str, path: Path, *, filename: str | None = None,
                   content_type: str = "application/octet-stream", progress: Progress | None = None) -> Body:  # fmt: skip
    """multipart/form-data: the text fields first (the API checks them before it reads the file), then the file."""
    boundary = "reelfarm-" + secrets.token_hex(16)
    parts: list[bytes | Path] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")  # fmt: skip
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(file_field)}"; '
                 f'filename="{_quoted(filename or path.name)}"\r\nContent-Type: {content_type}\r\n\r\n'.encode())  # fmt: skip
    parts.append(path)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return Body(parts, f"multipart/form-data; boundary={boundary}", progress)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- server-sent events -------------------------------------------------------------------------


class SseParser:
    """text/event-stream lines to httpx-sse's ServerSentEvent. Parsed line by line here (not by
    httpx-sse's iterator, which hides comment lines) so the keep-alive comments hand control
    back to `wait`, which checks its deadline between lines."""

    def __init__(self) -> None:
        self._reset()
        self.last_id = ""

    def _reset(self) -> None:
        self.event, self.data, self.retry = "", [], None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self.data and not self.event:
                return None
            event = ServerSentEvent(event=self.event, data="\n".join(self.data), id=self.last_id, retry=self.retry)
            self._reset()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None


def check_event_stream(call: Call, response: httpx.Response) -> None:
    kind = response.headers.get("content-type", "").partition(";")[0].strip()
    if kind != "text/event-stream":
        raise ReelFarmError(f"{call.route}: expected text/event-stream, got {kind or 'no content type'}",
                            status=response.status_code)  # fmt: skip


def same_origin(url: str, base: httpx.URL) -> bool:
    target = httpx.URL(url)
    return not target.is_absolute_url or (target.scheme, target.host, target.port) == (base.scheme, base.host,
                                                                                          base.port)  # fmt: skip
