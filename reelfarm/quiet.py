"""Start-up noise of Ray and gRPC that a newcomer need not see (`--verbose` shows it).

Imports nothing heavy: the environment must be set before Ray or gRPC is imported, and
Ray's own processes inherit it."""

from __future__ import annotations

import logging
import os

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage-stats reporting thread and its notice
    "RAY_BACKEND_LOG_LEVEL": "error",  # the C++ core's warnings (node IP discovery, ...) on the driver's stderr
    "GRPC_VERBOSITY": "ERROR",  # gRPC's `fork_posix.cc ... skipping fork() handlers` lines
}


def quiet_env() -> None:
    """Set the quiet defaults where the user has not chosen otherwise; quiet Ray's Python loggers."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    # Ray's token-auth notice and "Started a local Ray instance." come through its "ray" logger.
    logging.getLogger("ray").setLevel(logging.ERROR)
