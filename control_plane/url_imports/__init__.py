"""Videos fetched by the server: URL ingest and the address guard every server-side fetch uses."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from control_plane.lifespan import around_lifespan


def install(app) -> None:
    """Give `app` its URL-ingest router and download pool, run by the app's lifespan.

    Servers that skip the lifespan still work: the pool starts on the first submission
    (and then resumes downloads an earlier run left unfinished).
    """
    from control_plane.url_imports.downloads import DownloadPool
    from control_plane.url_imports.views import router

    pool = DownloadPool(settings=app.state.settings, sessions=app.state.session_factory, storage=app.state.storage,
                        on_queued=lambda job_id: app.state.job_listener(job_id))  # fmt: skip
    app.state.downloads = pool
    app.include_router(router)
    around_lifespan(app, start=lambda: run_in_threadpool(pool.start), stop=lambda: run_in_threadpool(pool.shutdown))
