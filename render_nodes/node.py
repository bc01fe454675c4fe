"""A render node's core: accepts tasks, runs them in the background, reports back.

The gRPC servicer (render_nodes/servicer.py) only translates; this class is testable
without a socket. Outcomes are retried until the scheduler answers, so a scheduler
restart loses no finished work.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import psutil

from reelfarm.v1 import common_pb2
from render_nodes import ffmpeg
from render_nodes.scheduler_link import SchedulerLink
from render_nodes.tasks.common import TaskFailure, TaskOutcome

log = logging.getLogger(__name__)

Executor = Callable[..., TaskOutcome]


@dataclass
class RunningTask:
    task: dict
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "accepted"
    percent: float = 0.0
    message: str = ""

    @property
    def task_id(self) -> str:
        return self.task["task_id"]

    @property
    def lease_id(self) -> str:
        return self.task["lease_id"]

    def progress_message(self) -> common_pb2.TaskProgress:
        return common_pb2.TaskProgress(
            task_id=self.task_id, lease_id=self.lease_id, stage=self.stage, percent=self.percent, message=self.message
        )


def detect_gpus() -> list[dict]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem_mib = line.rpartition(",")
        gpus.append({"name": name.strip(), "memory_bytes": int(float(mem_mib)) << 20})
    return gpus


def detect_capabilities(max_concurrent_tasks: int, detector_backends: list[str], *, speech: dict | None = None,
                        gpus: list[dict] | None = None) -> dict:  # fmt: skip
    """What this node can really do, probed here (one-frame test encodes, not `-encoders`).

    `speech`: SpeechEngines.capabilities() (transcribers, whisper_models, transcription_languages).
    """
    return {
        "gpus": detect_gpus() if gpus is None else gpus,
        "encoders": ffmpeg.probe_encoders(),
        "detector_backends": detector_backends,
        "max_concurrent_tasks": max_concurrent_tasks,
        "hwaccels": ["cuda"] if ffmpeg.hwaccel_works("cuda") else [],
        **(speech or {"transcribers": []}),
    }


class NodeCore:
    def __init__(
        self,
        node_id: str,
        *,
        link: SchedulerLink | None,
        capabilities: dict,
        executor: Executor,
        executor_kwargs: dict | None = None,
    ) -> None:
        self.node_id = node_id
        # None until the node connects (RenderNode.connect): no task reaches a node before it registers.
        self.link = link
        self.capabilities = capabilities
        self.executor = executor
        self.executor_kwargs = executor_kwargs or {}
        self.address = ""
        self.running: dict[str, RunningTask] = {}
        self.draining = False
        self.counters = {"started": 0, "completed": 0, "failed": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat_interval = 1.0
        self._process = psutil.Process()

    # ----------------------------------------------------------- scheduler-facing

    def start(self, address: str) -> None:
        """Register (retrying until the scheduler answers) and start heartbeating."""
        self.address = address
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for running in self.running.values():
                running.cancel.set()
        if self.link is not None:
            self.link.close()

    def _register(self) -> None:
        with self._lock:
            leases = [r.lease_id for r in self.running.values()]
        self._heartbeat_interval = self.link.register(self.node_id, self.address, self.capabilities, leases) or 1.0
        log.info("node %s registered with scheduler %s", self.node_id, self.link.address)

    def _heartbeat_loop(self) -> None:
        registered = False
        while not self._stop.is_set():
            try:
                if not registered:
                    self._register()
                    registered = True
                elif self.link.heartbeat(self.node_id, self._progress_snapshot(), self._usage(), self.draining):
                    registered = False
                    continue
            except grpc.RpcError as exc:
                log.debug("scheduler unreachable: %s", exc.code())
                registered = registered and exc.code() != grpc.StatusCode.UNAVAILABLE
            self._stop.wait(self._heartbeat_interval)

    def _progress_snapshot(self) -> list[common_pb2.TaskProgress]:
        with self._lock:
            return [r.progress_message() for r in self.running.values()]

    def _usage(self) -> dict:
        try:
            rss = self._process.memory_info().rss + sum(
                c.memory_info().rss for c in self._process.children(recursive=True)
            )
            return {"cpu_percent": self._process.cpu_percent(None), "rss_bytes": rss}
        except psutil.Error:
            return {}

    # ----------------------------------------------------------- RenderNodeService

    def run_tasks(self, tasks: list[dict]) -> tuple[list[str], dict[str, str]]:
        accepted, rejected = [], {}
        encoders = set(self.capabilities.get("encoders", []))
        with self._lock:
            for task in tasks:
                task_id = task["task_id"]
                if task_id in self.running:
                    if self.running[task_id].lease_id == task["lease_id"]:
                        accepted.append(task_id)  # a retried RunTask: already running
                    else:
                        rejected[task_id] = "an older attempt of this task is still running here"
                    continue
                if self.draining:
                    rejected[task_id] = "node is draining"
                elif len(self.running) >= self.capabilities.get("max_concurrent_tasks", 1):
                    rejected[task_id] = "no free slot"
                elif not set(task.get("required_encoders", [])) <= encoders:
                    rejected[task_id] = "missing encoder"
                else:
                    self.running[task_id] = RunningTask(task)
                    self.counters["started"] += 1
                    accepted.append(task_id)
                    threading.Thread(target=self._run, args=(self.running[task_id],), daemon=True).start()
        return accepted, rejected

    def cancel_task(self, task_id: str) -> bool:
        with self._lock:
            running = self.running.get(task_id)
        if running:
            running.cancel.set()
        return running is not None

    def drain(self) -> int:
        self.draining = True
        with self._lock:
            return len(self.running)

    def status(self) -> dict:
        with self._lock:
            running = [r.progress_message() for r in self.running.values()]
        return {"running": running, "draining": self.draining, **self.counters}

    # ----------------------------------------------------------- task execution

    def _run(self, running: RunningTask) -> None:
        last_sent, last_stage = 0.0, ""

        def on_progress(stage: str, percent: float) -> None:
            nonlocal last_sent, last_stage
            running.stage, running.percent = stage, round(percent, 1)
            now = time.monotonic()
            # ffmpeg reports ~2/s; send at most 4/s per task, always on a stage change.
            if now - last_sent >= 0.25 or stage != last_stage:
                last_sent, last_stage = now, stage
                self.link.progress(running.progress_message())

        try:
            outcome = self.executor(running.task, on_progress=on_progress, cancel=running.cancel,
                                    **self.executor_kwargs)
            running.stage, running.percent = "reporting", 100.0
            self._deliver(running, lambda: self.link.complete(
                running.task_id, running.lease_id, outcome.artifacts, outcome.result))
            self.counters["completed"] += 1
        except TaskFailure as failure:
            self._report_failure(running, failure.reason, failure.retryable)
        except Exception as exc:  # a bug or an environment problem: let another attempt try
            log.exception("task %s crashed", running.task_id)
            self._report_failure(running, f"render node error: {exc}", True)
        finally:
            with self._lock:
                self.running.pop(running.task_id, None)

    def _report_failure(self, running: RunningTask, reason: str, retryable: bool) -> None:
        self.counters["failed"] += 1
        if running.cancel.is_set() and reason == "cancelled":
            return  # the scheduler asked for it; it already knows
        self._deliver(running, lambda: self.link.fail(running.task_id, running.lease_id, reason, retryable))

    def _deliver(self, running: RunningTask, send: Callable[[], bool]) -> None:
        """Send an outcome until the scheduler answers (it may be restarting)."""
        delay = 0.2
        while not self._stop.is_set():
            try:
                if not send():
                    log.info("scheduler refused outcome of %s (stale lease)", running.task_id)
                return
            except grpc.RpcError as exc:
                log.info("outcome of %s not delivered (%s); retrying", running.task_id, exc.code())
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
