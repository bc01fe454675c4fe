"""Agent access: an MCP server (control_plane/agents/mcp_server.py) through which AI agents
search and fetch an account's approved ingested assets, over stdio or streamable HTTP."""

from __future__ import annotations

import threading

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send


class LazyMcpHttpApp:
    """The /mcp ASGI app, built on its first request.

    The MCP SDK and its schema models cost an API process ~25 MB of memory and ~0.4 s of
    start-up; a deployment whose agents never call /mcp should pay neither. The first
    request imports and builds the server in a worker thread (the event loop keeps serving).
    """

    def __init__(self, settings, session_factory, storage) -> None:
        self._args = (settings, session_factory, storage)
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                from control_plane.agents.mcp_server import mcp_http_app

                self._app = mcp_http_app(*self._args)
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app or await run_in_threadpool(self._build)
        await app(scope, receive, send)
