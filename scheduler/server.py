"""The scheduler process: gRPC server + scheduling loop over the shared database."""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from py_grpc_prometheus.prometheus_server_interceptor import PromServerInterceptor

from analysis.llm import LlmConfig
from reelfarm.database import make_engine, make_session_factory
from reelfarm.grpc_security import add_port
from reelfarm.metrics_http import MetricsServer, serve_metrics
from reelfarm.settings import Settings
from reelfarm.v1 import scheduler_pb2_grpc
from scheduler.core import SchedulerConfig, SchedulerCore
from scheduler.metrics import SchedulerMetrics
from scheduler.node_client import GrpcNodeClient
from scheduler.servicer import SchedulerServicer

log = logging.getLogger(__name__)

SERVICE_NAME = "reelfarm.v1.SchedulerService"


def config_from_settings(settings: Settings) -> SchedulerConfig:
    return SchedulerConfig(
        node_timeout_seconds=settings.node_timeout_seconds,
        max_attempts=settings.max_attempts,
        retry_backoff_seconds=settings.retry_backoff_seconds,
        retry_backoff_max_seconds=settings.retry_backoff_max_seconds,
        progress_flush_seconds=settings.progress_flush_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        transcriber=settings.transcriber,
        transcribe_chunk_seconds=settings.transcribe_chunk_seconds,
        llm=LlmConfig(base_url=settings.llm_base_url, api_key=settings.llm_api_key, model=settings.llm_model,
                      timeout_seconds=settings.llm_timeout_seconds),  # fmt: skip
    )


class SchedulerServer:
    """Owns a SchedulerCore, its loop thread and its gRPC server."""

    def __init__(self, settings: Settings, listen: str | None = None, session_factory=None) -> None:
        self.settings = settings
        self.listen = listen or settings.scheduler_address
        if session_factory is None:
            session_factory = make_session_factory(make_engine(settings.resolved_database_url))
        self.node_client = GrpcNodeClient(settings)  # TLS to the nodes by settings
        self.metrics = SchedulerMetrics()
        self.core = SchedulerCore(session_factory, self.node_client, config_from_settings(settings), metrics=self.metrics)
        self.metrics_server: MetricsServer | None = None
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._server: grpc.Server | None = None
        self.health: health.HealthServicer | None = None
        self.port: int | None = None

    @property
    def address(self) -> str:
        host = self.listen.rsplit(":", 1)[0]
        return f"{'127.0.0.1' if host in ('0.0.0.0', '[::]') else host}:{self.port}"

    def start(self) -> "SchedulerServer":
        recovered = self.core.recover()
        if recovered:
            log.info("recovered %d leased tasks; waiting for their nodes", recovered)
        # Progress streams hold a thread each while a node has running tasks.
        # Per-RPC counts and latencies (py-grpc-prometheus) into the scheduler's registry.
        interceptor = PromServerInterceptor(enable_handling_time_histogram=True, registry=self.metrics.registry)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=256, thread_name_prefix="sched-rpc"),
                             interceptors=[interceptor])
        scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(SchedulerServicer(self.core), server)
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        self.port = add_port(server, self.listen, self.settings)  # TLS/mTLS by settings
        if not self.port:
            raise RuntimeError(f"cannot listen on {self.listen}")
        server.start()
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self.health = health_servicer
        self._stop.clear()
        self._loop = threading.Thread(target=self.core.run, args=(self._stop,), name="scheduler-loop", daemon=True)
        self._loop.start()
        log.info("scheduler listening on %s", self.address)
        self.metrics_server = serve_metrics(self.metrics.registry, self.listen.rsplit(":", 1)[0],
                                            self.settings.scheduler_metrics_port, "scheduler")
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self.health is not None:  # stopping: NOT_SERVING, so health checks route around it
            self.health.enter_graceful_shutdown()
        self._stop.set()
        self.core.notify()
        if self._loop:
            self._loop.join(timeout=10)
        if self._server:
            self._server.stop(grace).wait()
        self.node_client.close()
        if self.metrics_server:
            self.metrics_server.stop()
            self.metrics_server = None
