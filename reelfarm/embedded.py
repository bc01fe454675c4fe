"""The embedded default: API + scheduler + local Ray render nodes in one process tree,
on SQLite and a local storage folder under one data dir."""

from __future__ import annotations

import logging
import os
import threading
import time

import ray
import uvicorn

from control_plane.main import create_app
from reelfarm.migrate import open_database
from reelfarm.nodes import live_node_count
from reelfarm.settings import Settings
from render_nodes.actor import RENDER_SLOT, start_render_nodes
from scheduler.server import SchedulerServer

log = logging.getLogger(__name__)


def init_local_ray(node_count: int, attempts: int = 3, **kwargs) -> None:
    """Start a local Ray for the embedded stack (retried: on a busy 2-core machine its
    raylet or GCS has been seen to miss Ray's fixed start-up window once in a while)."""
    if ray.is_initialized():
        return
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=max(2, os.cpu_count() or 2),
                include_dashboard=False,
                resources={RENDER_SLOT: node_count},
                # Everything is on this machine: no need to discover an outward address.
                _node_ip_address="127.0.0.1",
                **kwargs,
            )
            return
        except Exception as exc:
            # Both of Ray's start-up waits: "timed out during startup" (raylet) and
            # "Timed out waiting for file .../gcs_server_port_..." (GCS).
            if "timed out" not in str(exc).lower() or attempt == attempts:
                raise
            log.warning("local Ray did not start (%s); trying again", exc)
            ray.shutdown()


class EmbeddedStack:
    def __init__(self, settings: Settings, *, nodes: int = 1, host: str = "127.0.0.1", port: int = 8000,
                 ray_log_to_driver: bool = True) -> None:
        # Nodes on this machine listen on loopback only.
        self.settings = settings.model_copy(update={"node_host": settings.node_host or "127.0.0.1"})
        self.node_count = nodes
        self.host, self.port = host, port
        self.ray_log_to_driver = ray_log_to_driver
        self.scheduler: SchedulerServer | None = None
        self.nodes: list = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._owns_ray = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "EmbeddedStack":
        _, self.session_factory = open_database(self.settings)
        self.scheduler = SchedulerServer(self.settings, listen="127.0.0.1:0",
                                         session_factory=self.session_factory).start()
        self._owns_ray = not ray.is_initialized()
        init_local_ray(self.node_count, log_to_driver=self.ray_log_to_driver)
        self.nodes = start_render_nodes(self.settings, self.scheduler.address, self.node_count,
                                        name_prefix=f"embedded-{os.getpid()}")
        try:
            self._wait_for_nodes()
        except BaseException:
            self.stop()
            raise
        app = create_app(self.settings, session_factory=self.session_factory,
                         job_listener=lambda _job_id: self.scheduler.core.notify())
        self.app = app
        app.state.downloads.start()  # uvicorn runs without lifespan here: start URL downloads ourselves
        app.state.webhooks.start()  # and the webhook delivery workers
        self._server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _wait_for_nodes(self, timeout: float = 120.0) -> None:
        """Ready means ready to take jobs: the API answers 503 until the scheduler has published a
        live node (control_plane/jobs/pipeline.py), so wait until every node is seen there."""
        deadline = time.monotonic() + timeout
        while True:
            with self.session_factory() as session:
                live = live_node_count(session, self.settings.node_timeout_seconds)
            if live >= self.node_count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{live} of {self.node_count} render nodes registered within {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self.app.state.downloads.shutdown()
            self.app.state.webhooks.shutdown()
        for handle in self.nodes:
            try:
                ray.get(handle.shutdown.remote(), timeout=10)
            except Exception:
                pass
            ray.kill(handle, no_restart=True)
        self.nodes = []
        if self.scheduler:
            self.scheduler.stop()
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> "EmbeddedStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
