"""The API's Prometheus metrics at GET /metrics (not in the OpenAPI schema).

Requests by route (the route's template, not the raw path), method and status class,
and their latency, come from prometheus-fastapi-instrumentator: `http_requests_total`,
`http_request_duration_seconds` (by route, with buckets fine enough for p50/p95),
`http_request_duration_highr_seconds`, request and response sizes. The webhook backlog
(`reelfarm_webhook_backlog`: events still to deliver) is counted by one indexed query
(ix_webhook_events_due) when Prometheus scrapes. Each app has its own registry, so tests
can build many apps in one process.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy import func, select

from reelfarm.models import WebhookEvent

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# Request latency buckets (seconds) of the per-route histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookBacklogCollector(Collector):
    """Webhook events still to deliver (status pending, first tries and retries alike)."""

    def __init__(self, session_factory) -> None:
        self.session_factory = session_factory

    def describe(self):
        return []  # collected only at scrape time

    def collect(self):
        try:
            with self.session_factory() as s:
                pending = s.scalar(select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == "pending"))
        except Exception:  # a scrape must not fail because the database hiccuped
            log.warning("API metrics: webhook backlog unavailable", exc_info=True)
            return
        backlog = GaugeMetricFamily("reelfarm_webhook_backlog", "Webhook events waiting to be delivered.")
        backlog.add_metric([], pending)
        yield backlog


def install(app: FastAPI) -> CollectorRegistry:
    """Instrument every route and serve GET /metrics; call after the other middleware,
    so requests refused early (rate limits) are counted too."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(WebhookBacklogCollector(app.state.session_factory))
    instrumentator = Instrumentator(excluded_handlers=[f"^{METRICS_PATH}$"], registry=registry)
    instrumentator.instrument(app, latency_lowr_buckets=LATENCY_BUCKETS)
    instrumentator.expose(app, endpoint=METRICS_PATH, include_in_schema=False)
    app.state.metrics_registry = registry
    return registry
