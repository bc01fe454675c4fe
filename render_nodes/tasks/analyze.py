"""kind "analyze": how often a face is on screen, from keyframes only.

A keyframe-only decode of an hour of H.264 takes seconds; every frame would take
minutes. The result is JSON for the scheduler (analysis/selection.py reads it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from reelfarm.storage import Storage
from render_nodes.tasks.common import ProgressFn, TaskFailure, cancelled, fetch_source, media_failures

# Frames per second looked at when a source has keyframes further apart than this.
MAX_FACE_SAMPLES = 600


def run_analyze_task(task: dict, *, storage: Storage, work_dir: Path, detector, on_progress: ProgressFn,
                     cancel: threading.Event, hwaccel: str | None = None) -> dict:  # fmt: skip
    """Face presence over [start, end): (time, 1 or 0) per keyframe looked at."""
    import av

    from render_nodes.scan import open_video

    spec = task["analysis"]
    start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
    on_progress("fetching", 0.0)
    source = fetch_source(storage, spec["source_key"], work_dir)
    if detector is None:
        return {"start": start, "end": end, "faces": [], "detector": None}
    on_progress("analyzing", 5.0)
    samples: list[tuple[float, int]] = []
    min_gap = max(0.5, (end - start) / MAX_FACE_SAMPLES)
    last = -1e9
    with media_failures():
        container, stream = open_video(source, hwaccel)
    batch: list[tuple[float, object]] = []

    def flush() -> None:
        if batch:
            found = detector.detect([rgb for _, rgb in batch])
            samples.extend((round(t, 2), 1 if faces else 0) for (t, _), faces in zip(batch, found, strict=True))
            batch.clear()

    with container:
        stream.codec_context.skip_frame = "NONKEY"
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        size = None
        try:
            for frame in container.decode(stream):
                if cancel.is_set():
                    raise cancelled()
                if frame.time is None or frame.time < start:
                    continue
                if frame.time >= end:
                    break
                if frame.time - last < min_gap:
                    continue
                last = frame.time
                if size is None:
                    scale = min(1.0, detector.input_size / max(frame.width, frame.height))
                    size = (max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2))
                rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
                batch.append((frame.time, rgb))
                if len(batch) >= 16:
                    flush()
                    on_progress("analyzing", min(99.0, 5 + 95 * (frame.time - start) / max(1e-6, end - start)))
        except av.FFmpegError as exc:
            raise TaskFailure(f"source cannot be decoded: {exc}", retryable=False) from exc
        flush()
    on_progress("analyzing", 100.0)
    return {"start": start, "end": end, "faces": samples, "detector": detector.name}
