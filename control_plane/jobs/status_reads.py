"""The job-status read, the API's hottest path (clients poll it): one SQL round trip.

On PostgreSQL, GET /api/jobs/{id} with an API key authenticates the key, checks the
job belongs to its account and reads the job, its clip count and its tasks in a single
statement on an asyncio psycopg pool: no ORM, no thread hop. bench/api.py measured the
ORM path at ~4.5 ms of CPU a request (five statements, response encoding, five
thread hops). Cookie logins and other databases (SQLite, the embedded default) take the
ORM path; both build the response with jobs.service.render_job_view.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

_SQL = """
SELECT k.scopes, j.id, j.original_name, j.status, j.stage, j.progress_percent, j.error,
       j.created_at, j.updated_at, j.options,
       (SELECT count(*) FROM artifacts ar WHERE ar.job_id = j.id AND ar.filename LIKE '%%.mp4') AS clip_count,
       (SELECT json_agg(json_build_object(
                 'index', t.task_index, 'state', t.state, 'stage', t.stage,
                 'progress_percent', t.progress_percent, 'attempts', t.attempts, 'error', t.error)
               ORDER BY t.task_index)
          FROM tasks t WHERE t.job_id = j.id) AS tasks
FROM api_keys k
LEFT JOIN jobs j ON j.id = %(job_id)s AND j.account_id = k.account_id
WHERE k.key_hash = %(key_hash)s AND k.revoked_at IS NULL
"""


@dataclass(frozen=True)
class StatusRow:
    scopes: list[str] | None  # None: every scope
    job: dict | None  # render_job_view's arguments; None: no such job in the key's account


class JobStatusReads:
    """One asyncio connection pool per event loop (tests run several loops on one app)."""

    def __init__(self, database_url: str, max_connections: int = 8) -> None:
        self.conninfo = _conninfo(database_url)
        self.max_connections = max_connections
        self._pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._opening: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def enabled(self) -> bool:
        return self.conninfo is not None

    async def _pool(self):
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            lock = self._opening.setdefault(loop, asyncio.Lock())
            async with lock:
                pool = self._pools.get(loop)
                if pool is None:
                    pool = AsyncConnectionPool(self.conninfo, min_size=1, max_size=self.max_connections, open=False,
                                               kwargs={"autocommit": True})  # fmt: skip
                    await pool.open()
                    self._pools[loop] = pool
        return pool

    async def read(self, *, key_hash: str, job_id: str) -> StatusRow | None:
        """None: no active key with this hash."""
        pool = await self._pool()
        async with pool.connection() as connection:
            cursor = await connection.execute(_SQL, {"job_id": job_id, "key_hash": key_hash})
            row = await cursor.fetchone()
        if row is None:
            return None
        scopes, job_id_found, name, status, stage, progress, error, created, updated, options, clips, tasks = row
        if job_id_found is None:
            return StatusRow(scopes=scopes, job=None)
        job = {"job_id": job_id_found, "original_name": name, "status": status, "stage": stage,
               "progress_percent": progress, "error": error, "created_at": created, "updated_at": updated,
               "options": options, "clip_count": clips, "tasks": tasks or []}  # fmt: skip
        return StatusRow(scopes=scopes, job=job)

    async def close(self) -> None:
        """Close the pool of the running loop (the app's lifespan end)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()


def _conninfo(database_url: str) -> str | None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    from psycopg.conninfo import make_conninfo

    params = {"host": url.host, "port": url.port, "user": url.username, "password": url.password,
              "dbname": url.database, **url.query}  # fmt: skip
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})
