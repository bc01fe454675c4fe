"""run_render_task: how render failures are classified for the scheduler's retries."""

from __future__ import annotations

import threading

import psutil
import pytest

from harness.polling import wait_until
from reelfarm.samples import make_sample_video
from reelfarm.storage import LocalStorage
from render_nodes.tasks.common import TaskFailure
from render_nodes.tasks.render import run_render_task


def _task(storage: LocalStorage, source) -> dict:
    blob = storage.put_file(source)
    return {
        "task_id": "task_test",
        "render": {
            "source_key": blob.key, "clip_index": 1, "start_seconds": 0.0, "end_seconds": 20.0,
            "aspect_ratio": "9:16", "output_width": 720, "output_height": 1280,
            "encoder_preference": "x264", "x264_preset": "medium", "caption_preset": "none",
        },
    }  # fmt: skip


def test_ffmpeg_killed_by_a_signal_is_retryable(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    source = make_sample_video(tmp_path / "src.mp4", seconds=20, size="640x360")
    outcome: dict = {}

    def run() -> None:
        try:
            run_render_task(_task(storage, source), storage=storage, work_dir=tmp_path / "work",
                            encoders=["libx264"], on_progress=lambda *_: None, cancel=threading.Event())
        except TaskFailure as failure:
            outcome["failure"] = failure

    worker = threading.Thread(target=run)
    worker.start()
    victim = wait_until(lambda: next((p for p in psutil.Process().children(recursive=True) if p.name() == "ffmpeg"),
                                     None), timeout=30, what="ffmpeg to start")  # fmt: skip
    victim.kill()  # what the OOM killer or a node shutdown does
    worker.join(60)
    failure = outcome["failure"]
    assert failure.retryable, failure.reason
    assert "-9" in failure.reason


def test_a_source_that_is_not_video_is_not_retryable(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 4096)
    with pytest.raises(TaskFailure) as excinfo:
        run_render_task(_task(storage, bogus), storage=storage, work_dir=tmp_path / "work", encoders=["libx264"],
                        on_progress=lambda *_: None, cancel=threading.Event())
    assert not excinfo.value.retryable
