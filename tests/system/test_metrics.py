"""Every service's /metrics on the embedded stack, scraped over HTTP after a real job; and the
Grafana dashboard (helm/reelfarm/dashboards/reelfarm.json) asks only for metrics they export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import make_video, new_api_key

from harness.metrics_scrape import free_port, scrape, value
from reelfarm.client import ReelFarmClient

DASHBOARD = Path(__file__).resolve().parents[2] / "helm" / "reelfarm" / "dashboards" / "reelfarm.json"
OUR_PREFIXES = ("reelfarm_", "http_", "grpc_server_", "process_")


def dashboard_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows hold theirs
    return panels


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers and by/without lists removed first)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    return {m for m in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if m.startswith(OUR_PREFIXES)}


def test_dashboard_is_valid_with_unique_panel_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(exprs) >= 12
    assert all(metric_names(e) for e in exprs), [e for e in exprs if not metric_names(e)]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("request rate", "latency", "5xx", "queue depth", "tasks by state", "dispatch latency",
                  "nodes alive", "webhook backlog", "task duration", "frames", "encoder", "failures"):
        assert topic in titles, topic


@pytest.fixture
def metrics_stack(start_stack, settings):
    ports = {"scheduler_metrics_port": free_port(), "node_metrics_port": free_port()}
    stack = start_stack(settings.model_copy(update=ports))
    return stack, {"api": f"{stack.base_url}/metrics",
                   "scheduler": f"http://127.0.0.1:{ports['scheduler_metrics_port']}/metrics",
                   "node": f"http://127.0.0.1:{ports['node_metrics_port']}/metrics"}  # fmt: skip


def test_a_job_shows_in_every_service_metrics(metrics_stack, tmp_path):
    stack, urls = metrics_stack
    scheduler = scrape(urls["scheduler"])
    assert value(scheduler, "reelfarm_scheduler_nodes_alive") == 1
    # The node's registration went through the gRPC interceptor.
    assert value(scheduler, "grpc_server_handled_total", grpc_method="RegisterNode", grpc_code="OK") >= 1
    assert value(scheduler, "reelfarm_scheduler_dispatch_latency_seconds_count") == 0

    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    try:
        # ai mode on a silent source: transcribe + analyze tasks, then a render.
        source = make_video(tmp_path / "silent.mp4", seconds=20, size="160x120", audio=False)
        created = client.upload(source, {"numClips": 1, "clipLength": "short", "aspectRatio": "1:1"})
        job = client.wait(created["jobId"], timeout=180)
    finally:
        client.close()
    assert job["status"] == "completed", job
    kinds = {t["kind"] for t in job["tasks"]}
    assert kinds == {"transcribe", "analyze", "render"}

    scheduler = scrape(urls["scheduler"])
    for kind in kinds:
        assert value(scheduler, "reelfarm_scheduler_dispatch_latency_seconds_count", kind=kind) >= 1, kind
    assert value(scheduler, "reelfarm_scheduler_dispatch_latency_seconds_count") == len(job["tasks"])
    assert value(scheduler, "reelfarm_scheduler_tasks", state="completed") == len(job["tasks"])
    for state in ("pending", "leased", "running", "failed"):
        assert value(scheduler, "reelfarm_scheduler_tasks", state=state) == 0, state
    assert value(scheduler, "reelfarm_scheduler_queue_depth") == 0
    assert value(scheduler, "reelfarm_scheduler_jobs_queued") == 0
    assert value(scheduler, "grpc_server_handled_total", grpc_method="CompleteTask", grpc_code="OK") == len(job["tasks"])
    assert value(scheduler, "reelfarm_scheduler_lease_expiries_total") == 0

    node = scrape(urls["node"])
    for kind in kinds:
        assert value(node, "reelfarm_node_task_duration_seconds_count", kind=kind, outcome="completed") >= 1, kind
    assert value(node, "reelfarm_node_encoder_used_total", encoder="x264") == 1
    assert value(node, "reelfarm_node_render_fps_count", encoder="x264") == 1
    assert value(node, "reelfarm_node_render_fps_sum", encoder="x264") > 0
    assert value(node, "reelfarm_node_rendered_frames_total", encoder="x264") > 0
    assert value(node, "reelfarm_node_task_failures_total") == 0

    api = scrape(urls["api"])
    assert value(api, "http_requests_total", handler="/api/upload", method="POST", status="2xx") == 1
    assert value(api, "reelfarm_webhook_backlog") == 0

    # Every metric the dashboard queries is one these services export.
    exported = set(scheduler) | set(node) | set(api)
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = {name for p in dashboard_panels(dashboard) for t in p.get("targets", []) for name in metric_names(t["expr"])}
    assert wanted and not wanted - exported, sorted(wanted - exported)
