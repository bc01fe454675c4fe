"""Liveness and readiness of the API process.

    GET /livez    200 while the process serves requests (`/healthz` is the same)
    GET /readyz   200 when every check passes, else 503; the body names each check:
                  {"status": "ready"|"not_ready", "checks": {"database": {"ok": true}, ...}}

Readiness checks: the database answers, its migrations are at head (an API on a database
that a newer or older release migrated is not ready), the storage is reachable, and Redis
answers when REELFARM_REDIS_URL is set. Each check is bounded (Redis by
REELFARM_REDIS_TIMEOUT_SECONDS), and a failure says why without a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from reelfarm.migrate import database_revisions, head_revisions

router = APIRouter(include_in_schema=False)


def _live() -> dict:
    return {"status": "ok"}


router.add_api_route("/livez", _live, methods=["GET"])
router.add_api_route("/healthz", _live, methods=["GET"])  # the older name


def _check_database(request: Request) -> str | None:
    engine = request.app.state.session_factory.kw["bind"]
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return None


def _check_migrations(request: Request) -> str | None:
    engine = request.app.state.session_factory.kw["bind"]
    current, head = database_revisions(engine), head_revisions()
    if current != head:
        return f"database at revision {sorted(current) or 'none'}, migrations head {sorted(head)}"
    return None


def _check_storage(request: Request) -> str | None:
    request.app.state.storage.ping()
    return None


def _check_redis(request: Request) -> str | None:
    import redis

    settings = request.app.state.settings
    timeout = settings.redis_timeout_seconds
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return None


def _run(check: Callable[[Request], str | None], request: Request) -> dict:
    try:
        problem = check(request)
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", reported by its type and message
        problem = f"{type(exc).__name__}: {exc}"
    return {"ok": True} if problem is None else {"ok": False, "error": problem[:500]}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks = {"database": _check_database, "migrations": _check_migrations, "storage": _check_storage}
    if request.app.state.settings.redis_url:
        checks["redis"] = _check_redis
    results = {name: _run(check, request) for name, check in checks.items()}
    if results["database"]["ok"] is False:
        results["migrations"] = {"ok": False, "error": "database unreachable"}
    ready = all(r["ok"] for r in results.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": results},
                        status_code=200 if ready else 503)
