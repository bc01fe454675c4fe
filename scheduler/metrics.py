"""The scheduler's Prometheus metrics (served at /metrics on REELFARM_SCHEDULER_METRICS_PORT).

One registry per scheduler (tests run many in one process). What the database holds
(queue depth, tasks by state) is counted when Prometheus scrapes, by a collector running
one grouped query; what happens in the scheduler (dispatches, lease expiries) is
recorded as it happens by thin calls in scheduler/core.py. The gRPC server's own
metrics (py-grpc-prometheus: grpc_server_started_total, grpc_server_handled_total,
grpc_server_handling_seconds...) go to the same registry (scheduler/server.py).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from reelfarm.models import Job, Task
from reelfarm.states import JobStatus, TaskKind, TaskState

log = logging.getLogger(__name__)

# Seconds from a task being ready (created, or its retry backoff over) to its RunTask.
DISPATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.dispatch_latency = Histogram(
            "reelfarm_scheduler_dispatch_latency_seconds",
            "Seconds from a task becoming ready (pending, past its backoff) to being sent to a node.",
            ["kind"], buckets=DISPATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.dispatched = Counter("reelfarm_scheduler_tasks_dispatched", "Tasks leased and sent to a node.",
                                  ["kind"], registry=self.registry)  # fmt: skip
        self.lease_expiries = Counter(
            "reelfarm_scheduler_lease_expiries",
            "Leased tasks re-queued because their node died, restarted, stopped listing them or never came back.",
            ["reason"], registry=self.registry,
        )  # fmt: skip

    def watch(self, core) -> None:
        """Count a SchedulerCore's nodes and its database's queue at every scrape (not imported here:
        scheduler/core.py imports this module)."""
        self.registry.register(_StateCollector(core))

    # Thin calls from scheduler/core.py.

    def task_dispatched(self, kind: str, waited_seconds: float) -> None:
        self.dispatched.labels(kind).inc()
        self.dispatch_latency.labels(kind).observe(max(0.0, waited_seconds))

    def lease_expired(self, reason: str) -> None:
        self.lease_expiries.labels(reason).inc()


class _StateCollector(Collector):
    def __init__(self, core) -> None:
        self.core = core

    def describe(self):
        return []  # collected only at scrape time (no database query at registration)

    def collect(self):
        core = self.core
        with core._lock:
            nodes = list(core.nodes.values())
            leases = len(core.leases)
        alive = GaugeMetricFamily("reelfarm_scheduler_nodes_alive", "Render nodes registered and heartbeating.")
        alive.add_metric([], sum(1 for n in nodes if not n.draining))
        yield alive
        draining = GaugeMetricFamily("reelfarm_scheduler_nodes_draining", "Render nodes draining (taking no work).")
        draining.add_metric([], sum(1 for n in nodes if n.draining))
        yield draining
        slots = GaugeMetricFamily("reelfarm_scheduler_free_slots", "Task slots free on live nodes.")
        slots.add_metric([], sum(n.free_slots for n in nodes))
        yield slots
        held = GaugeMetricFamily("reelfarm_scheduler_leases", "Tasks leased to nodes (held in memory).")
        held.add_metric([], leases)
        yield held
        try:
            with core.sessions() as s:
                by_state = s.execute(select(Task.state, Task.kind, func.count()).group_by(Task.state, Task.kind)).all()
                queued_jobs = s.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued))
        except Exception:  # a scrape must not fail because the database hiccuped
            log.warning("scheduler metrics: database counts unavailable", exc_info=True)
            return
        tasks = GaugeMetricFamily("reelfarm_scheduler_tasks", "Tasks in the database by state and kind.",
                                  labels=["state", "kind"])  # fmt: skip
        counts = {(str(state), str(kind)): n for state, kind, n in by_state}
        for state in TaskState:  # every state and kind, zeros included, so a panel never has gaps
            for kind in TaskKind:
                tasks.add_metric([state.value, kind.value], counts.get((state.value, kind.value), 0))
        yield tasks
        pending = GaugeMetricFamily("reelfarm_scheduler_queue_depth",
                                    "Tasks waiting for a node (state pending), by kind.", labels=["kind"])  # fmt: skip
        for kind in TaskKind:
            pending.add_metric([kind.value], counts.get((TaskState.pending.value, kind.value), 0))
        yield pending
        jobs = GaugeMetricFamily("reelfarm_scheduler_jobs_queued", "Jobs submitted and not yet started.")
        jobs.add_metric([], queued_jobs or 0)
        yield jobs
