"""reelfarm/job_lifecycle.py: every finished job looks the same, however it finished."""

import pytest

from reelfarm.database import session_scope
from reelfarm.job_lifecycle import finish_job, on_job_finished, remove_job_finished_listener
from reelfarm.models import Account, Job, Task
from reelfarm.states import JobStage, JobStatus, TaskKind, TaskState


@pytest.fixture
def heard():
    calls = []

    def listener(session, job):
        calls.append((job.id, job.status, job.completed_at is not None))

    on_job_finished(listener)
    on_job_finished(listener)  # registering twice changes nothing
    yield calls
    remove_job_finished_listener(listener)


def _processing_job(session) -> Job:
    account = Account(name="lifecycle")
    session.add(account)
    session.flush()
    job = Job(account_id=account.id, original_name="talk.mp4", status=JobStatus.processing, stage=JobStage.rendering,
              progress_percent=40.0)  # fmt: skip
    session.add(job)
    session.flush()
    states = [(TaskState.completed, None), (TaskState.running, "node-a"), (TaskState.leased, "node-b"),
              (TaskState.pending, None)]  # fmt: skip
    for index, (state, node) in enumerate(states, start=1):
        session.add(Task(job_id=job.id, kind=TaskKind.render, task_index=index, state=state, node_id=node))
    session.flush()
    return job


@pytest.mark.parametrize("status", [JobStatus.failed, JobStatus.cancelled])
def test_failing_or_cancelling_ends_every_unfinished_task(sessions, heard, status):
    with session_scope(sessions) as session:
        job = _processing_job(session)
        on_nodes = {t.id: t.node_id for t in session.query(Task).filter_by(job_id=job.id) if t.node_id}
        finished = finish_job(session, job, status, error="clip 2: out of memory" if status == "failed" else None)
        # The tasks a node holds are listed so the scheduler can stop them there.
        assert sorted(finished.node_cancels) == sorted((node, task) for task, node in on_nodes.items())
        assert sorted(node for node, _ in finished.node_cancels) == ["node-a", "node-b"]
        job_id = job.id
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == status and job.stage is None and job.completed_at is not None
        assert job.error == ("clip 2: out of memory" if status == "failed" else None)
        states = sorted(t.state for t in session.query(Task).filter_by(job_id=job_id))
        assert states == sorted(["completed", "cancelled", "cancelled", "cancelled"])  # a finished task stays so
    assert heard == [(job_id, status, True)]


def test_completing_sets_full_progress_and_tells_the_listeners_once(sessions, heard):
    with session_scope(sessions) as session:
        job = _processing_job(session)
        assert finish_job(session, job, JobStatus.completed).job is job
        assert (job.progress_percent, job.stage) == (100.0, None)
        # Idempotent: a second finish (a late duplicate outcome) changes nothing and tells no one.
        first_completed_at = job.completed_at
        assert finish_job(session, job, JobStatus.failed, error="late") is None
        assert (job.status, job.error, job.completed_at) == ("completed", None, first_completed_at)
    assert len(heard) == 1


def test_only_terminal_statuses_finish_a_job(sessions):
    with session_scope(sessions) as session:
        job = _processing_job(session)
        with pytest.raises(ValueError, match="not a terminal"):
            finish_job(session, job, JobStatus.queued)
        assert job.status == "processing"


def test_long_errors_are_kept_to_a_readable_length(sessions):
    with session_scope(sessions) as session:
        job = _processing_job(session)
        finish_job(session, job, JobStatus.failed, error="x" * 10_000)
        assert len(job.error) == 2000
