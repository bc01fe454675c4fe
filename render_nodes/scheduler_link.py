"""The node's side of SchedulerService: register, heartbeat, progress, outcomes."""

from __future__ import annotations

import json
import queue
import threading

import grpc
from google.protobuf.json_format import ParseDict

from reelfarm.grpc_security import open_channel
from reelfarm.settings import Settings
from reelfarm.v1 import common_pb2, scheduler_pb2, scheduler_pb2_grpc

RPC_TIMEOUT_SECONDS = 5.0
# A progress stream closes after this long without updates, freeing its server thread.
STREAM_IDLE_SECONDS = 5.0


class SchedulerLink:
    def __init__(self, address: str, settings: Settings | None = None) -> None:
        self.address = address
        self._channel = open_channel(address, settings)  # TLS by settings; None: plaintext
        self._stub = scheduler_pb2_grpc.SchedulerServiceStub(self._channel)
        self._progress: queue.Queue = queue.Queue(maxsize=10_000)
        self._closed = threading.Event()
        self._streamer = threading.Thread(target=self._stream_progress, name="progress-stream", daemon=True)
        self._streamer.start()

    def register(self, node_id: str, address: str, capabilities: dict, running_lease_ids: list[str]) -> float:
        response = self._stub.RegisterNode(
            scheduler_pb2.RegisterNodeRequest(
                node_id=node_id,
                address=address,
                capabilities=ParseDict(capabilities, common_pb2.NodeCapabilities()),
                running_lease_ids=running_lease_ids,
            ),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        return response.heartbeat_interval_seconds

    def heartbeat(self, node_id: str, running: list[common_pb2.TaskProgress], usage: dict, draining: bool) -> bool:
        response = self._stub.Heartbeat(
            scheduler_pb2.HeartbeatRequest(
                node_id=node_id,
                running=running,
                usage=scheduler_pb2.ResourceUsage(**usage),
                draining=draining,
            ),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        return response.reregister

    def complete(self, task_id: str, lease_id: str, artifacts: list[dict], result: dict) -> bool:
        response = self._stub.CompleteTask(
            scheduler_pb2.CompleteTaskRequest(
                task_id=task_id,
                lease_id=lease_id,
                artifacts=[common_pb2.Artifact(**a) for a in artifacts],
                result_json=json.dumps(result),
            ),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        return response.accepted

    def fail(self, task_id: str, lease_id: str, reason: str, retryable: bool) -> bool:
        response = self._stub.FailTask(
            scheduler_pb2.FailTaskRequest(task_id=task_id, lease_id=lease_id, reason=reason, retryable=retryable),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        return response.accepted

    def progress(self, update: common_pb2.TaskProgress) -> None:
        """Queue a progress update; lossy by design (heartbeats carry the latest too)."""
        try:
            self._progress.put_nowait(update)
        except queue.Full:
            pass

    def _stream_progress(self) -> None:
        while not self._closed.is_set():
            try:
                first = self._progress.get(timeout=1.0)
            except queue.Empty:
                continue

            def updates(first=first):
                yield first
                while not self._closed.is_set():
                    try:
                        yield self._progress.get(timeout=STREAM_IDLE_SECONDS)
                    except queue.Empty:
                        return

            try:
                self._stub.ReportProgress(updates())
            except grpc.RpcError:
                self._closed.wait(0.5)  # scheduler away: drop this stream, open another later

    def close(self) -> None:
        self._closed.set()
        self._channel.close()
