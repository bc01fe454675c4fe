"""Waiting in the main thread for SIGINT/SIGTERM (or another thread's stop), safely.

A Python signal handler must not take a lock. Handlers run in the main thread between
bytecodes, so a handler calling `threading.Event.set()` while that thread sits inside
`Event.wait()` holding the event's (non-reentrant) lock waits on itself forever: a SIGTERM
sent just as a service reached its wait left `reelfarm scheduler` hung. Here the C-level
handler writes a byte to a socket (`signal.set_wakeup_fd`) that the main thread blocks on;
no Python code runs in the handler at all.
"""

from __future__ import annotations

import signal
import socket

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Install early (before a service announces itself), then `wait()`.

    A signal that arrives before `wait()` is kept, so the wait returns at once. After the
    wait the previous handlers are back: a second Ctrl-C interrupts a stuck shutdown.
    Must be made in the main thread (Python delivers signals there only).
    """

    def __init__(self) -> None:
        self._wake, self._wake_writer = socket.socketpair()
        self._wake_writer.setblocking(False)  # the C handler must never block
        # Handlers that do nothing: Python still runs them, but the wakeup fd does the work.
        self._previous_handlers = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._wake_writer.fileno(), warn_on_full_buffer=False)

    def stop(self) -> None:
        """Wake `wait()` from any thread (the node's launcher pipe closing, say)."""
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the buffer is full of wake-ups already, or we are closed: either way it wakes

    def wait(self) -> None:
        try:
            self._wake.recv(1)  # retried across EINTR (PEP 475); returns on the first byte
        finally:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            for sig, handler in self._previous_handlers.items():
                signal.signal(sig, handler)
            self._wake.close()
            self._wake_writer.close()
