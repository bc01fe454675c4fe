"""What a render node does with one task: fetch the source, render, store artifacts."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from control_plane.storage import Storage
from render_nodes import pipeline
from render_nodes.captions import Word
from render_nodes.faces import FaceDetector
from render_nodes.media import Cancelled, FfmpegFailed, MediaError
from render_nodes.reframe import ReframeConfig

ENCODER_BY_PREFERENCE = {"nvenc": "h264_nvenc", "x264": "libx264"}

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


def choose_encoder(preference: str, available: list[str]) -> str:
    """NVENC only where this node's one-frame probe proved it works; x264 otherwise."""
    if preference in ENCODER_BY_PREFERENCE:
        encoder = ENCODER_BY_PREFERENCE[preference]
        if encoder not in available:
            raise TaskFailure(f"encoder {encoder} is not available on this node", retryable=True)
        return encoder
    return "h264_nvenc" if "h264_nvenc" in available else "libx264"


def run_render_task(
    task: dict,
    *,
    storage: Storage,
    work_dir: Path,
    encoders: list[str],
    on_progress: ProgressFn,
    cancel: threading.Event,
    detector: FaceDetector | None = None,
    sample_fps: float = 5.0,
    frame_buffer_mb: int = 512,
    hwaccel: str | None = None,
) -> TaskOutcome:
    spec = task["render"]
    task_dir = work_dir / "tasks" / task["task_id"]
    task_dir.mkdir(parents=True, exist_ok=True)
    try:
        on_progress("fetching", 0.0)
        try:
            source = storage.fetch_to_local(spec["source_key"], work_dir / "sources")
        except Exception as exc:  # storage hiccups are worth another attempt
            raise TaskFailure(f"cannot fetch source: {exc}", retryable=True) from exc
        request = pipeline.RenderRequest(
            source_path=source,
            clip_index=int(spec["clip_index"]),
            start_seconds=float(spec.get("start_seconds", 0.0)),
            end_seconds=float(spec["end_seconds"]),
            aspect_ratio=spec["aspect_ratio"],
            output_width=int(spec["output_width"]),
            output_height=int(spec["output_height"]),
            encoder=choose_encoder(spec.get("encoder_preference", "auto"), encoders),
            x264_preset=spec.get("x264_preset") or "veryfast",
            work_dir=task_dir,
            detector=detector,
            reframe=ReframeConfig(two_faces=spec.get("two_faces") or "pad"),
            caption_preset=spec.get("caption_preset") or "none",
            words=[Word(w["text"], float(w["start_seconds"]), float(w["end_seconds"])) for w in spec.get("words", [])],
            sample_fps=sample_fps,
            frame_buffer_mb=frame_buffer_mb,
            hwaccel=hwaccel,
        )
        try:
            rendered = pipeline.render_clip(request, on_progress=on_progress, cancel=cancel)
        except Cancelled:
            raise TaskFailure("cancelled", retryable=False) from None
        except FfmpegFailed as exc:
            # Killed by a signal (OOM killer, a node being stopped): not the source's fault.
            raise TaskFailure(str(exc), retryable=exc.returncode < 0) from exc
        except MediaError as exc:
            # The source itself is bad: another attempt would fail the same way.
            raise TaskFailure(str(exc), retryable=False) from exc
        on_progress("uploading", 97.0)
        artifacts = []
        for file in rendered.files:
            blob = storage.put_file(file.path, move=True)
            artifacts.append(
                {
                    "name": file.name,
                    "sha256": blob.sha256,
                    "size_bytes": blob.size_bytes,
                    "storage_key": blob.key,
                    "content_type": file.content_type,
                }
            )
        on_progress("uploading", 100.0)
        return TaskOutcome(artifacts=artifacts, result=rendered.info)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)
