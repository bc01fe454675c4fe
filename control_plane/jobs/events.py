"""Live job progress for WebSocket and SSE clients: one snapshot reader, two wire formats (jobs/shapes.py).

Progress reaches the database from the scheduler (throttled); each connection re-reads
its job's row when a commit in this process changed it (reelfarm/job_signals.py: the
scheduler shares the process in `serve` and `render`) or else every `poll_seconds`, and
sends only changes, ending after a terminal state. Reads run in the thread pool: the
event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool

from control_plane.jobs.shapes import JobSnapshot
from reelfarm import job_signals
from reelfarm.models import Job
from reelfarm.states import JOB_MACHINE

POLL_SECONDS = 0.5
# SSE comment lines this often keep proxies from closing an idle stream.
HEARTBEAT_SECONDS = 15.0


async def job_updates(session_factory: Callable, job_id: str, poll_seconds: float = POLL_SECONDS
                      ) -> AsyncIterator[JobSnapshot | None]:
    """Yield a snapshot whenever the job changes (None as a keep-alive tick); stop after a terminal one."""

    def read() -> JobSnapshot | None:
        with session_factory() as session:
            job = session.get(Job, job_id)
            return JobSnapshot.of(job) if job is not None else None

    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    stop_listening = job_signals.listen(job_id, lambda: loop.call_soon_threadsafe(changed.set))
    try:
        last, last_sent = None, loop.time()
        while True:
            changed.clear()
            current = await run_in_threadpool(read)
            if current is None:
                return
            if current != last:
                last, last_sent = current, loop.time()
                yield current
                if JOB_MACHINE.is_terminal(current.status):
                    return
            elif loop.time() - last_sent >= HEARTBEAT_SECONDS:
                last_sent = loop.time()
                yield None
            try:
                await asyncio.wait_for(changed.wait(), poll_seconds)
            except TimeoutError:
                pass
    finally:
        stop_listening()
