"""finish_job: the one path every job takes to a terminal state (completed, failed, cancelled).

The scheduler completes and fails jobs, and cancels them when asked; the API's URL
downloader fails a job whose video cannot be fetched. All of them end a job here, so a
finished job always looks the same: its status moved by the state rules (reelfarm/states.py),
`completed_at` set, the stage cleared, its unfinished tasks cancelled, and every listener
told, inside the caller's transaction (a listener's rows commit with the job's state or
not at all; signed webhooks subscribe here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from reelfarm import campaigns, outbox, quotas
from reelfarm.database import utcnow
from reelfarm.models.jobs import Job
from reelfarm.models.tasks import Task
from reelfarm.states import ACTIVE_TASK_STATES, JOB_MACHINE, TASK_MACHINE, JobStatus, TaskKind, TaskState, transition

log = logging.getLogger(__name__)

# (session, job) -> None, called once per job as it finishes, in the finishing transaction.
JobFinishedListener = Callable[[Session, Job], None]
_listeners: list[JobFinishedListener] = []

ERROR_MAX_CHARS = 2000


def on_job_finished(listener: JobFinishedListener) -> JobFinishedListener:
    """Register a listener (usable as a decorator); registering one twice has no effect."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def remove_job_finished_listener(listener: JobFinishedListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@dataclass
class Finished:
    """A job that just finished, and the tasks its nodes must be told to stop."""

    job: Job
    node_cancels: list[tuple[str, str]] = field(default_factory=list)  # (node_id, task_id)


def finish_job(session: Session, job: Job, status: JobStatus, *, error: str | None = None,
               tasks: Iterable[Task] | None = None) -> Finished | None:
    """End `job` in `status`; None when the state rules refuse (it had already finished).

    `tasks`: the job's tasks when the caller has them loaded (saves a query per job on
    the scheduler's completion path). Idempotent like every transition: finishing a
    finished job changes nothing.
    """
    if status not in JOB_MACHINE.terminal:
        raise ValueError(f"{status} is not a terminal job status")
    if not transition(JOB_MACHINE, job, status):
        return None
    job.completed_at = utcnow()
    job.stage = None
    if status == JobStatus.completed:
        job.progress_percent = 100.0
    if error is not None:
        job.error = error[:ERROR_MAX_CHARS]
    finished = Finished(job)
    if tasks is None:
        tasks = session.scalars(select(Task).where(Task.job_id == job.id))
    rendered = False  # a clip was rendered: a cancelled job keeps its quota charge
    for task in tasks:
        rendered = rendered or (task.kind == TaskKind.render and task.state == TaskState.completed)
        if task.state in ACTIVE_TASK_STATES and task.node_id:
            finished.node_cancels.append((task.node_id, task.id))
        transition(TASK_MACHINE, task, TaskState.cancelled, "state")
    if status == JobStatus.failed or (status == JobStatus.cancelled and not rendered):
        quotas.give_back(session, job)  # its monthly videos, in this transaction
    log.info("job %s %s%s", job.id, status, f": {job.error}" if error else "")
    for listener in list(_listeners):
        listener(session, job)
    outbox.record_job_event(session, job)  # its webhook, committed with this state or not at all
    if job.api == campaigns.CAMPAIGN_API:
        campaigns.job_finished(session, job)  # the campaign's status and webhook follow its job's
    return finished
