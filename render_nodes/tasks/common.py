"""What every kind of task shares: its failure, its outcome, fetching its source."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reelfarm.media import MediaError
from reelfarm.storage import Storage
from render_nodes.ffmpeg import Cancelled, FfmpegFailed

ProgressFn = Callable[[str, float], None]


class TaskFailure(Exception):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class TaskOutcome:
    artifacts: list[dict]
    result: dict


def cancelled() -> TaskFailure:
    """The failure of a task its scheduler cancelled (not worth another attempt)."""
    return TaskFailure("cancelled", retryable=False)


@contextlib.contextmanager
def media_failures() -> Iterator[None]:
    """Turn what ffmpeg work raises into the TaskFailure the scheduler retries or not."""
    try:
        yield
    except Cancelled:
        raise cancelled() from None
    except FfmpegFailed as exc:
        # Killed by a signal (OOM killer, a node being stopped): not the source's fault.
        raise TaskFailure(str(exc), retryable=exc.returncode < 0) from exc
    except MediaError as exc:
        # The source itself is bad: another attempt would fail the same way.
        raise TaskFailure(str(exc), retryable=False) from exc


def fetch_source(storage: Storage, key: str, work_dir: Path) -> Path:
    """The task's source as a local file (shared by the node's tasks of the same source)."""
    try:
        return storage.fetch_to_local(key, work_dir / "sources")
    except Exception as exc:  # storage hiccups are worth another attempt
        raise TaskFailure(f"cannot fetch source: {exc}", retryable=True) from exc
