"""GET /metrics of the API, scraped over real HTTP: requests by route, and the webhook backlog."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from harness.metrics_scrape import free_port, scrape, value
from reelfarm.database import session_scope
from reelfarm.models import Account, WebhookEvent


@pytest.fixture
def served_api(api_app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_requests_are_counted_by_route_template(served_api):
    before = scrape(f"{served_api}/metrics")
    assert value(before, "http_requests_total", handler="/healthz") == 0
    for _ in range(3):
        assert httpx.get(f"{served_api}/healthz").status_code == 200
    # Two unknown jobs: counted under the route's template, not the raw path, as 4xx.
    for job_id in ("job_nope1", "job_nope2"):
        assert httpx.get(f"{served_api}/api/v1/jobs/{job_id}").status_code in (401, 404)
    after = scrape(f"{served_api}/metrics")
    assert value(after, "http_requests_total", handler="/healthz", method="GET", status="2xx") == 3
    assert value(after, "http_request_duration_seconds_count", handler="/healthz", method="GET") == 3
    assert value(after, "http_requests_total", handler="/api/v1/jobs/{job_id}", status="4xx") == 2
    assert not [labels for labels, _ in after["http_requests_total"] if "job_nope" in labels["handler"]]
    # The scrapes themselves are left out.
    assert value(after, "http_requests_total", handler="/metrics") == 0


def test_metrics_is_not_in_the_openapi_schema(served_api):
    schema = httpx.get(f"{served_api}/openapi.json").json()
    assert "/metrics" not in schema["paths"]
    assert "/api/v1/jobs/{job_id}" in schema["paths"]


def test_webhook_backlog_counts_pending_events(served_api, api_app):
    assert value(scrape(f"{served_api}/metrics"), "reelfarm_webhook_backlog") == 0
    with session_scope(api_app.state.session_factory) as s:
        account = Account(name="hooks")
        s.add(account)
        s.flush()
        for status in ("pending", "pending", "pending", "delivered", "failed"):
            s.add(WebhookEvent(account_id=account.id, event="job.completed", subject_id="job_x",
                               url="https://example.com/hook", status=status))  # fmt: skip
    assert value(scrape(f"{served_api}/metrics"), "reelfarm_webhook_backlog") == 3
    with session_scope(api_app.state.session_factory) as s:
        s.get(WebhookEvent, s.query(WebhookEvent.id).filter_by(status="pending").first()[0]).status = "delivered"
    assert value(scrape(f"{served_api}/metrics"), "reelfarm_webhook_backlog") == 2
