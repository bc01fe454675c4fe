"""Things that live as long as the app: started before it serves, stopped after (errors included)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI


def around_lifespan(app: FastAPI, *, start: Callable[[], Awaitable[None]] | None = None,
                    stop: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
    """Wrap the app's lifespan: `await start()` before it, `await stop()` after it."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_):
        if start is not None:
            await start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            if stop is not None:
                await stop()

    app.router.lifespan_context = lifespan
