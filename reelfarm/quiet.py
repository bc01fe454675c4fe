"""Start-up noise of Ray and gRPC that a newcomer need not see (`--verbose` shows it).

Imports nothing heavy: the environment must be set before Ray or gRPC is imported, and
Ray's own processes inherit it."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage-stats reporting thread and its notice
    # Not RAY_BACKEND_LOG_LEVEL: any value makes Ray's core print "Set ray log level from
    # environment variable" on the driver's stderr, and its level is not read before the one
    # warning it would hide (node IP discovery without a network) is printed anyway.
    "GRPC_VERBOSITY": "ERROR",  # gRPC's `fork_posix.cc ... skipping fork() handlers` lines
}


def quiet_env() -> None:
    """Set the quiet defaults where the user has not chosen otherwise; quiet Ray's Python loggers."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    # Ray's token-auth notice and "Started a local Ray instance." come through its "ray" logger.
    logging.getLogger("ray").setLevel(logging.ERROR)


@contextlib.contextmanager
def native_notices_silenced() -> Iterator[None]:
    """Point stdout and stderr (fds 1 and 2) at /dev/null around one call into a native library whose start-up notice no
    setting turns off (TFLite's "Created TensorFlow Lite XNNPACK delegate for CPU."), unless
    logging shows INFO (`--verbose`). Whatever else writes to them in that moment is lost
    too: keep it to the one call."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # what the library left in C's stdio buffers goes to /dev/null too
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
