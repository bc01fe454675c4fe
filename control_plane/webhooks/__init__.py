"""Signed webhooks: the outbox's delivery workers (run by the app's lifespan) and their endpoints."""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool


def install(app) -> None:
    """Give `app` the webhook endpoints and its delivery workers (`app.state.webhooks`),
    started and stopped by the app's lifespan; a server run without the lifespan starts
    them itself (reelfarm/embedded.py)."""
    from control_plane.webhooks.delivery import DeliveryWorkers
    from control_plane.webhooks.views import router, v1_router

    workers = DeliveryWorkers(settings=app.state.settings, sessions=app.state.session_factory)
    app.state.webhooks = workers
    app.include_router(router)
    app.include_router(v1_router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_):
        workers.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await run_in_threadpool(workers.shutdown)

    app.router.lifespan_context = lifespan
