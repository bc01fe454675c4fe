"""A render node's metrics (render_nodes/metrics.py), scraped over HTTP: failures by kind and cause.
(Completed tasks by kind, frames/s and the encoder are checked on a real job: tests/system/test_metrics.py.)"""

from __future__ import annotations

import threading

import pytest

from harness.metrics_scrape import free_port, scrape, value
from reelfarm.metrics_http import serve_metrics
from render_nodes import metrics
from render_nodes.tasks import run_task
from render_nodes.tasks.common import TaskFailure


@pytest.fixture
def node_metrics_url():
    server = serve_metrics(metrics.REGISTRY, "127.0.0.1", free_port(), "test node")
    assert server is not None
    yield f"http://127.0.0.1:{server.port}/metrics"
    server.stop()


def test_failures_are_counted_by_kind_and_cause(node_metrics_url, tmp_path):
    before = scrape(node_metrics_url)
    with pytest.raises(TaskFailure, match="unknown task kind"):
        run_task({"task_id": "t1", "lease_id": "l1", "kind": "juggle"}, storage=None, work_dir=tmp_path,
                 on_progress=lambda *_: None, cancel=threading.Event())  # fmt: skip
    with pytest.raises(KeyError):  # a bug on the node (here: no storage given) is a crash
        run_task({"task_id": "t2", "lease_id": "l2", "kind": "analyze", "analysis": {}}, work_dir=tmp_path,
                 on_progress=lambda *_: None, cancel=threading.Event())  # fmt: skip
    after = scrape(node_metrics_url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("reelfarm_node_task_failures_total", kind="juggle", cause="permanent") == 1
    assert delta("reelfarm_node_task_failures_total", kind="analyze", cause="crash") == 1
    assert delta("reelfarm_node_task_duration_seconds_count", kind="juggle", outcome="failed") == 1
    assert delta("reelfarm_node_task_duration_seconds_count", outcome="completed") == 0


def test_encoder_labels_and_frames_per_second(node_metrics_url):
    before = scrape(node_metrics_url)
    metrics.clip_rendered("h264_nvenc", frames=300, seconds=2.0)
    metrics.clip_rendered("libx264", frames=120, seconds=4.0)
    after = scrape(node_metrics_url)
    assert value(after, "reelfarm_node_encoder_used_total", encoder="nvenc") - \
        value(before, "reelfarm_node_encoder_used_total", encoder="nvenc") == 1
    assert value(after, "reelfarm_node_render_fps_sum", encoder="nvenc") - \
        value(before, "reelfarm_node_render_fps_sum", encoder="nvenc") == pytest.approx(150.0)
    assert value(after, "reelfarm_node_render_fps_sum", encoder="x264") - \
        value(before, "reelfarm_node_render_fps_sum", encoder="x264") == pytest.approx(30.0)


def test_a_taken_port_is_logged_not_fatal(node_metrics_url, caplog):
    port = int(node_metrics_url.split(":")[2].split("/")[0])
    assert serve_metrics(metrics.REGISTRY, "127.0.0.1", port, "second node") is None
    assert "cannot listen" in caplog.text
    assert serve_metrics(metrics.REGISTRY, "127.0.0.1", 0, "off") is None  # 0: off
