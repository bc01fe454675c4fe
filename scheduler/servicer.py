"""SchedulerService over gRPC: translation only; the logic is SchedulerCore."""

from __future__ import annotations

import json

import grpc
from google.protobuf.json_format import MessageToDict

from reelfarm.v1 import scheduler_pb2, scheduler_pb2_grpc
from scheduler.core import ProgressUpdate, SchedulerCore


def _update(msg) -> ProgressUpdate:
    return ProgressUpdate(lease_id=msg.lease_id, stage=msg.stage, percent=msg.percent, message=msg.message)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, core: SchedulerCore) -> None:
        self.core = core

    def RegisterNode(self, request, context):
        if not request.node_id or not request.address:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node_id and address are required")
        capabilities = MessageToDict(request.capabilities, preserving_proto_field_name=True)
        self.core.register_node(request.node_id, request.address, capabilities, list(request.running_lease_ids))
        return scheduler_pb2.RegisterNodeResponse(
            heartbeat_interval_seconds=self.core.config.heartbeat_interval_seconds
        )

    def Heartbeat(self, request, context):
        usage = MessageToDict(request.usage, preserving_proto_field_name=True)
        running = [(p.task_id, _update(p)) for p in request.running]
        reregister = self.core.heartbeat(request.node_id, running, usage, request.draining)
        return scheduler_pb2.HeartbeatResponse(reregister=reregister)

    def ReportProgress(self, request_iterator, context):
        for msg in request_iterator:
            self.core.report_progress(msg.task_id, _update(msg))
        return scheduler_pb2.ReportProgressResponse()

    def CompleteTask(self, request, context):
        try:
            result = json.loads(request.result_json or "{}")
        except json.JSONDecodeError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "result_json is not JSON")
        artifacts = [
            {"name": a.name, "sha256": a.sha256, "size_bytes": a.size_bytes, "storage_key": a.storage_key,
             "content_type": a.content_type}
            for a in request.artifacts
        ]
        accepted = self.core.complete_task(request.task_id, request.lease_id, artifacts, result)
        return scheduler_pb2.OutcomeResponse(accepted=accepted)

    def FailTask(self, request, context):
        accepted = self.core.fail_task(request.task_id, request.lease_id, request.reason, request.retryable)
        return scheduler_pb2.OutcomeResponse(accepted=accepted)
