"""The FastAPI application."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from control_plane.accounts.views import router as accounts_router
from control_plane.agents import LazyMcpHttpApp
from control_plane.batches.views import router as batches_router
from control_plane.billing.plans import PlanBook
from control_plane.billing.views import router as billing_router
from control_plane.blobs.views import router as blobs_router
from control_plane.clips.views import router as clips_router
from control_plane.dashboard import install as install_dashboard
from control_plane.deps import SCOPES_HEADER
from control_plane.errors import install_error_handlers
from control_plane.health import router as health_router
from control_plane.jobs.live import router as live_router
from control_plane.jobs.status_reads import JobStatusReads
from control_plane.jobs.views import router as jobs_router
from control_plane.jobs.views import status_router as job_status_router
from control_plane.lifespan import around_lifespan
from control_plane.limits import install as install_rate_limits
from control_plane.metrics import install as install_metrics
from control_plane.projects.views import router as dev_router
from control_plane.url_imports import install as install_url_ingest
from control_plane.v1.views import router as v1_router
from control_plane.campaigns.views import router as campaigns_router
from control_plane.webhooks import install as install_webhooks
from reelfarm.database import make_engine, make_session_factory
from reelfarm.settings import Settings
from reelfarm.storage import Storage, open_storage


class ScopesHeaderMiddleware:
    """Echo an API key's scopes on every response to it (errors included).

    Plain ASGI rather than BaseHTTPMiddleware: no extra task or body buffering per request.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_scopes(message) -> None:
            if message["type"] == "http.response.start":
                scopes = (scope.get("state") or {}).get("api_scopes")
                if scopes:
                    message["headers"] = [*message.get("headers", []), (SCOPES_HEADER.lower().encode(), scopes.encode())]
            await send(message)

        await self.app(scope, receive, send_with_scopes)


def _close_status_reads_on_shutdown(app: FastAPI) -> None:
    around_lifespan(app, stop=app.state.job_status_reads.close)


def run_api_server(app: FastAPI, *, host: str, port: int, **uvicorn_options) -> None:
    """Serve the API in this process until it is stopped (`reelfarm api`, bench/api.py).

    The objects made by the imports and create_app live as long as the process; freezing
    them keeps the collector's full passes from rescanning them. Under load these passes
    (~145k objects) took 80-95 ms each, ~18% of the API's CPU (bench/api.py, measured
    with gc.callbacks); frozen, the largest pause was 13 ms. Not done in create_app: tests
    build many apps in one process, and frozen cycles are never collected.
    """
    import gc

    import uvicorn

    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, **uvicorn_options)


def create_app(
    settings: Settings,
    *,
    session_factory=None,
    storage: Storage | None = None,
    job_listener: Callable[[str], None] | None = None,
) -> FastAPI:
    """`job_listener(job_id)` runs after a job is committed (the embedded stack wakes its
    scheduler with it; a separate scheduler finds new jobs by polling the database)."""
    app = FastAPI(title="ReelFarm", version="0.1.0", description="Long videos in, captioned short clips out.")
    app.state.settings = settings
    app.state.plans = PlanBook.from_settings(settings)
    app.state.session_factory = session_factory or make_session_factory(make_engine(settings.resolved_database_url))
    app.state.storage = storage or open_storage(settings)
    # Uploads cut short by a killed API process leave spool files; an hour untouched, they are dead.
    app.state.storage.remove_stale_partials(older_than_seconds=3600)
    app.state.job_listener = job_listener or (lambda _job_id: None)
    # The same database the sessions use (a caller may pass its own session factory).
    bound = app.state.session_factory.kw["bind"].url.render_as_string(hide_password=False)
    app.state.job_status_reads = JobStatusReads(bound)
    _close_status_reads_on_shutdown(app)
    install_error_handlers(app)
    app.add_middleware(ScopesHeaderMiddleware)
    install_rate_limits(app)  # /api/v1 rate limits; outermost, so a refusal costs no routing
    install_metrics(app)  # GET /metrics; request counts/latency by route, around the rate limits (429s count)
    app.include_router(job_status_router)  # first: FastAPI tries routers in order, and this one is polled
    app.include_router(accounts_router)
    app.include_router(billing_router)
    app.include_router(jobs_router)
    app.include_router(clips_router)
    app.include_router(live_router)
    app.include_router(v1_router)
    app.include_router(campaigns_router)
    install_url_ingest(app)  # POST /api/upload/url and its download pool (started/stopped by the lifespan)
    install_webhooks(app)  # /api/webhooks, /api/v1/webhooks and the delivery workers (run by the lifespan)
    app.include_router(dev_router)
    app.include_router(blobs_router)
    app.include_router(batches_router)
    # Agents (MCP over streamable HTTP): a route at the exact path, so POST /mcp is not redirected.
    app.add_route("/mcp", LazyMcpHttpApp(settings, app.state.session_factory, app.state.storage), include_in_schema=False)

    install_dashboard(app)  # /dashboard pages, their static files and HTML errors; / redirects there
    app.include_router(health_router)  # /livez, /healthz (its alias) and /readyz (control_plane/health.py)

    return app
