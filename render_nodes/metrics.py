"""A render node's Prometheus metrics (served at /metrics on REELFARM_NODE_METRICS_PORT + the actor's index).

Each node is a Ray actor in a worker process of its own, so the metrics are this
process's (one registry per process) and each actor serves them over HTTP itself,
with prometheus_client's server: actor i of a launch (render_nodes/actor.py) listens on
the node metrics port + i, on the node's host. Chosen over Ray's `ray.util.metrics`,
whose export goes through Ray's metrics agent (part of the dashboard processes, which
the embedded stack leaves out) under Ray's own names and port: these need no agent,
keep their names, and are scraped like the scheduler's. A node used in-process (tests,
benchmarks) records into the same registry and serves nothing unless asked.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from reelfarm.metrics_http import MetricsServer, serve_metrics

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

TASK_DURATION = Histogram(
    "reelfarm_node_task_duration_seconds",
    "Wall seconds a task ran on this node, by kind and outcome (completed, failed, cancelled).",
    ["kind", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
    registry=REGISTRY,
)
TASK_FAILURES = Counter(
    "reelfarm_node_task_failures",
    "Tasks that failed on this node, by kind and cause (retryable, permanent, crash; cancellations excluded).",
    ["kind", "cause"],
    registry=REGISTRY,
)
RENDER_FPS = Histogram(
    "reelfarm_node_render_fps",
    "Output frames a second of each render (decode, analysis, crop and encode together).",
    ["encoder"],
    buckets=(1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 480),
    registry=REGISTRY,
)
RENDER_FRAMES = Counter("reelfarm_node_rendered_frames", "Output frames rendered, by encoder.", ["encoder"],
                        registry=REGISTRY)  # fmt: skip
ENCODER_USED = Counter("reelfarm_node_encoder_used", "Clips encoded, by encoder (nvenc or x264).", ["encoder"],
                       registry=REGISTRY)  # fmt: skip

# ffmpeg's encoder names -> the label the dashboards use.
ENCODER_LABEL = {"h264_nvenc": "nvenc", "hevc_nvenc": "nvenc", "av1_nvenc": "nvenc", "libx264": "x264"}

_server: MetricsServer | None = None
_server_lock = threading.Lock()


def encoder_label(encoder: str) -> str:
    return ENCODER_LABEL.get(encoder, encoder or "unknown")


# Thin calls from render_nodes/tasks/.


def task_finished(kind: str, seconds: float, *, outcome: str, cause: str | None = None) -> None:
    TASK_DURATION.labels(kind, outcome).observe(seconds)
    if outcome == "failed":
        TASK_FAILURES.labels(kind, cause or "permanent").inc()


def clip_rendered(encoder: str, frames: int, seconds: float) -> None:
    label = encoder_label(encoder)
    ENCODER_USED.labels(label).inc()
    RENDER_FRAMES.labels(label).inc(frames)
    if seconds > 0 and frames > 0:
        RENDER_FPS.labels(label).observe(frames / seconds)


def serve(host: str, port: int) -> MetricsServer | None:
    """Serve this process's node metrics on host:port (once per process; 0 = off)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = serve_metrics(REGISTRY, host, port, "render node")
        return _server
