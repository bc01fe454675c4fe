"""AsyncReelFarm: the asyncio client. The same requests and operations as ReelFarm (resources.py),
run with httpx.AsyncClient; every method returns an awaitable, jobs.events an async iterator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator
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


class _AsyncStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.parser = core.SseParser()
        self.closed = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.response.aclose()


class AsyncReelFarm(ClientBase):
    """The API, for asyncio: `async with AsyncReelFarm(url, key) as rf: job = await rf.jobs.wait(id)`."""

    def __init__(self, base_url: str, api_key: str | None = None, *, session_token: str | None = None,
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5, user_agent: str | None = None,
                 strict: bool = False, transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        options = self._configure(base_url, api_key, timeout, max_retries, backoff, user_agent)
        self.strict = strict
        self.http = httpx.AsyncClient(transport=transport, **options)
        self.session_token = session_token

    @classmethod
    async def login(cls, base_url: str, email: str, password: str, **kw: Any) -> AsyncReelFarm:
        client = cls(base_url, **kw)
        try:
            await client.auth.login(email, password)
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.close()

    # --- the executor ---------------------------------------------------------------------------

    def _run(self, op: Any) -> Any:
        if isinstance(op, Generator):
            return self._drive(op)
        return self._do(op, [])

    async def _iterate(self, gen: Generator) -> AsyncIterator[Any]:
        streams: list[_AsyncStream] = []
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
                    value = await self._do(op, streams)
                except Exception as exc:  # noqa: BLE001 - thrown into the operation, which decides
                    error = exc
        finally:
            gen.close()
            for stream in streams:
                await stream.close()

    async def _drive(self, gen: Generator) -> Any:
        streams: list[_AsyncStream] = []
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
                    value = await self._do(op, streams)
                except Exception as exc:  # noqa: BLE001 - thrown into the operation, which decides
                    error = exc
        finally:
            gen.close()
            for stream in streams:
                await stream.close()

    async def _do(self, op: Any, streams: list[_AsyncStream]) -> Any:
        if isinstance(op, Call):
            return await self._call(op)
        if isinstance(op, Sleep):
            await asyncio.sleep(max(0.0, op.seconds))
            return None
        if isinstance(op, Blocking):
            return await asyncio.to_thread(op.fn, *op.args)
        if isinstance(op, OpenStream):
            stream = await self._open(op)
            streams.append(stream)
            return stream
        if isinstance(op, NextEvent):
            return await self._next_event(op)
        if isinstance(op, CloseStream):
            await op.stream.close()
            return None
        raise TypeError(f"not an operation: {op!r}")

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            body = call.body() if call.body is not None else None
            request = self._build(call, body, body.aiter() if body is not None else None)
            try:
                response = await self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                delay = core.transport_retry_delay(call, body, exc, attempt, self.policy)
                if delay is None:
                    raise core.network_error(call, exc) from exc
                attempt += 1
                await asyncio.sleep(delay)
                continue
            delay = core.status_retry_delay(call, response, attempt, self.policy)
            if delay is None:
                return response
            await response.aclose()
            attempt += 1
            await asyncio.sleep(delay)

    async def _call(self, call: Call) -> Any:
        failures = 0
        while True:
            response = await self._send(call)
            try:
                if response.status_code >= 400 and response.status_code not in call.expect:
                    raise core.error_from(response, await response.aread())
                self._session_effect(call, response)
                if call.dest is not None:
                    sink = await asyncio.to_thread(Sink, call.dest, core.content_length(response), call.on_progress)
                    try:
                        async for chunk in response.aiter_bytes(core.CHUNK):
                            sink.write(chunk)
                    except BaseException:
                        sink.abort()
                        raise
                    return await asyncio.to_thread(sink.commit, response.headers.get("content-type"))
                return core.parse_answer(call, response, await response.aread(), self.strict)
            except httpx.TransportError as exc:  # the answer broke off: asked again if that is safe
                delay = core.read_retry_delay(call, failures, self.policy)
                if delay is None:
                    raise core.network_error(call, exc) from exc
            finally:
                await response.aclose()
            failures += 1
            await asyncio.sleep(delay)

    async def _open(self, op: OpenStream) -> _AsyncStream:
        call = op.call
        if call.timeout is None:
            call.timeout = self._stream_timeout(op.read_timeout)
        response = await self._send(call)
        try:
            if response.status_code >= 400:
                raise core.error_from(response, await response.aread())
            core.check_event_stream(call, response)
        except BaseException:
            await response.aclose()
            raise
        return _AsyncStream(response)

    async def _next_event(self, op: NextEvent) -> Any:
        stream: _AsyncStream = op.stream
        loop = asyncio.get_running_loop()
        deadline = None if op.deadline is None else loop.time() + (op.deadline - time.monotonic())

        async def next_event():
            async for line in stream.lines:
                event = stream.parser.feed(line)
                if event is not None:
                    return event
                if deadline is not None and loop.time() >= deadline:
                    return IDLE
            return None

        try:
            if deadline is None:
                return await next_event()
            return await asyncio.wait_for(next_event(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return IDLE
        except httpx.ReadTimeout as exc:
            if deadline is not None and loop.time() >= deadline:
                return IDLE
            raise core.network_error(Call("GET", str(stream.response.url.path)), exc) from exc
        except httpx.TransportError as exc:
            raise core.network_error(Call("GET", str(stream.response.url.path)), exc) from exc
