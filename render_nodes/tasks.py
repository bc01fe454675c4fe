"""What a render node does with one task: fetch the source, render, store artifacts."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from control_plane.storage import Storage
from render_nodes import pipeline, splice
from render_nodes.captions import Word
from render_nodes.faces import FaceDetector
from render_nodes.media import Cancelled, FfmpegFailed, MediaError, probe
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


def run_task(task: dict, *, transcribers=None, **render_kwargs) -> TaskOutcome:
    """Run a task of any kind: renders make files, analysis tasks answer with JSON."""
    kind = task.get("kind") or "render"
    if kind == "render":
        return run_render_task(task, **render_kwargs)
    from render_nodes import analysis_tasks

    common = {k: render_kwargs[k] for k in ("storage", "work_dir", "on_progress", "cancel")}
    if kind == "transcribe":
        if transcribers is None:
            transcribers = analysis_tasks.Transcribers()
        result = analysis_tasks.run_transcribe_task(task, transcribers=transcribers, **common)
    elif kind == "analyze":
        result = analysis_tasks.run_analyze_task(task, detector=render_kwargs.get("detector"),
                                                 hwaccel=render_kwargs.get("hwaccel"), **common)  # fmt: skip
    else:
        raise TaskFailure(f"unknown task kind {kind!r}", retryable=False)
    return TaskOutcome(artifacts=[], result=result)


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
        start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
        words = [Word(w["text"], float(w["start_seconds"]), float(w["end_seconds"])) for w in spec.get("words", [])]
        whole = [(start, end)]
        keep = whole
        if spec.get("keep"):
            try:
                fps = probe(source).frame_rate or None
                keep = splice.normalise_keep([(float(r.get("start_seconds", 0.0)), float(r["end_seconds"]))
                                              for r in spec["keep"]], start, end, fps=fps)  # fmt: skip
                if keep != whole:
                    # Some of the range is left out (an interviewer's turns): render the
                    # kept pieces, joined, as if they were the source.
                    on_progress("splicing", 0.0)
                    source = splice.splice_source(source, keep, task_dir / "spliced.mov", cancel=cancel)
            except Cancelled:
                raise TaskFailure("cancelled", retryable=False) from None
            except FfmpegFailed as exc:
                raise TaskFailure(str(exc), retryable=exc.returncode < 0) from exc
            except MediaError as exc:
                raise TaskFailure(str(exc), retryable=False) from exc
            if keep != whole:
                words = splice.remap_words(words, keep)
                start, end = 0.0, splice.kept_length(keep)
        request = pipeline.RenderRequest(
            source_path=source,
            clip_index=int(spec["clip_index"]),
            start_seconds=start,
            end_seconds=end,
            aspect_ratio=spec["aspect_ratio"],
            output_width=int(spec["output_width"]),
            output_height=int(spec["output_height"]),
            encoder=choose_encoder(spec.get("encoder_preference", "auto"), encoders),
            x264_preset=spec.get("x264_preset") or "veryfast",
            work_dir=task_dir,
            detector=detector,
            reframe=ReframeConfig(two_faces=spec.get("two_faces") or "pad"),
            caption_preset=spec.get("caption_preset") or "none",
            words=words,
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
        info = dict(rendered.info)
        if keep != whole:
            # The clip still spans [start, end] of the source; it lasts only what was kept.
            info.update(start_seconds=float(spec.get("start_seconds", 0.0)), end_seconds=float(spec["end_seconds"]),
                        kept=[[round(a, 3), round(b, 3)] for a, b in keep])  # fmt: skip
        return TaskOutcome(artifacts=artifacts, result=info)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)
