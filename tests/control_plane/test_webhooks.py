"""Signed webhooks through the API's delivery workers, to a real receiver on loopback.

Jobs are ended the way the scheduler ends them (finish_job, committed); the app runs its
lifespan (so its workers) in a TestClient; sessions and keys are made over HTTP.
"""

from __future__ import annotations

import threading
import time

import pytest
from api_fixtures import stand_in_node
from fastapi.testclient import TestClient
from sqlalchemy import update

from control_plane.errors import ApiError
from control_plane.main import create_app
from control_plane.webhooks import delivery
from control_plane.webhooks import service as webhooks
from harness.polling import wait_until
from harness.webhook_receiver import Answer, WebhookReceiver
from reelfarm.database import make_engine, make_session_factory, session_scope
from reelfarm.job_lifecycle import finish_job
from reelfarm.migrate import upgrade
from reelfarm.models import Job
from reelfarm.models.webhooks import WebhookDelivery, WebhookEvent
from reelfarm.settings import Settings
from reelfarm.states import JobStatus

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture
def hook_settings(settings) -> Settings:
    """Deliveries to the loopback receiver allowed; quick retries."""
    return settings.model_copy(update={"fetch_allow_networks": LOOPBACK, "webhook_retry_delays_seconds": [0.2, 0.2]})


def _app(settings: Settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    stand_in_node(factory)  # jobs may be submitted (no scheduler runs here)
    return create_app(settings, session_factory=factory), engine


@pytest.fixture
def served(hook_settings):
    """The app with its lifespan running (delivery workers on), and its sign-up factory."""
    app, engine = _app(hook_settings)
    with TestClient(app):
        yield app
    engine.dispose()


def _sign_up(app, email: str) -> tuple[TestClient, str]:
    browser = TestClient(app)
    response = browser.post("/api/auth/signup", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return browser, response.json()["accountId"]


def _end_job(app, account_id: str, url: str, status=JobStatus.failed, error="clip 1: out of memory") -> str:
    """A v1 job with a webhook_url, ended as the scheduler ends it (finish_job, one commit)."""
    with session_scope(app.state.session_factory) as session:
        job = Job(account_id=account_id, original_name="talk.mp4", status=JobStatus.processing, api="v1",
                  webhook_url=url, progress_percent=40.0)  # fmt: skip
        session.add(job)
        session.flush()
        assert finish_job(session, job, status, error=error if status == JobStatus.failed else None)
        return job.id


def _deliveries(client: TestClient, **params) -> list[dict]:
    response = client.get("/api/v1/webhooks/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]["deliveries"]


def _attempts(app) -> int:
    with app.state.session_factory() as session:
        return session.query(WebhookDelivery).count()


def _event_status(app, event_id: str) -> str:
    with app.state.session_factory() as session:
        return session.get(WebhookEvent, event_id).status


def test_webhook_url_is_checked_at_submission(hook_settings, sample_video):
    app, engine = _app(hook_settings)
    try:
        browser, _ = _sign_up(app, "urls@example.com")
        video_id = browser.post("/api/v1/videos/upload", files={"file": ("a.mp4", sample_video.read_bytes(),
                                                                         "video/mp4")}).json()["data"]["video_id"]
        for url, reason in [("ftp://example.com/hook", "only http and https"), ("https:///nohost", "no host"),
                            ("https://user:pw@example.com/hook", "user name or password"),
                            ("http://example.com/hook", "http is only allowed to loopback")]:  # fmt: skip
            response = browser.post("/api/v1/jobs", json={"video_id": video_id, "webhook_url": url})
            assert response.status_code == 400, (url, response.text)
            error = response.json()["error"]
            assert error.startswith("webhook_url: ") and reason in error, (url, error)
        for url in ["https://example.com/hook", "http://127.0.0.1:9/hook", "http://localhost:9/hook"]:
            response = browser.post("/api/v1/jobs", json={"video_id": video_id, "webhook_url": url})
            assert response.status_code == 200, (url, response.text)
    finally:
        engine.dispose()
    # In production only https is accepted, loopback or not.
    prod = Settings(environment="prod", secret_key="a-real-secret-for-this-test-only-0123456789")
    with pytest.raises(ApiError) as refused:
        webhooks.check_webhook_url("http://127.0.0.1:9/hook", settings=prod)
    assert refused.value.status_code == 400 and "https" in str(refused.value.message)
    assert webhooks.check_webhook_url("https://example.com/hook", settings=prod) == "https://example.com/hook"


def test_signed_delivery_retried_after_500_and_logged(served):
    browser, account_id = _sign_up(served, "retry@example.com")
    with WebhookReceiver([Answer(500)]) as receiver:
        job_id = _end_job(served, account_id, receiver.url)
        first, second = receiver.wait_for(2)
        secret = browser.get("/api/webhooks/secret").json()["secret"]
        assert secret.startswith("whsec_")
        # One event, sent twice: the same id and the same bytes, each signed both ways.
        assert first.event_id == second.event_id and first.event_id.startswith("evt_")
        assert first.body == second.body
        assert first.verify(secret) and second.verify(secret)
        assert not first.verify("whsec_" + "A" * 43)
        assert first.headers["content-type"] == "application/json"
        body = second.json()
        assert body["event"] == "job.failed" and body["job_id"] == job_id and body["status"] == "failed"
        assert body["timestamp"].endswith("Z")
        assert body["data"]["status"] == "failed" and body["data"]["error"] == "clip 1: out of memory"
        assert body["data"]["clips"] == [] and body["data"]["output_video_url"] is None
        wait_until(lambda: _event_status(served, first.event_id) == "delivered", timeout=10, what="delivered")
    key = browser.post("/api/keys", json={"name": "ci"}).json()["key"]
    client = TestClient(served, headers={"X-API-Key": key})  # no `with`: that would run the lifespan again
    log = _deliveries(client)
    assert [(d["attempt"], d["status_code"]) for d in log] == [(2, 200), (1, 500)]  # newest first
    assert log[1]["error"] == "HTTP 500" and log[0]["error"] is None
    assert all(d["event_id"] == first.event_id and d["event"] == "job.failed" for d in log)
    assert log[0]["event_status"] == "delivered" and log[0]["duration_ms"] >= 0
    assert [d["attempt"] for d in _deliveries(client, limit=1)] == [2]
    assert [d["attempt"] for d in _deliveries(client, limit=1, offset=1)] == [1]


def test_timeout_then_410_stops(hook_settings):
    quick = hook_settings.model_copy(update={"webhook_timeout_seconds": 0.5})
    app, engine = _app(quick)
    try:
        with TestClient(app), WebhookReceiver([Answer(200, sleep=2.0), Answer(410), Answer(200)]) as receiver:
            browser, account_id = _sign_up(app, "gone@example.com")
            _end_job(app, account_id, receiver.url, status=JobStatus.cancelled)
            receiver.wait_for(2)
            event_id = receiver.received[0].event_id
            wait_until(lambda: _event_status(app, event_id) == "gone", timeout=10, what="the event to be gone")
            log = _deliveries(browser)
            assert [(d["attempt"], d["status_code"]) for d in log] == [(2, 410), (1, None)]
            assert log[1]["error"] == "timed out" and log[1]["duration_ms"] >= 400
            assert receiver.received[0].json()["event"] == "job.cancelled"
            # A 200 sent after the timeout does not count, and nothing follows the 410.
            time.sleep(1.0)
            assert len(receiver.received) == 2
    finally:
        engine.dispose()


def test_attempts_run_out_then_replay_sends_the_same_event(served):
    browser, account_id = _sign_up(served, "replay@example.com")
    other, _ = _sign_up(served, "other@example.com")
    with WebhookReceiver([Answer(503), Answer(500), Answer(500)]) as receiver:
        _end_job(served, account_id, receiver.url)
        received = receiver.wait_for(3)
        event_id = received[0].event_id
        wait_until(lambda: _event_status(served, event_id) == "failed", timeout=10, what="attempts used up")
        time.sleep(0.6)
        assert len(receiver.received) == 3  # 3 attempts in all
        assert other.post(f"/api/v1/webhooks/events/{event_id}/replay").status_code == 404
        replayed = browser.post(f"/api/v1/webhooks/events/{event_id}/replay")
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["data"] == {"event_id": event_id, "event": "job.failed", "status": "pending"}
        fourth = receiver.wait_for(4)[3]
        assert fourth.event_id == event_id and fourth.body == received[0].body
        wait_until(lambda: _event_status(served, event_id) == "delivered", timeout=10, what="delivered on replay")
    assert [(d["attempt"], d["status_code"]) for d in _deliveries(browser)] == [(1, 200), (3, 500), (2, 500),
                                                                                (1, 503)]  # fmt: skip
    assert _deliveries(other) == []
    assert browser.post("/api/v1/webhooks/events/evt_missing/replay").status_code == 404


def test_secret_is_session_only_and_rotation_changes_the_signature(served):
    browser, account_id = _sign_up(served, "secret@example.com")
    key = browser.post("/api/keys", json={"name": "ci"}).json()["key"]
    by_key, anonymous = TestClient(served, headers={"X-API-Key": key}), TestClient(served)
    assert by_key.get("/api/webhooks/secret").status_code == 403
    assert by_key.post("/api/webhooks/secret/rotate").status_code == 403
    assert anonymous.get("/api/webhooks/secret").status_code == 401
    first = browser.get("/api/webhooks/secret").json()["secret"]
    assert browser.get("/api/webhooks/secret").json()["secret"] == first  # made once, then kept
    rotated = browser.post("/api/webhooks/secret/rotate")
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    assert second != first and second.startswith("whsec_")
    assert browser.get("/api/webhooks/secret").json()["secret"] == second
    with WebhookReceiver() as receiver:
        _end_job(served, account_id, receiver.url)
        (got,) = receiver.wait_for(1)
    assert got.verify(second) and not got.verify_ours(first) and not got.verify_standard(first)


def test_a_refused_address_is_a_failed_attempt(settings):
    """Loopback not allow-listed: the URL passes at submission (not production) but every
    delivery is refused after resolution, and the log says why."""
    app, engine = _app(settings.model_copy(update={"webhook_retry_delays_seconds": [0.1, 0.1]}))
    try:
        with TestClient(app), WebhookReceiver() as receiver:
            browser, account_id = _sign_up(app, "ssrf@example.com")
            _end_job(app, account_id, receiver.url)
            wait_until(lambda: _attempts(app) == 3, timeout=15, interval=0.1, what="3 refused attempts")
            log = _deliveries(browser)
            assert all(d["status_code"] is None and "loopback address" in d["error"] for d in log), log
            assert log[0]["event_status"] == "failed"
            assert receiver.received == []
    finally:
        engine.dispose()


def test_racing_claims_send_once(hook_settings):
    """Two workers on their own engines (as two API processes) race for the same events."""
    app, engine = _app(hook_settings)
    second_engine = make_engine(hook_settings.resolved_database_url)
    try:
        browser, account_id = _sign_up(app, "race@example.com")
        with WebhookReceiver() as receiver:
            for _ in range(6):
                _end_job(app, account_id, receiver.url)
            with app.state.session_factory() as session:
                event_id = delivery.due_event_ids(session)[0]
            # The claim itself: of two simultaneous conditional updates, exactly one matches.
            barrier = threading.Barrier(2)
            won = []

            def race(factory):
                with factory() as session:
                    barrier.wait()
                    won.append(delivery.claim(session, event_id, lease_seconds=60))

            threads = [threading.Thread(target=race, args=(f,)) for f in
                       (app.state.session_factory, make_session_factory(second_engine))]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(won) == [False, True]
            with app.state.session_factory() as session:
                session.execute(update(WebhookEvent).where(WebhookEvent.id == event_id)
                                .values(locked_until=None))  # fmt: skip
                session.commit()
            # Two sets of workers, all polling at once: every event arrives once.
            workers = [delivery.DeliveryWorkers(settings=hook_settings, sessions=factory, threads=3) for factory in
                       (app.state.session_factory, make_session_factory(second_engine))]  # fmt: skip
            for worker in workers:
                worker.start()
            try:
                receiver.wait_for(6)
                wait_until(lambda: _attempts(app) >= 6, timeout=10, what="6 attempts logged")
                time.sleep(1.0)
            finally:
                for worker in workers:
                    worker.shutdown()
            ids = [r.event_id for r in receiver.received]
            assert len(ids) == 6 and len(set(ids)) == 6
            assert len(_deliveries(browser)) == 6
    finally:
        second_engine.dispose()
        engine.dispose()


def test_job_events_only_for_v1_jobs_with_a_url(hook_settings):
    app, engine = _app(hook_settings)
    try:
        _, account_id = _sign_up(app, "events@example.com")
        with session_scope(app.state.session_factory) as session:
            for api, url in [("reels", "https://example.com/h"), ("v1", None), ("v1", "https://example.com/h")]:
                job = Job(account_id=account_id, original_name="a.mp4", status=JobStatus.queued, api=api,
                          webhook_url=url)  # fmt: skip
                session.add(job)
                session.flush()
                finish_job(session, job, JobStatus.cancelled)
            # Rolled back with the state change: no event without it.
            nested = session.begin_nested()
            job = Job(account_id=account_id, original_name="b.mp4", status=JobStatus.queued, api="v1",
                      webhook_url="https://example.com/h")  # fmt: skip
            session.add(job)
            session.flush()
            finish_job(session, job, JobStatus.cancelled)
            nested.rollback()
        with app.state.session_factory() as session:
            events = session.query(WebhookEvent).all()
        assert [(e.event, e.url, e.body) for e in events] == [("job.cancelled", "https://example.com/h", None)]
        assert events[0].account_id == account_id and events[0].status == "pending"
    finally:
        engine.dispose()
