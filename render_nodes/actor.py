"""Render nodes as Ray actors: each one serves RenderNodeService and registers itself.

Ray places the actors (`actor_placement`: one GPU each where the cluster has GPUs, else one
`render_slot` where the cluster declares that resource, else one CPU; REELFARM_NODE_PLACEMENT
picks one of these) and restarts one that dies; a restarted actor registers again under
the same node id, and the scheduler re-queues whatever the dead one held.
"""

from __future__ import annotations

import logging
import os
import socket

from grpc_health.v1 import health

from reelfarm.settings import Settings
from reelfarm.storage import open_storage
from render_nodes import metrics as node_metrics
from render_nodes.faces import make_detector
from render_nodes.node import NodeCore, detect_capabilities, detect_gpus
from render_nodes.scheduler_link import SchedulerLink
from render_nodes.servicer import serve_node
from render_nodes.speech.engines import SpeechEngines
from render_nodes.tasks import run_task

RENDER_SLOT = "render_slot"


class RenderNode:
    """The actor body; also usable in-process (tests, benchmarks)."""

    def __init__(self, node_id: str, settings: dict, scheduler_address: str | None, metrics_port: int = 0,
                 grpc_port: int = 0) -> None:  # fmt: skip
        """`metrics_port`: where this process serves the node's /metrics (render_nodes/metrics.py); 0: nowhere.
        `grpc_port`: the node's gRPC port; 0: any free port. `scheduler_address` None: the node serves
        but registers only on `connect` (render_nodes/process.py starts before its scheduler does)."""
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        self.settings = Settings.model_validate(settings)  # the launcher's, as start_render_nodes sent them
        work_dir = self.settings.resolved_work_dir / node_id
        work_dir.mkdir(parents=True, exist_ok=True)
        storage = open_storage(self.settings, spool_dir=work_dir)
        # Loaded once per node; a configured detector that cannot load stops the node
        # here (DetectorUnavailable says why) rather than render unframed clips.
        detector = None
        if self.settings.face_detector != "none":
            detector = make_detector(self.settings.face_detector, model_path=self.settings.face_model_path)
        gpus = detect_gpus()
        # Whisper models are checked (SHA-256) once per node start; what cannot load is
        # logged and left out of the capabilities.
        engines = SpeechEngines(preference=self.settings.transcriber, model_dir=self.settings.whisper_model_dir,
                                model_sha256=self.settings.whisper_model_sha256,
                                english_model=self.settings.whisper_english_model, gpus=gpus)  # fmt: skip
        capabilities = detect_capabilities(
            self.settings.node_max_concurrent_tasks, [self.settings.face_detector] if detector else [],
            speech=engines.capabilities(), gpus=gpus,
        )
        self.core = NodeCore(
            node_id,
            link=None,
            capabilities=capabilities,
            executor=run_task,
            executor_kwargs={
                "storage": storage,
                "work_dir": work_dir,
                "encoders": capabilities["encoders"],
                "detector": detector,
                "engines": engines,
                "sample_fps": self.settings.analysis_sample_fps,
                "frame_buffer_mb": self.settings.render_frame_buffer_mb,
                "hwaccel": "cuda" if "cuda" in capabilities["hwaccels"] else None,
                "settings": self.settings,  # campaign tasks: the fetch policy, the LLM, the translator
            },
        )
        host = self.settings.node_host or _node_ip()
        self.health = health.HealthServicer()
        self.server, self.address = serve_node(self.core, host, grpc_port, settings=self.settings,
                                               health_servicer=self.health)  # fmt: skip
        self.metrics_server = node_metrics.serve(host, metrics_port)
        if scheduler_address is not None:
            self.connect(scheduler_address)

    def connect(self, scheduler_address: str) -> None:
        """Register with the scheduler at `scheduler_address` (retrying until it answers) and heartbeat."""
        self.core.link = SchedulerLink(scheduler_address, self.settings)
        self.core.start(self.address)

    def info(self) -> dict:
        return {"node_id": self.core.node_id, "address": self.address, "pid": os.getpid(),
                "capabilities": self.core.capabilities}

    def status(self) -> dict:
        status = self.core.status()
        status["running"] = [r.task_id for r in status["running"]]
        return status

    def shutdown(self) -> None:
        self.health.enter_graceful_shutdown()  # NOT_SERVING from here on
        self.core.stop()
        self.server.stop(1).wait()


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:
        return socket.gethostbyname(socket.gethostname())


def actor_placement(cluster_resources: dict, mode: str = "auto") -> dict:
    """Ray options that place one node actor: what it reserves on the cluster.

    "auto": one GPU where the cluster has GPUs; else one `render_slot` where the cluster declares
    that resource (the embedded stack, the Helm chart's worker groups); else one CPU, so a plain
    `ray start` cluster needs no custom resource. The node's real capacity (concurrent tasks,
    encoders, GPUs) is what it reports to the scheduler when it registers.
    """
    if mode == "auto":
        if cluster_resources.get("GPU", 0) >= 1:
            mode = "gpu"
        elif cluster_resources.get(RENDER_SLOT, 0) >= 1:
            mode = "render_slot"
        else:
            mode = "cpu"
    if mode == "gpu":
        return {"num_gpus": 1}
    if mode == "render_slot":
        return {"num_cpus": 0, "resources": {RENDER_SLOT: 1}}
    if mode == "cpu":
        return {"num_cpus": 1}
    raise ValueError(f"unknown node placement {mode!r}")


def start_render_nodes(settings: Settings, scheduler_address: str, count: int, name_prefix: str | None = None,
                       *, on_this_ray_node: bool = False) -> list:  # fmt: skip
    """Start `count` node actors on the connected Ray cluster; returns their handles once ready.

    `on_this_ray_node`: place them on the Ray node this process is attached to (`reelfarm node` in a
    worker pod), so its fixed gRPC and metrics ports (settings.node_port + i, node_metrics_port + i)
    are that pod's, where its probes and scrapers look; otherwise Ray may use any node's free slot.
    """
    # The launching process's pid too: two `reelfarm node` processes on one machine (or a restarted
    # one) must not register under one node id, or the scheduler takes one for a restart of the other.
    import ray  # here, not at the top: an in-process node (`reelfarm render`) never loads Ray (~0.35 s)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    prefix = name_prefix or f"{socket.gethostname()}-{os.getpid()}-node"
    resources = ray.cluster_resources()
    placement = actor_placement(resources, settings.node_placement)
    wanted = {"GPU": placement.get("num_gpus", 0), "CPU": placement.get("num_cpus", 0),
              **placement.get("resources", {})}
    for name, each in wanted.items():
        if each and resources.get(name, 0) < each * count:
            logging.getLogger(__name__).warning(
                "%d render node(s) need %g %s in all; the Ray cluster has %g: some wait until it has more",
                count, each * count, name, resources.get(name, 0))
    if on_this_ray_node:
        placement["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                          soft=False)  # fmt: skip
    node_settings = settings.model_dump(mode="json")
    # Node actors run in Ray's worker processes, with `ray start`'s environment rather than this
    # process's: S3 credentials given to `reelfarm node` as AWS_* travel with the settings.
    aws_key, aws_secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if settings.s3_access_key_id is None and aws_key and aws_secret:
        node_settings.update(s3_access_key_id=aws_key, s3_secret_access_key=aws_secret)
    actor_class = ray.remote(RenderNode)
    handles = [
        actor_class.options(max_restarts=-1, max_concurrency=4, **placement).remote(
            f"{prefix}-{i}", node_settings, scheduler_address,
            # Actor i serves its metrics on the node metrics port + i and gRPC on the node port + i.
            settings.node_metrics_port + i if settings.node_metrics_port else 0,
            settings.node_port + i if settings.node_port else 0,
        )
        for i in range(count)
    ]
    ray.get([h.info.remote() for h in handles])
    return handles
