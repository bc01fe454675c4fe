"""Render nodes in child processes, without Ray: how `reelfarm render` runs its nodes.

`NodeProcess(...)` starts `python -m render_nodes.process` at once with the node's settings,
so the child's imports, detector load and encoder probe run beside the launcher's own start;
`connect` points it at the scheduler once that listens. Imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reelfarm.settings import Settings

_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


def local_node_settings(settings: Settings) -> Settings:
    """Nodes on the launcher's machine listen on loopback only."""
    return settings.model_copy(update={"node_host": settings.node_host or "127.0.0.1"})


class NodeProcess:
    def __init__(self, index: int, settings: Settings, *, verbose: bool = False) -> None:
        self.node_id = f"embedded-{os.getpid()}-{index}"
        env = dict(os.environ)
        # The child imports render_nodes from wherever this launcher's reelfarm came from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "render_nodes.process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env,
            # A group of its own, so a Ctrl-C reaches only the launcher, which stops its nodes in order.
            process_group=0,
        )  # fmt: skip
        self.info: dict | None = None
        self._send({"node_id": self.node_id, "settings": local_node_settings(settings).model_dump(mode="json"),
                    "verbose": verbose})  # fmt: skip

    def _send(self, message: dict) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died starting: wait_ready says so

    def wait_ready(self, timeout: float = 120.0) -> dict:
        """The node's info once it serves; RuntimeError naming why it did not start."""
        if self.info is not None:
            return self.info
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"render node process {self.process.pid} did not start within {timeout:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"render node process exited with status {self.process.wait()} before it served")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"render node did not start: {reply['error']}")
        self.info = reply
        return reply

    def connect(self, scheduler_address: str) -> None:
        """Register the node with the scheduler at `scheduler_address`."""
        self._send({"scheduler_address": scheduler_address})

    def stop(self) -> None:
        """Close its stdin: the node stops its tasks and exits (render_nodes/process.py)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass

    def wait(self, timeout: float = 10.0) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
