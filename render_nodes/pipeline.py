"""Render one vertical (or square, or landscape) clip from a source video.

A single ffmpeg pass trims, centre-crops, scales and encodes; a second tiny
pass grabs a poster frame. Uploading the results is the caller's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from render_nodes.media import Cancelled, MediaError, probe, run_ffmpeg

STANDARD_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "1:1": (1080, 1080),
    "4:5": (1080, 1350),
    "16:9": (1920, 1080),
}

ENCODERS = ("libx264", "h264_nvenc")

# Share of the whole task's progress each stage ends at.
_PROBED = 2.0
_RENDERED = 90.0
_POSTER_DONE = 97.0
# Shorter ranges would round to no frames at all.
_MIN_CLIP_SECONDS = 0.05
# A clip this much shorter than asked means the source ended early (truncated or
# corrupt data that ffprobe's header read could not see); ffmpeg itself exits 0.
_SHORTFALL_TOLERANCE_SECONDS = 0.5


def _aspect(aspect_ratio: str) -> tuple[int, int]:
    if aspect_ratio not in STANDARD_SIZES:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}; expected one of {sorted(STANDARD_SIZES)}")
    w, _, h = aspect_ratio.partition(":")
    return int(w), int(h)


def _even(value: float) -> int:
    """H.264 with 4:2:0 chroma needs even dimensions."""
    return max(2, round(value / 2) * 2)


def output_size(aspect_ratio: str, output_height: int | None = None) -> tuple[int, int]:
    """Output (width, height): the standard size, or one scaled to ``output_height``."""
    aw, ah = _aspect(aspect_ratio)
    if output_height is None:
        return STANDARD_SIZES[aspect_ratio]
    height = _even(output_height)
    return _even(height * aw / ah), height


def centre_crop(src_w: int, src_h: int, aspect_ratio: str) -> tuple[int, int, int, int]:
    """Largest centred (crop_w, crop_h, x, y) of the source with the given aspect."""
    aw, ah = _aspect(aspect_ratio)
    if src_w * ah > src_h * aw:  # source is wider than the target: trim the sides
        crop_h = src_h // 2 * 2
        crop_w = min(src_w, src_h * aw // ah) // 2 * 2
    else:  # source is taller: trim top and bottom
        crop_w = src_w // 2 * 2
        crop_h = min(src_h, src_w * ah // aw) // 2 * 2
    crop_w, crop_h = max(2, crop_w), max(2, crop_h)
    # Even offsets: ffmpeg would silently round odd ones for 4:2:0 sources.
    return crop_w, crop_h, max(0, (src_w - crop_w) // 4 * 2), max(0, (src_h - crop_h) // 4 * 2)


@dataclass(kw_only=True)
class RenderRequest:
    source_path: Path
    clip_index: int
    start_seconds: float
    end_seconds: float
    aspect_ratio: str
    output_width: int
    output_height: int
    encoder: str  # "libx264" or "h264_nvenc"
    x264_preset: str = "veryfast"
    work_dir: Path


@dataclass
class RenderedFile:
    name: str
    path: Path
    content_type: str


@dataclass
class RenderResult:
    files: list[RenderedFile]
    info: dict[str, Any]


def _video_args(req: RenderRequest) -> list[str]:
    if req.encoder == "h264_nvenc":
        # -b:v 0 lifts nvenc's default bitrate cap so -cq alone sets the quality.
        return ["-c:v", "h264_nvenc", "-preset", "p4", "-rc", "vbr", "-cq", "23", "-b:v", "0"]
    return ["-c:v", "libx264", "-preset", req.x264_preset, "-crf", "23"]


def render_clip(
    req: RenderRequest,
    *,
    on_progress: Callable[[str, float], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Render ``req`` into ``clip_NN.mp4`` plus a ``clip_NN.jpg`` poster in ``req.work_dir``."""
    if req.encoder not in ENCODERS:
        raise ValueError(f"unsupported encoder {req.encoder!r}; expected one of {list(ENCODERS)}")
    started = time.monotonic()

    def report(stage: str, percent: float) -> None:
        if on_progress is not None:
            on_progress(stage, percent)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()

    check_cancel()
    report("probing", 0.0)
    source = probe(req.source_path)
    start = max(0.0, req.start_seconds)
    end = min(req.end_seconds, source.duration_seconds)
    duration = end - start
    if duration < _MIN_CLIP_SECONDS:
        raise MediaError(
            f"empty clip range {req.start_seconds:.3f}-{req.end_seconds:.3f} s "
            f"(source is {source.duration_seconds:.3f} s long)"
        )
    crop_w, crop_h, crop_x, crop_y = centre_crop(source.width, source.height, req.aspect_ratio)
    report("probing", _PROBED)

    check_cancel()
    req.work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"clip_{req.clip_index:02d}"
    clip_path = req.work_dir / f"{stem}.mp4"
    poster_path = req.work_dir / f"{stem}.jpg"
    report("rendering", _PROBED)
    try:
        run_ffmpeg(
            [
                "-ss", f"{start:.3f}", "-i", str(req.source_path), "-t", f"{duration:.3f}",
                "-map", "0:v:0", "-map", "0:a:0?",
                "-vf", f"crop={crop_w}:{crop_h}:{crop_x}:{crop_y},"
                       f"scale={req.output_width}:{req.output_height},setsar=1,format=yuv420p",
                *_video_args(req),
                "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
                "-movflags", "+faststart",
                str(clip_path),
            ],
            expected_duration=duration,
            on_progress=lambda pct: report("rendering", _PROBED + pct / 100.0 * (_RENDERED - _PROBED)),
            cancel=cancel,
        )  # fmt: skip
    except BaseException:
        clip_path.unlink(missing_ok=True)  # never leave a half-written clip to be uploaded
        raise

    check_cancel()
    report("poster", _RENDERED)
    rendered = probe(clip_path)
    if rendered.duration_seconds < duration - max(_SHORTFALL_TOLERANCE_SECONDS, 0.05 * duration):
        clip_path.unlink(missing_ok=True)
        raise MediaError(
            f"source is truncated or corrupt: rendered only {rendered.duration_seconds:.2f} s "
            f"of {duration:.2f} s requested"
        )
    run_ffmpeg(
        ["-ss", f"{rendered.duration_seconds / 2:.3f}", "-i", str(clip_path),
         "-frames:v", "1", "-q:v", "3", "-update", "1", str(poster_path)],
        expected_duration=0.0,
        cancel=cancel,
    )  # fmt: skip
    report("poster", _POSTER_DONE)

    return RenderResult(
        files=[
            RenderedFile(name=clip_path.name, path=clip_path, content_type="video/mp4"),
            RenderedFile(name=poster_path.name, path=poster_path, content_type="image/jpeg"),
        ],
        info={
            "encoder": req.encoder,
            "width": rendered.width,
            "height": rendered.height,
            "duration_seconds": rendered.duration_seconds,
            "start_seconds": start,
            "end_seconds": end,
            "crop": {"w": crop_w, "h": crop_h, "x": crop_x, "y": crop_y},
            "source": {
                "width": source.width,
                "height": source.height,
                "duration_seconds": source.duration_seconds,
            },
            "render_seconds": round(time.monotonic() - started, 3),
        },
    )
