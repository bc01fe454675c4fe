"""Serving a Prometheus registry over HTTP (`/metrics`), shared by the scheduler and the render nodes.

The API serves its metrics on its own port (control_plane/metrics.py); the scheduler and
each render node have no HTTP server of their own, so they start prometheus_client's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    host: str
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def bind_host(host: str) -> str:
    """A listen host as the socket layer wants it ("[::]" -> "::")."""
    return host.strip("[]") or "0.0.0.0"


def serve_metrics(registry: CollectorRegistry, host: str, port: int, what: str) -> MetricsServer | None:
    """Serve `registry` at http://host:port/metrics from a daemon thread; None when `port` is 0.

    A port that cannot be bound is logged and skipped: metrics are not worth stopping
    the service for (another process on this host may hold the port)."""
    if not port:
        return None
    host = bind_host(host)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("%s metrics not served: cannot listen on %s:%d (%s)", what, host, port, exc)
        return None
    log.info("%s metrics on http://%s:%d/metrics", what, host, port)
    return MetricsServer(server, thread, host, server.server_address[1])
