"""The embedded default: API + scheduler + local Ray render nodes in one process tree,
on SQLite and a local storage folder under one data dir."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time

import uvicorn

from control_plane.main import create_app
from reelfarm.migrate import open_database
from reelfarm.node_process import NodeProcess, local_node_settings
from reelfarm.nodes import live_node_count
from reelfarm.quiet import quiet_env
from reelfarm.settings import Settings
from scheduler.server import SchedulerServer

log = logging.getLogger(__name__)


def init_local_ray(node_count: int, attempts: int = 3, *, verbose: bool = False, **kwargs) -> None:
    """Start a local Ray instance of our own for the embedded stack.

    `address="local"` always starts a new instance: without it `ray.init` joins whatever
    cluster a `ray start` (or a crashed run) left in `<ray temp dir>/ray_current_cluster`,
    and then refuses our `num_cpus`. Retried on Ray's start-up timeouts: Ray waits a fixed 30 s
    (hard-coded in ray/_private/node.py) for its raylet to register with its GCS, and on a
    crowded 2-core machine a start has been seen to miss it. Not reproduced since: with the
    page cache dropped, with Ray's fixed dashboard-agent port taken, and with the CPUs 3x
    oversubscribed a start took 2.7-10 s (bench/RESULTS.md). `serve` alone uses this now;
    `render` runs its node without Ray."""
    import ray

    from render_nodes.actor import RENDER_SLOT

    if ray.is_initialized():
        return
    if not verbose:
        quiet_env()
        kwargs = {"logging_level": logging.ERROR, "log_to_driver": False, **kwargs}
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                address="local",
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
    """API + scheduler + render nodes in one process tree.

    `use_ray=False` runs each node in a child process of its own (reelfarm/node_process.py:
    the same RenderNode, reached over gRPC by the scheduler) instead of as an actor of a local
    Ray: a one-shot render then pays neither Ray's start (~4 s here) nor its shutdown (~1.5 s).
    `node_processes` may be started early by the caller, so their imports overlap its own.
    `deliver_webhooks=False` (a one-shot render, whose jobs have no webhook) leaves the outbox's
    polling workers off.
    `timings` holds when each part was up, in seconds from `start()`."""

    def __init__(self, settings: Settings, *, nodes: int = 1, host: str = "127.0.0.1", port: int = 8000,
                 ray_log_to_driver: bool = True, use_ray: bool = True, verbose: bool = True,
                 node_processes: list[NodeProcess] | None = None, deliver_webhooks: bool = True) -> None:
        self.settings = local_node_settings(settings)
        self.node_count = nodes
        self.host, self.port = host, port
        self.ray_log_to_driver = ray_log_to_driver
        self.use_ray, self.verbose = use_ray, verbose
        self.scheduler: SchedulerServer | None = None
        self.nodes: list = []
        self.node_processes: list[NodeProcess] = list(node_processes or [])
        self.deliver_webhooks = deliver_webhooks
        self.timings: dict[str, float] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._owns_ray = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _mark(self, phase: str) -> None:
        self.timings[phase] = time.monotonic() - self._t0

    def start(self) -> "EmbeddedStack":
        self._t0 = time.monotonic()
        if self.use_ray:
            import ray  # only here: the in-process path never loads Ray (~0.35 s of a one-shot render)

            self._owns_ray = not ray.is_initialized()
        try:
            if self.use_ray:
                # Ray's start is mostly waiting on its own processes: the database, the scheduler and
                # the API come up meanwhile. ray.init stays on this thread: Ray ties its processes'
                # lives to the thread that started them (PR_SET_PDEATHSIG), so a helper thread that
                # ends would take them down with it.
                services = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embedded-start")
                up = services.submit(self._start_services)
                try:
                    init_local_ray(self.node_count, verbose=self.verbose, log_to_driver=self.ray_log_to_driver)
                    self._mark("ray")
                finally:
                    services.shutdown()
                up.result()
                from render_nodes.actor import start_render_nodes

                self.nodes = start_render_nodes(self.settings, self.scheduler.address, self.node_count,
                                                name_prefix=f"embedded-{os.getpid()}")
            else:
                self.node_processes += [NodeProcess(i, self.settings, verbose=self.verbose)
                                        for i in range(len(self.node_processes), self.node_count)]
                self._start_services(local_nodes=True)
            self._wait_for_nodes()
            self._mark("nodes")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_services(self, local_nodes: bool = False) -> None:
        _, self.session_factory = open_database(self.settings)
        self.scheduler = SchedulerServer(self.settings, listen="127.0.0.1:0",
                                         session_factory=self.session_factory).start()
        self._mark("scheduler")
        for node in self.node_processes if local_nodes else []:  # they register while the API starts
            node.connect(self.scheduler.address)
        self._start_api()
        self._mark("api")
        for node in self.node_processes if local_nodes else []:
            node.wait_ready()

    def _start_api(self) -> None:
        app = create_app(self.settings, session_factory=self.session_factory,
                         job_listener=lambda _job_id: self.scheduler.core.notify())
        self.app = app
        app.state.downloads.start()  # uvicorn runs without lifespan here: start URL downloads ourselves
        if self.deliver_webhooks:
            app.state.webhooks.start()  # and the webhook delivery workers, which poll the outbox
        self._server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

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
            time.sleep(0.02)

    def stop(self) -> None:
        # The API and the node processes are told first and waited for after: they wind down together.
        if self._server:
            self._server.should_exit = True
        for node in self.node_processes:
            node.stop()
        if self._server and self._thread:
            self._thread.join(timeout=10)
            self.app.state.downloads.shutdown()
            self.app.state.webhooks.shutdown()
        if self.nodes or self._owns_ray:
            import ray
        for handle in self.nodes:
            try:
                ray.get(handle.shutdown.remote(), timeout=10)
            except Exception:
                pass
            ray.kill(handle, no_restart=True)
        self.nodes = []
        for node in self.node_processes:
            node.wait()
        self.node_processes = []
        if self.scheduler:
            self.scheduler.stop()
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> "EmbeddedStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
