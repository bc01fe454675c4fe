"""reelfarm/job_signals.py: a commit that changed a job wakes its readers in the same process."""

import asyncio
import threading

import pytest
from sqlalchemy import update

from control_plane.jobs.events import job_updates
from reelfarm import job_signals
from reelfarm.database import session_scope
from reelfarm.models import Account, Job
from reelfarm.states import JobStatus


@pytest.fixture
def job_id(sessions):
    with session_scope(sessions) as session:
        account = Account(name="signals")
        session.add(account)
        session.flush()
        job = Job(account_id=account.id, original_name="talk.mp4", status=JobStatus.processing)
        session.add(job)
        session.flush()
        return job.id


def test_commits_that_change_the_job_are_announced_and_nothing_else(sessions, job_id):
    heard, other = [], []
    stop = job_signals.listen(job_id, lambda: heard.append("job"))
    stop_other = job_signals.listen("some-other-job", lambda: other.append("other"))
    try:
        with session_scope(sessions) as session:
            session.get(Job, job_id).progress_percent = 12.5
        assert heard == ["job"]
        with session_scope(sessions) as session:  # read only: nothing changed
            session.get(Job, job_id)
        assert heard == ["job"]
        with pytest.raises(RuntimeError), session_scope(sessions) as session:
            session.get(Job, job_id).progress_percent = 50.0
            session.flush()
            raise RuntimeError("rolled back")
        assert heard == ["job"]  # a rolled-back change is not news
        with session_scope(sessions) as session:
            session.get(Job, job_id).stage = "rendering"
        assert heard == ["job", "job"] and other == []
        # Bulk UPDATEs as the scheduler's dispatch writes them: by primary key, the job named...
        with session_scope(sessions) as session:
            session.execute(update(Job), [{"id": job_id, "status": JobStatus.processing}])
        assert heard == ["job"] * 3 and other == []
        # ... and with a WHERE clause, everyone listening (which jobs matched is not known).
        with session_scope(sessions) as session:
            session.execute(update(Job).where(Job.id == job_id).values(progress_percent=30.0))
        assert heard == ["job"] * 4 and other == ["other"]
    finally:
        stop()
        stop_other()
    with session_scope(sessions) as session:
        session.get(Job, job_id).progress_percent = 60.0
    assert heard == ["job"] * 4  # stopped listening
    assert job_id not in job_signals._listeners


def test_a_live_stream_sees_a_change_long_before_its_next_poll(sessions, job_id):
    """With a 120 s poll, only the signal can deliver the update inside the 30 s guard."""

    def write_later() -> None:
        for percent, status in ((40.0, JobStatus.processing), (100.0, JobStatus.completed)):
            threading.Event().wait(0.3)
            with session_scope(sessions) as session:
                job = session.get(Job, job_id)
                job.progress_percent, job.status = percent, status

    async def follow() -> list:
        seen = []
        writer = threading.Thread(target=write_later)
        async for snapshot in job_updates(sessions, job_id, poll_seconds=120.0):
            if snapshot is not None:
                seen.append((snapshot.status, snapshot.progress_percent))
                if len(seen) == 1:
                    writer.start()
        writer.join()
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(), 30))
    assert seen[0] == ("processing", 0.0)
    assert seen[-1] == ("completed", 100.0)
    assert job_id not in job_signals._listeners  # the stream stopped listening when it ended
