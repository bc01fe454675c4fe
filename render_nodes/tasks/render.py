"""kind "render": fetch the source, render one clip (render_nodes/pipeline.py), store its files."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from analysis.style.apply import application_filters, parse_style
from reelfarm import transcript
from reelfarm.media import probe
from reelfarm.storage import Storage
from render_nodes import metrics, pipeline, splice
from render_nodes.faces import FaceDetector
from render_nodes.reframe import ReframeConfig
from render_nodes.tasks.common import ProgressFn, TaskFailure, TaskOutcome, fetch_source, media_failures

ENCODER_BY_PREFERENCE = {"nvenc": "h264_nvenc", "x264": "libx264"}


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
        source = fetch_source(storage, spec["source_key"], work_dir)
        start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
        words = transcript.from_caption_fields(spec.get("words", []))
        whole = [(start, end)]
        keep = whole
        if spec.get("keep"):
            with media_failures():
                fps = probe(source).frame_rate or None
                keep = splice.normalise_keep([(float(r.get("start_seconds", 0.0)), float(r["end_seconds"]))
                                              for r in spec["keep"]], start, end, fps=fps)  # fmt: skip
                if keep != whole:
                    # Some of the range is left out (an interviewer's turns): render the
                    # kept pieces, joined, as if they were the source.
                    on_progress("splicing", 0.0)
                    source = splice.splice_source(source, keep, task_dir / "spliced.mov", cancel=cancel)
            if keep != whole:
                words = splice.remap_words(words, keep)
                start, end = 0.0, splice.kept_length(keep)
        style = None
        if (applied := parse_style(spec.get("style_json") or "")) is not None:
            on_progress("style_application", 0.0)
            with media_failures():
                style = application_filters(source, start, end, *applied, source_frame_rate=probe(source).frame_rate,
                                            words=words, source_times=keep == whole)
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
            style=style,
        )
        began = time.monotonic()
        with media_failures():
            rendered = pipeline.render_clip(request, on_progress=on_progress, cancel=cancel)
        frames = len(rendered.crop_path.xs) if rendered.crop_path is not None else 0
        metrics.clip_rendered(request.encoder, frames, time.monotonic() - began)
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
        if style is not None:
            info["style_filters"] = style.as_json()
        if keep != whole:
            # The clip still spans [start, end] of the source; it lasts only what was kept.
            info.update(start_seconds=float(spec.get("start_seconds", 0.0)), end_seconds=float(spec["end_seconds"]),
                        kept=[[round(a, 3), round(b, 3)] for a, b in keep])  # fmt: skip
        return TaskOutcome(artifacts=artifacts, result=info)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)
