"""Render nodes as Ray actors: each one serves RenderNodeService and registers itself.

Ray places the actors (one GPU each where the cluster has GPUs, otherwise one
`render_slot`) and restarts one that dies; a restarted actor registers again under
the same node id, and the scheduler re-queues whatever the dead one held.
"""

from __future__ import annotations

import logging
import os
import socket

import ray

from reelfarm.settings import Settings
from reelfarm.storage import open_storage
from render_nodes.faces import make_detector
from render_nodes.node import NodeCore, detect_capabilities, detect_gpus
from render_nodes.scheduler_link import SchedulerLink
from render_nodes.servicer import serve_node
from render_nodes.speech.engines import SpeechEngines
from render_nodes.tasks import run_task

RENDER_SLOT = "render_slot"


class RenderNode:
    """The actor body; also usable in-process (tests, benchmarks)."""

    def __init__(self, node_id: str, settings: dict, scheduler_address: str) -> None:
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
            link=SchedulerLink(scheduler_address),
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
            },
        )
        host = self.settings.node_host or _node_ip()
        self.server, self.address = serve_node(self.core, host)

    def info(self) -> dict:
        return {"node_id": self.core.node_id, "address": self.address, "pid": os.getpid(),
                "capabilities": self.core.capabilities}

    def status(self) -> dict:
        status = self.core.status()
        status["running"] = [r.task_id for r in status["running"]]
        return status

    def shutdown(self) -> None:
        self.core.stop()
        self.server.stop(1).wait()


def _node_ip() -> str:
    try:
        return ray.util.get_node_ip_address()
    except Exception:
        return socket.gethostbyname(socket.gethostname())


def start_render_nodes(settings: Settings, scheduler_address: str, count: int, name_prefix: str | None = None) -> list:
    """Start `count` node actors on the connected Ray cluster; returns their handles once ready."""
    prefix = name_prefix or f"{socket.gethostname()}-node"
    gpus = ray.cluster_resources().get("GPU", 0)
    placement = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 0, "resources": {RENDER_SLOT: 1}}
    actor_class = ray.remote(RenderNode)
    handles = [
        actor_class.options(max_restarts=-1, max_concurrency=4, **placement).remote(
            f"{prefix}-{i}", settings.model_dump(mode="json"), scheduler_address
        )
        for i in range(count)
    ]
    ray.get([h.info.remote() for h in handles])
    return handles
