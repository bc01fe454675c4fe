"""RenderNodeService over gRPC: translation only; the logic is NodeCore."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from reelfarm.grpc_security import add_port
from reelfarm.settings import Settings
from reelfarm.v1 import common_pb2, render_node_pb2, render_node_pb2_grpc
from render_nodes.node import NodeCore

log = logging.getLogger(__name__)

SERVICE_NAME = "reelfarm.v1.RenderNodeService"


class RenderNodeServicer(render_node_pb2_grpc.RenderNodeServiceServicer):
    def __init__(self, core: NodeCore, health_servicer: health.HealthServicer | None = None) -> None:
        self.core = core
        self.health = health_servicer

    def RunTask(self, request, context):
        tasks = [MessageToDict(t, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                 for t in request.tasks]
        accepted, rejected = self.core.run_tasks(tasks)
        return render_node_pb2.RunTaskResponse(accepted_task_ids=accepted, rejected=rejected)

    def CancelTask(self, request, context):
        return render_node_pb2.CancelTaskResponse(found=self.core.cancel_task(request.task_id))

    def Drain(self, request, context):
        running = self.core.drain()
        if self.health is not None:  # a draining node takes no new work: not ready
            for name in ("", SERVICE_NAME):
                self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        return render_node_pb2.DrainResponse(running=running)

    def GetStatus(self, request, context):
        status = self.core.status()
        return render_node_pb2.NodeStatus(
            node_id=self.core.node_id,
            capabilities=ParseDict(self.core.capabilities, common_pb2.NodeCapabilities()),
            running=status["running"],
            draining=status["draining"],
            tasks_started=status["started"],
            tasks_completed=status["completed"],
            tasks_failed=status["failed"],
        )


def serve_node(core: NodeCore, host: str, port: int = 0, max_workers: int = 16, *, settings: Settings | None = None,
               health_servicer: health.HealthServicer | None = None) -> tuple[grpc.Server, str]:
    """Start the node's gRPC server; returns (server, address). The caller starts the core
    (`core.start(address)`: registration and heartbeats) once it has a scheduler link.

    TLS by `settings` (reelfarm/grpc_security.py). grpc.health.v1 answers SERVING once the server is
    up and NOT_SERVING after Drain or `health_servicer.enter_graceful_shutdown()` (the actor's shutdown).
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="node-rpc"))
    health_servicer = health_servicer or health.HealthServicer()
    render_node_pb2_grpc.add_RenderNodeServiceServicer_to_server(RenderNodeServicer(core, health_servicer), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = add_port(server, f"{host}:{port}", settings)
    if not bound:
        raise RuntimeError(f"cannot listen on {host}:{port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, f"{host}:{bound}"
