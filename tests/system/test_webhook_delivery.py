"""Webhooks end to end: a v1 job on the embedded stack reports to a real receiver; an event
committed by a process killed before any worker ran arrives once after a restart; the
README's verification snippet accepts a real delivery."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from conftest import new_api_key
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_plane.main import create_app
from control_plane.webhooks import service as webhooks
from harness.webhook_receiver import WebhookReceiver
from reelfarm.database import make_engine, make_session_factory, session_scope
from reelfarm.migrate import upgrade
from reelfarm.models import Account
from reelfarm.models.webhooks import WebhookEvent

ROOT = Path(__file__).resolve().parents[2]


def _readme_verifier():
    """The ```python block of README.md's "### Webhooks" section, run: its verify_webhook."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Webhooks", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    namespace: dict = {}
    exec(compile(code, "README.md#webhooks", "exec"), namespace)  # noqa: S102 -- the documented snippet itself
    return namespace["verify_webhook"]


def _secret(session_factory, account_name: str) -> str:
    with session_scope(session_factory) as session:
        account_id = session.scalar(select(Account.id).where(Account.name == account_name))
        return webhooks.account_secret(session=session, account_id=account_id)


def test_v1_job_sends_job_completed_with_its_result(start_stack, settings, sample_video):
    stack = start_stack(settings.model_copy(update={"fetch_allow_networks": ["127.0.0.0/8"]}))
    key = new_api_key(stack.session_factory)
    http = httpx.Client(base_url=stack.base_url, headers={"X-API-Key": key}, timeout=60)
    with WebhookReceiver() as receiver:
        video_id = http.post("/api/v1/videos/upload", files={"file": ("talk.mp4", sample_video.read_bytes(),
                                                                      "video/mp4")}).json()["data"]["video_id"]
        created = http.post("/api/v1/jobs", json={"video_id": video_id, "config": {"mode": "none", "quality": "low"},
                                                  "webhook_url": receiver.url})  # fmt: skip
        assert created.status_code == 200, created.text
        job_id = created.json()["data"]["job_id"]
        (got,) = receiver.wait_for(1, timeout=120)
        result = http.get(f"/api/v1/jobs/{job_id}/result").json()["data"]
        time.sleep(1.0)
        assert len(receiver.received) == 1  # delivered once (a 200 at once)
    http.close()
    secret = _secret(stack.session_factory, "tester")
    assert got.verify(secret)
    body = got.json()
    assert body["event"] == "job.completed" and body["job_id"] == job_id and body["status"] == "completed"
    # The result document, its URLs absolute on the public URL (a receiver has no base to resolve against).
    base = stack.settings.public_url.rstrip("/")
    expected = {**result, "output_video_url": base + result["output_video_url"],
                "clips": [{**clip, **{k: base + clip[k] for k in ("downloadUrl", "posterUrl", "captionsUrl")
                                     if clip[k]}} for clip in result["clips"]]}  # fmt: skip
    assert body["data"] == expected and len(body["data"]["clips"]) == 1
    # The README's snippet accepts it, and refuses a tampered body or a stale timestamp.
    verify_webhook = _readme_verifier()
    verify_webhook(secret, got.headers, got.body)
    with pytest.raises(ValueError, match="signature"):
        verify_webhook(secret, got.headers, got.body.replace(b"completed", b"failed"))
    with pytest.raises(ValueError, match="signature"):
        verify_webhook("whsec_" + "B" * 43, got.headers, got.body)
    stale = {**got.headers, "x-reelfarm-timestamp": str(int(got.headers["x-reelfarm-timestamp"]) - 3600)}
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(secret, stale, got.body)


RECORD_AND_DIE = textwrap.dedent("""
    import sys, time
    from reelfarm.database import make_engine, make_session_factory, session_scope
    from reelfarm.job_lifecycle import finish_job
    from reelfarm.models import Job
    from reelfarm.states import JobStatus

    factory = make_session_factory(make_engine(sys.argv[1]))
    with session_scope(factory) as session:
        job = Job(account_id=sys.argv[2], original_name="talk.mp4", status=JobStatus.processing, api="v1",
                  webhook_url=sys.argv[3])
        session.add(job)
        session.flush()
        finish_job(session, job, JobStatus.failed, error="node lost")
    print(job.id, flush=True)  # committed; no delivery worker runs in this process
    time.sleep(600)
""")


def test_an_event_committed_before_a_crash_is_delivered_once_after_restart(settings):
    settings = settings.model_copy(update={"fetch_allow_networks": ["127.0.0.0/8"],
                                           "webhook_retry_delays_seconds": [0.2, 0.2]})  # fmt: skip
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        account = Account(name="crashy")
        session.add(account)
        session.flush()
        account_id = account.id
    try:
        with WebhookReceiver() as receiver:
            child = subprocess.Popen([sys.executable, "-c", RECORD_AND_DIE, settings.resolved_database_url,
                                      account_id, receiver.url], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
            try:
                job_id = child.stdout.readline().strip()
                assert job_id, "the child did not commit"
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=10)
            assert child.returncode == -signal.SIGKILL
            time.sleep(0.5)
            assert receiver.received == []  # nothing was sent before the crash
            with factory() as session:
                (event,) = session.scalars(select(WebhookEvent)).all()
            assert (event.subject_id, event.status, event.attempts, event.body) == (job_id, "pending", 0, None)
            # Restart: two API processes' worth of workers start on the database.
            apps = [create_app(settings, session_factory=make_session_factory(engine)) for _ in range(2)]
            with TestClient(apps[0]), TestClient(apps[1]):
                (got,) = receiver.wait_for(1)
                time.sleep(1.5)  # three polls more: nothing else comes
                assert [r.event_id for r in receiver.received] == [event.id]
            assert got.json()["job_id"] == job_id and got.json()["data"]["error"] == "node lost"
            assert got.verify(_secret(factory, "crashy"))
            with factory() as session:
                delivered = session.get(WebhookEvent, event.id)
                assert (delivered.status, delivered.attempts) == ("delivered", 1)
                assert delivered.body == got.body.decode()
    finally:
        engine.dispose()
