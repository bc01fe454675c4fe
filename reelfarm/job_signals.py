"""In-process notice that a job's row changed, for readers in the writer's process.

The live streams (control_plane/jobs/events.py) poll a job's row; where the API and the
scheduler share a process (`reelfarm serve`, `reelfarm render`), a commit that changed the job
wakes its streams at once instead, so a client sees progress and the end as they happen and
nobody re-reads an unchanged row several times a second. Readers in another process than
the writer keep polling: nothing here crosses a process.

Any ORM commit that inserts or changes a Job counts (SQLAlchemy session events), bulk
`update(Job)` statements too (the scheduler's dispatch): by primary key, the jobs named;
with a WHERE clause, every job listened to (each reader re-reads its row).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import chain

from sqlalchemy import event
from sqlalchemy.orm import Session

from reelfarm.models import Job

_CHANGED = "reelfarm.changed_jobs"
_ANY_JOB = "*"
_lock = threading.Lock()
_listeners: dict[str, list[Callable[[], None]]] = {}


def listen(job_id: str, callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (on the committing thread: keep it quick) after each commit that changed the
    job; returns what stops it."""
    with _lock:
        _listeners.setdefault(job_id, []).append(callback)

    def stop() -> None:
        with _lock:
            callbacks = _listeners.get(job_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                _listeners.pop(job_id, None)

    return stop


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context) -> None:
    if not _listeners:
        return
    changed = {obj.id for obj in chain(session.new, session.dirty) if isinstance(obj, Job)}
    if changed:
        session.info.setdefault(_CHANGED, set()).update(changed)


@event.listens_for(Session, "do_orm_execute")
def _collect_bulk(state) -> None:
    if not _listeners or not state.is_update or state.bind_mapper is None or state.bind_mapper.class_ is not Job:
        return
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    named = {row["id"] for row in rows if isinstance(row, dict) and "id" in row}
    state.session.info.setdefault(_CHANGED, set()).update(named if named and len(named) == len(rows) else {_ANY_JOB})


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    if not changed:
        return
    with _lock:
        if _ANY_JOB in changed:
            changed = set(_listeners)
        callbacks = [cb for job_id in changed for cb in _listeners.get(job_id, ())]
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CHANGED, None)
