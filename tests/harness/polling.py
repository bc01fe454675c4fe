"""Waiting in tests: one polling loop, and an API served on a real socket for the test's length."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = "the condition",
               describe: Callable[[], object] | None = None) -> T:
    """Call `probe` until it returns something truthy, and return that.

    After `timeout` seconds: AssertionError saying what was awaited and, from `describe`
    (default: the probe's last answer), what was seen instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if seen:
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: "
                                 f"{describe() if describe else seen!r}")  # fmt: skip
        time.sleep(interval)


@contextlib.contextmanager
def serving(app, *, timeout: float = 30.0, **uvicorn_config) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **uvicorn_config))
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=timeout, interval=0.02, what="uvicorn to start")
    assert server.started, "uvicorn stopped before it started"
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
