"""Render one reframed, captioned clip from a source video.

1. Analyse: one streaming decode of the clip's range finds shot cuts and samples faces
   (render_nodes/analysis.py); render_nodes/reframe.py turns them into a per-frame crop path.
2. Render: one ffmpeg pass trims accurately, moves the crop along the path (sendcmd),
   scales, burns captions in (libass), loudness-normalises the audio and encodes with
   +faststart.
3. Poster: one frame of the clip where the subject is visible.
Uploading the results is the caller's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render_nodes.captions import Word, ass_filter, build_caption_track
from render_nodes.media import Cancelled, MediaError, probe, run_ffmpeg

if TYPE_CHECKING:
    from render_nodes.faces import FaceDetector
    from render_nodes.reframe import CropPath, ReframeConfig

ENCODERS = ("libx264", "h264_nvenc")

# Share of the whole task's progress each stage ends at.
_PROBED = 2.0
_ANALYSED = 20.0
_RENDERED = 92.0
_POSTER_DONE = 97.0
# Shorter ranges would round to no frames at all.
_MIN_CLIP_SECONDS = 0.05
# A clip this much shorter than asked means the source ended early (truncated or
# corrupt data that ffprobe's header read could not see); ffmpeg itself exits 0.
_SHORTFALL_TOLERANCE_SECONDS = 0.5
# Social platforms normalise to about -14 LUFS; matching it avoids their turning us down.
_LOUDNORM = "loudnorm=I=-14:TP=-1.5:LRA=11"
_CROP_FILTER = "crop@reframe"


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
    # None: no analysis, a static centre crop.
    detector: FaceDetector | None = None
    reframe: ReframeConfig | None = None
    caption_preset: str = "none"
    words: Sequence[Word] = field(default_factory=tuple)  # source-timed transcript words
    sample_fps: float = 5.0
    fast_decode: bool = True  # see render_nodes/analysis.py
    hwaccel: str | None = None  # "cuda" where the node has NVDEC


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


def write_crop_commands(path: CropPath, destination: Path) -> Path:
    """sendcmd script moving the crop: one line where the position changes, half a frame early."""
    lines = []
    previous = (int(path.xs[0]), int(path.ys[0]))
    for k in range(1, len(path.xs)):
        position = (int(path.xs[k]), int(path.ys[k]))
        if position != previous:
            t = (k - 0.5) / path.fps
            lines.append(f"{t:.6f} {_CROP_FILTER} x {position[0]}, {_CROP_FILTER} y {position[1]};")
            previous = position
    destination.write_text("\n".join(lines) + "\n")
    return destination


def _video_filtergraph(req: RenderRequest, path: CropPath, commands: str | None, captions: str | None) -> str:
    """The video filtergraph; `commands` and `captions` are file names in ffmpeg's working
    directory (plain names need no filtergraph escaping, unlike arbitrary paths)."""
    w, h = req.output_width, req.output_height
    crop = f"{_CROP_FILTER}={path.crop_width}:{path.crop_height}:{int(path.xs[0])}:{int(path.ys[0])}"
    if commands is not None:
        crop = f"sendcmd=f={commands},{crop}"
    finish = (f",{ass_filter(captions)}" if captions else "") + ",format=yuv420p[v]"
    pads = path.pad_intervals()
    if not pads:
        return f"[0:v]{crop},scale={w}:{h},setsar=1{finish}"
    # Shots with two faces that no crop holds: the whole frame over a blurred fill of the crop.
    enable = "+".join(f"between(t,{a:.4f},{b - 0.5 / path.fps:.4f})" for a, b in pads)
    return (
        f"[0:v]split=2[src][whole];"
        f"[src]{crop},scale={w}:{h},setsar=1,split=2[sharp][fillsrc];"
        f"[fillsrc]scale={max(2, w // 8 // 2 * 2)}:{max(2, h // 8 // 2 * 2)},boxblur=4:2,scale={w}:{h}[fill];"
        f"[whole]scale={w}:{h}:force_original_aspect_ratio=decrease,setsar=1[fit];"
        f"[fill][fit]overlay=(W-w)/2:(H-h)/2[padded];"
        f"[sharp][padded]overlay=0:0:enable='{enable}'{finish}"
    )


def render_clip(
    req: RenderRequest,
    *,
    on_progress: Callable[[str, float], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Render ``req`` into ``clip_NN.mp4``, ``clip_NN.jpg`` (and ``clip_NN.ass``) in ``req.work_dir``."""
    from render_nodes.analysis import SourceScan, scan_source
    from render_nodes.reframe import crop_jitter, face_coverage, plan_crop_path, poster_time

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
    fps = source.frame_rate or 30.0
    report("analysing", _PROBED)

    if req.detector is not None:
        scan = scan_source(
            req.source_path, start=start, end=end, detector=req.detector, sample_fps=req.sample_fps,
            fast_decode=req.fast_decode, hwaccel=req.hwaccel, cancel=cancel,
            on_progress=lambda pct: report("analysing", _PROBED + pct / 100 * (_ANALYSED - _PROBED)),
        )  # fmt: skip
    else:
        scan = SourceScan(start=start, end=end, detector="none")
    path = plan_crop_path(
        scan, source_width=source.width, source_height=source.height, aspect_ratio=req.aspect_ratio,
        fps=fps, duration=duration, config=req.reframe,
    )  # fmt: skip
    report("analysing", _ANALYSED)

    check_cancel()
    req.work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"clip_{req.clip_index:02d}"
    clip_path = req.work_dir / f"{stem}.mp4"
    poster_path = req.work_dir / f"{stem}.jpg"
    captions_path = req.work_dir / f"{stem}.ass"
    commands_path = write_crop_commands(path, req.work_dir / f"{stem}.cmd")
    has_commands = commands_path.stat().st_size > 1
    captions = None
    if req.caption_preset != "none" and req.words:
        captions = build_caption_track(
            req.words, preset=req.caption_preset, clip_start=start, clip_end=end,
            width=req.output_width, height=req.output_height,
        )  # fmt: skip
        if captions is not None:
            captions_path.write_text(captions, encoding="utf-8")

    report("rendering", _ANALYSED)
    graph = _video_filtergraph(
        req, path, commands_path.name if has_commands else None, captions_path.name if captions else None
    )
    try:
        run_ffmpeg(
            [
                "-ss", f"{start:.3f}", "-i", str(req.source_path.resolve()), "-t", f"{duration:.3f}",
                "-filter_complex", graph, "-map", "[v]", "-map", "0:a:0?",
                *_video_args(req),
                "-af", _LOUDNORM, "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
                "-movflags", "+faststart",
                str(clip_path.resolve()),
            ],
            expected_duration=duration,
            on_progress=lambda pct: report("rendering", _ANALYSED + pct / 100.0 * (_RENDERED - _ANALYSED)),
            cancel=cancel,
            cwd=req.work_dir,
        )  # fmt: skip
    except BaseException:
        clip_path.unlink(missing_ok=True)  # never leave a half-written clip to be uploaded
        raise
    finally:
        commands_path.unlink(missing_ok=True)

    check_cancel()
    report("poster", _RENDERED)
    rendered = probe(clip_path)
    if rendered.duration_seconds < duration - max(_SHORTFALL_TOLERANCE_SECONDS, 0.05 * duration):
        clip_path.unlink(missing_ok=True)
        raise MediaError(
            f"source is truncated or corrupt: rendered only {rendered.duration_seconds:.2f} s "
            f"of {duration:.2f} s requested"
        )
    poster_at = min(poster_time(path, duration), max(0.0, rendered.duration_seconds - 0.1))
    run_ffmpeg(
        ["-ss", f"{poster_at:.3f}", "-i", str(clip_path),
         "-frames:v", "1", "-q:v", "3", "-update", "1", str(poster_path)],
        expected_duration=0.0,
        cancel=cancel,
    )  # fmt: skip
    report("poster", _POSTER_DONE)

    files = [
        RenderedFile(name=clip_path.name, path=clip_path, content_type="video/mp4"),
        RenderedFile(name=poster_path.name, path=poster_path, content_type="image/jpeg"),
    ]
    if captions is not None:
        files.append(RenderedFile(name=captions_path.name, path=captions_path, content_type="text/x-ssa"))
    return RenderResult(
        files=files,
        info={
            "encoder": req.encoder,
            "width": rendered.width,
            "height": rendered.height,
            "duration_seconds": rendered.duration_seconds,
            "start_seconds": start,
            "end_seconds": end,
            "crop": {"w": path.crop_width, "h": path.crop_height,
                     "x": int(path.xs[0]), "y": int(path.ys[0])},
            "detector": scan.detector,
            "decoder": scan.decoder,
            "shots": [
                {"start": round(shot.start, 3), "end": round(shot.end, 3), "camera": shot.mode,
                 "subject": shot.subject, **({"fallback": shot.fallback} if shot.fallback else {})}
                for shot in path.shots
            ],
            "face_coverage": face_coverage(path),
            "crop_jitter": crop_jitter(path),
            "captions": req.caption_preset if captions is not None else "none",
            "poster_seconds": round(poster_at, 3),
            "source": {
                "width": source.width,
                "height": source.height,
                "duration_seconds": source.duration_seconds,
            },
            "analysis_seconds": scan.seconds,
            "render_seconds": round(time.monotonic() - started, 3),
        },
    )  # fmt: skip
