"""The scheduler's metrics, scraped over HTTP from its own server, as SchedulerCore works (fake nodes,
hand-driven clock: tests/scheduler/test_core.py's helpers)."""

from __future__ import annotations

import pytest

# The core tests' helpers and fixtures (a migrated database, a hand-driven clock), not copies.
from test_core import RecordingNodes, clock, register, sessions, state, submit  # noqa: F401 (fixtures)

from harness.metrics_scrape import free_port, scrape, value
from reelfarm.metrics_http import serve_metrics
from scheduler.core import SchedulerConfig, SchedulerCore
from scheduler.metrics import SchedulerMetrics


@pytest.fixture
def served(sessions, clock):
    metrics = SchedulerMetrics()
    core = SchedulerCore(sessions, RecordingNodes(), SchedulerConfig(node_timeout_seconds=2.0, retry_backoff_seconds=0.0),
                         clock=clock, metrics=metrics)  # fmt: skip
    server = serve_metrics(metrics.registry, "127.0.0.1", free_port(), "test scheduler")
    assert server is not None
    yield core, f"http://127.0.0.1:{server.port}/metrics"
    server.stop()


def test_queue_dispatch_and_node_counts(served, sessions):
    core, url = served
    job_id = submit(sessions)
    before = scrape(url)
    assert value(before, "reelfarm_scheduler_jobs_queued") == 1
    assert value(before, "reelfarm_scheduler_nodes_alive") == 0
    assert value(before, "reelfarm_scheduler_dispatch_latency_seconds_count") == 0

    core.plan_new_jobs()  # no node yet: the task waits
    waiting = scrape(url)
    assert value(waiting, "reelfarm_scheduler_queue_depth", kind="render") == 1
    assert value(waiting, "reelfarm_scheduler_tasks", state="pending", kind="render") == 1

    register(core, slots=2)
    core.tick()
    _, (task,) = state(sessions, job_id)
    assert task.state == "leased"
    after = scrape(url)
    assert value(after, "reelfarm_scheduler_nodes_alive") == 1
    assert value(after, "reelfarm_scheduler_free_slots") == 1
    assert value(after, "reelfarm_scheduler_leases") == 1
    assert value(after, "reelfarm_scheduler_queue_depth") == 0
    assert value(after, "reelfarm_scheduler_tasks", state="leased", kind="render") == 1
    assert value(after, "reelfarm_scheduler_tasks", state="pending") == 0
    assert value(after, "reelfarm_scheduler_jobs_queued") == 0
    assert value(after, "reelfarm_scheduler_dispatch_latency_seconds_count", kind="render") == 1
    assert value(after, "reelfarm_scheduler_tasks_dispatched_total", kind="render") == 1
    # The task waited from its creation to its RunTask: a real, small, non-negative time.
    assert 0 <= value(after, "reelfarm_scheduler_dispatch_latency_seconds_sum") < 60


def test_lease_expiries_are_counted_by_reason(served, sessions, clock):
    core, url = served
    job_id = submit(sessions)
    register(core, "n1")
    core.tick()
    clock.now += 3.0  # past node_timeout without a heartbeat: the node is down, its task re-queued
    core.expire()
    _, (task,) = state(sessions, job_id)
    assert task.state == "pending"
    first = scrape(url)
    assert value(first, "reelfarm_scheduler_lease_expiries_total", reason="node_down") == 1
    assert value(first, "reelfarm_scheduler_nodes_alive") == 0
    assert value(first, "reelfarm_scheduler_queue_depth", kind="render") == 1

    register(core, "n2")
    core.tick()
    register(core, "n2")  # restarted: it runs nothing now, so its lease is lost
    second = scrape(url)
    assert value(second, "reelfarm_scheduler_lease_expiries_total", reason="node_restarted") == 1
    assert value(second, "reelfarm_scheduler_lease_expiries_total") == 2
    assert value(second, "reelfarm_scheduler_dispatch_latency_seconds_count", kind="render") == 2
