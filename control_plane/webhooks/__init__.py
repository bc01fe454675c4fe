"""Signed webhooks: the outbox's delivery workers (run by the app's lifespan) and their endpoints."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from control_plane.lifespan import around_lifespan


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
    async def start() -> None:
        workers.start()

    around_lifespan(app, start=start, stop=lambda: run_in_threadpool(workers.shutdown))
