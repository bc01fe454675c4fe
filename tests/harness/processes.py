"""Separate processes for topology tests: each in its own session, logged to a file, stopped by its group.

    proc = Service("scheduler", [".venv/bin/reelfarm", "scheduler"], env=env, log_dir=tmp).start()
    proc.kill()        # SIGKILL to its whole process group: a crash, as the rest of the system sees it
    proc.stop()        # SIGTERM to the group, then SIGKILL whatever is left

Every process is started with start_new_session=True, so its process group is its own and
signalling the group reaches its children (ffmpeg, a Ray driver's helpers) and nothing else.

`RayHead` runs `ray start --head --block` the same way, with its own temp folder and
free ports, so a test joins a real Ray cluster as production does (`ray start` on each
machine), not the in-process `ray.init()` of the embedded stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from harness.local_s3 import free_ports
from harness.polling import wait_until

VENV_BIN = Path(sys.executable).parent


class Service:
    """One long-running command in its own session; its output goes to `log_dir/NAME.log`."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path,
                 cwd: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        assert not self.alive, f"{self.name} is already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        return self

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group's id is the leader's pid (start_new_session)

    def kill(self) -> None:
        """SIGKILL the whole process group, and reap the leader."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # stragglers in the group, leader gone or not
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return f"--- {self.name} ({self.log_path}, last {chars} characters) ---\n{text[-chars:]}"

    def check_alive(self) -> None:
        if not self.alive:
            code = self.proc.returncode if self.proc else None
            raise AssertionError(f"{self.name} exited with {code}\n{self.log_tail()}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class RayHead:
    """`ray start --head --block` in its own session: a Ray cluster other processes join by address."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, num_cpus: int = 2,
                 resources: dict[str, float] | None = None) -> None:  # fmt: skip
        # Ray's unix sockets live under the temp folder: keep its path short (108-byte limit).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))
        (gcs, node_manager, object_manager, client_server, metrics, agent_listen, agent_grpc, runtime_env,
         dashboard) = free_ports(9)  # fmt: skip
        self.port = gcs
        argv = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
                "--node-ip-address=127.0.0.1", f"--port={gcs}", f"--num-cpus={num_cpus}",
                f"--temp-dir={self.temp_dir}", "--include-dashboard=false",
                f"--dashboard-port={dashboard}",
                f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
                f"--ray-client-server-port={client_server}", f"--metrics-export-port={metrics}",
                f"--dashboard-agent-listen-port={agent_listen}", f"--dashboard-agent-grpc-port={agent_grpc}",
                f"--runtime-env-agent-port={runtime_env}", f"--object-store-memory={100 << 20}"]  # fmt: skip
        if resources:
            argv.append(f"--resources={json.dumps(resources)}")
        self.service = Service("ray-head", argv, env=env, log_dir=log_dir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Self:
        self.service.start()

        def started() -> bool:
            self.service.check_alive()
            return "Ray runtime started" in self.service.log_path.read_text(errors="replace") and port_open(self.port)

        wait_until(started, timeout=timeout, interval=0.2, what="the Ray head to start",
                   describe=self.service.log_tail)  # fmt: skip
        return self

    def stop(self) -> None:
        """SIGKILL the head's process group (GCS, raylet, agents), then every worker it started.

        Not SIGTERM: `ray start --block` then drains the node for up to 30 s, and a signal to the
        group reaches the GCS first, so the drain waits out its timeout. Ray's workers (the
        actors) put themselves in process groups of their own: they are found as descendants of
        the head before it is killed, and killed by their PID if they have not exited by then."""
        workers = descendants(self.service.pid) if self.service.alive else []
        self.service.kill()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(root: int) -> list[int]:
    """Every process below `root` (by parent pid), whatever its process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
