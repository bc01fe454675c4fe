"""ReelFarm: the blocking client. It runs the requests and operations that resources.py describes."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from reelfarm.client import core
from reelfarm.client.base import ClientBase
from reelfarm.client.core import (
    IDLE,
    Blocking,
    Call,
    CloseStream,
    Emit,
    NextEvent,
    OpenStream,
    Sink,
    Sleep,
)


class _Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.parser = core.SseParser()
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.response.close()


class ReelFarm(ClientBase):
    """The API, blocking. `api_key` is sent as X-API-Key; `session_token` as the reels_session
    cookie (keys, members and the webhook secret are for signed-in users only).

        with ReelFarm("http://127.0.0.1:8000", api_key) as rf:
            job = rf.uploads.upload(Path("talk.mp4"), {"numClips": 3}, on_progress=print)
            done = rf.jobs.wait(job.job_id, timeout=600, on_progress=print)
            rf.clips.download(job.job_id, Path("out"))
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, session_token: str | None = None,
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5, user_agent: str | None = None,
                 strict: bool = False, transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        options = self._configure(base_url, api_key, timeout, max_retries, backoff, user_agent)
        self.strict = strict
        self.http = httpx.Client(transport=transport, **options)
        self.session_token = session_token

    @classmethod
    def login(cls, base_url: str, email: str, password: str, **kw: Any) -> ReelFarm:
        """A client signed in as `email` (POST /api/auth/login); its session_token is the cookie."""
        client = cls(base_url, **kw)
        try:
            client.auth.login(email, password)
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the executor ---------------------------------------------------------------------------

    def _run(self, op: Any) -> Any:
        if isinstance(op, Generator):
            return self._drive(op)
        return self._do(op, [])

    def _iterate(self, gen: Generator) -> Iterator[Any]:
        streams: list[_Stream] = []
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    op = gen.throw(error) if error is not None else gen.send(value)
                except StopIteration:
                    return
                value, error = None, None
                if isinstance(op, Emit):
                    yield op.value
                    continue
                try:
                    value = self._do(op, streams)
                except Exception as exc:  # noqa: BLE001 - thrown into the operation, which decides
                    error = exc
        finally:
            gen.close()
            for stream in streams:
                stream.close()

    def _drive(self, gen: Generator) -> Any:
        streams: list[_Stream] = []
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    op = gen.throw(error) if error is not None else gen.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = self._do(op, streams)
                except Exception as exc:  # noqa: BLE001 - thrown into the operation, which decides
                    error = exc
        finally:
            gen.close()
            for stream in streams:
                stream.close()

    def _do(self, op: Any, streams: list[_Stream]) -> Any:
        if isinstance(op, Call):
            return self._call(op)
        if isinstance(op, Sleep):
            time.sleep(max(0.0, op.seconds))
            return None
        if isinstance(op, Blocking):
            return op.fn(*op.args)
        if isinstance(op, OpenStream):
            stream = self._open(op)
            streams.append(stream)
            return stream
        if isinstance(op, NextEvent):
            return self._next_event(op)
        if isinstance(op, CloseStream):
            op.stream.close()
            return None
        raise TypeError(f"not an operation: {op!r}")

    def _send(self, call: Call) -> httpx.Response:
        """Send `call` until an answer stands (retrying as core's policy says); the answer is open."""
        attempt = 0
        while True:
            body = call.body() if call.body is not None else None
            request = self._build(call, body, iter(body) if body is not None else None)
            try:
                response = self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                delay = core.transport_retry_delay(call, body, exc, attempt, self.policy)
                if delay is None:
                    raise core.network_error(call, exc) from exc
                attempt += 1
                time.sleep(delay)
                continue
            delay = core.status_retry_delay(call, response, attempt, self.policy)
            if delay is None:
                return response
            response.close()
            attempt += 1
            time.sleep(delay)

    def _call(self, call: Call) -> Any:
        failures = 0
        while True:
            response = self._send(call)
            try:
                if response.status_code >= 400 and response.status_code not in call.expect:
                    raise core.error_from(response, response.read())
                self._session_effect(call, response)
                if call.dest is not None:
                    sink = Sink(call.dest, core.content_length(response), call.on_progress)
                    try:
                        for chunk in response.iter_bytes(core.CHUNK):
                            sink.write(chunk)
                    except BaseException:
                        sink.abort()
                        raise
                    return sink.commit(response.headers.get("content-type"))
                return core.parse_answer(call, response, response.read(), self.strict)
            except httpx.TransportError as exc:  # the answer broke off: asked again if that is safe
                delay = core.read_retry_delay(call, failures, self.policy)
                if delay is None:
                    raise core.network_error(call, exc) from exc
            finally:
                response.close()
            failures += 1
            time.sleep(delay)

    def _open(self, op: OpenStream) -> _Stream:
        call = op.call
        if call.timeout is None:
            call.timeout = self._stream_timeout(op.read_timeout)
        response = self._send(call)
        try:
            if response.status_code >= 400:
                raise core.error_from(response, response.read())
            core.check_event_stream(call, response)
        except BaseException:
            response.close()
            raise
        return _Stream(response)

    def _next_event(self, op: NextEvent) -> Any:
        stream: _Stream = op.stream
        try:
            for line in stream.lines:
                event = stream.parser.feed(line)
                if event is not None:
                    return event
                if op.deadline is not None and time.monotonic() >= op.deadline:
                    return IDLE
        except httpx.ReadTimeout as exc:
            if op.deadline is not None and time.monotonic() >= op.deadline:
                return IDLE
            raise core.network_error(Call("GET", str(stream.response.url.path)), exc) from exc
        except httpx.TransportError as exc:
            raise core.network_error(Call("GET", str(stream.response.url.path)), exc) from exc
        return None
