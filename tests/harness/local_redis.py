"""A throwaway redis-server on 127.0.0.1 for tests: a child process of this one, stopped by its PID.

    with LocalRedis() as server:
        url = server.url            # redis://127.0.0.1:PORT/0

No persistence (`--save "" --appendonly no`), loopback only, its working folder temporary.
Not daemonized, so the test run owns the process: stop() (or kill(), to simulate an outage)
ends exactly that PID.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from harness.local_postgres import free_port


def unavailable_reason() -> str | None:
    return None if shutil.which("redis-server") else "redis-server is not installed (Debian: apt install redis-server)"


class LocalRedis:
    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        self._dir = Path(tempfile.mkdtemp(prefix="reelfarm-redis-"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self._dir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server not answering on port {self.port} after {timeout:.0f} s")

    def kill(self) -> None:
        """End the server abruptly (SIGKILL to its PID): an outage, as clients see one."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
