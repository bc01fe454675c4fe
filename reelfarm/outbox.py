"""The webhook outbox: events written in the same transaction as the state change they report.

`record_event` adds a `webhook_events` row to the caller's session; it commits with the
caller's change or not at all, so a crash can neither lose an event nor invent one. The
API's delivery workers (control_plane/webhooks/) claim, sign and send the rows.

Job events come from `finish_job` (reelfarm/job_lifecycle.py), which runs in the scheduler
process as well as the API: that process cannot render the API's result shape, so job
events are recorded without a body and the API's worker renders it at its first claim.
Other subjects (campaigns) plug in by calling `record_event` with an event name and, when
the recording process can render it, the body.

After a commit that recorded an event, the callbacks registered with `on_recorded` run (an
API's workers in the same process wake at once; others find the row by polling).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from reelfarm.models.jobs import Job
from reelfarm.models.webhooks import WebhookEvent
from reelfarm.states import JobStatus

log = logging.getLogger(__name__)

JOB_EVENTS = {
    JobStatus.completed: "job.completed",
    JobStatus.failed: "job.failed",
    JobStatus.cancelled: "job.cancelled",
}
# Jobs made by these APIs send webhooks (the v1 API takes `webhook_url`).
WEBHOOK_APIS = ("v1",)

_wakers: list[Callable[[], None]] = []
_PENDING_WAKE = "reelfarm.outbox.wake"


def on_recorded(waker: Callable[[], None]) -> None:
    """Call `waker()` after every commit in this process that recorded an event."""
    if waker not in _wakers:
        _wakers.append(waker)


def remove_recorded_listener(waker: Callable[[], None]) -> None:
    if waker in _wakers:
        _wakers.remove(waker)


def _wake_after_commit(session: Session) -> None:
    if session.info.get(_PENDING_WAKE):
        return
    session.info[_PENDING_WAKE] = True

    def after_commit(committed: Session) -> None:
        committed.info.pop(_PENDING_WAKE, None)
        for waker in _wakers.copy():  # a waker may be removed meanwhile
            try:
                waker()
            except Exception:  # a waker never fails the committer
                log.exception("outbox waker failed")

    def after_rollback(rolled_back: Session, _transaction) -> None:
        # The after_commit hook stays: the next commit wakes the workers for nothing (harmless).
        rolled_back.info.pop(_PENDING_WAKE, None)

    sa_event.listen(session, "after_commit", after_commit, once=True)
    sa_event.listen(session, "after_soft_rollback", after_rollback, once=True)


def record_event(session: Session, *, account_id: str, event: str, subject_id: str, url: str,
                 body: str | None = None) -> WebhookEvent:
    """Add an event to deliver to `url`, due now; it is sent once the caller commits.

    `body`: the exact JSON to send, or None to have the API's delivery worker render it
    (control_plane/webhooks/bodies.py knows how, per event prefix).
    """
    row = WebhookEvent(account_id=account_id, event=event, subject_id=subject_id, url=url, body=body)
    session.add(row)
    session.flush()
    _wake_after_commit(session)
    return row


def record_job_event(session: Session, job: Job) -> WebhookEvent | None:
    """The job's terminal event, when it asked for webhooks; called by finish_job."""
    event = JOB_EVENTS.get(JobStatus(job.status))
    if event is None or not job.webhook_url or job.api not in WEBHOOK_APIS:
        return None
    return record_event(session, account_id=job.account_id, event=event, subject_id=job.id, url=job.webhook_url)
