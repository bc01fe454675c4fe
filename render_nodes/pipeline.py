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

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render_nodes.analysis import SourceScan, scan_source
from render_nodes.captions import Word, ass_filter, build_caption_track
from render_nodes.media import Cancelled, MediaError, probe, run_ffmpeg
from render_nodes.reframe import (
    CropPath,
    ReframeConfig,
    crop_jitter,
    face_coverage,
    join_paths,
    plan_crop_path,
    poster_time,
    segment_scan,
)

if TYPE_CHECKING:
    from render_nodes.faces import FaceDetector

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
# Shorter segments would spend more on ffmpeg start-up and keyframes than overlap saves.
_MIN_SEGMENT_SECONDS = 4.0


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


def _video_filtergraph(
    req: RenderRequest, path: CropPath, commands: str | None, captions: str | None, poster_frame: int
) -> str:
    """The video filtergraph; `commands` and `captions` are file names in ffmpeg's working
    directory (plain names need no filtergraph escaping, unlike arbitrary paths)."""
    w, h = req.output_width, req.output_height
    crop = f"{_CROP_FILTER}={path.crop_width}:{path.crop_height}:{int(path.xs[0])}:{int(path.ys[0])}"
    if commands is not None:
        crop = f"sendcmd=f={commands},{crop}"
    # The poster is picked from the same pass: seeking into the finished clip would
    # decode from its previous keyframe again (~0.3 s a clip here).
    finish = (
        (f",{ass_filter(captions)}" if captions else "")
        + f",format=yuv420p,split=2[v][all];[all]select='eq(n\\,{poster_frame})'[poster]"
    )
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
    """Render ``req`` into ``clip_NN.mp4``, ``clip_NN.jpg`` (and ``clip_NN.ass``) in ``req.work_dir``.

    Analysis and encoding overlap: the scan runs on a thread and, each time it passes a
    cut at least `_MIN_SEGMENT_SECONDS` after the last one used, the shots before it are
    planned and encoded (video only) while the scan goes on; shots are planned on their
    own anyway, so nothing is lost at the seams. The segments are then joined without
    re-encoding, with the audio loudness-normalised in the same step.
    """
    if req.encoder not in ENCODERS:
        raise ValueError(f"unsupported encoder {req.encoder!r}; expected one of {list(ENCODERS)}")
    started = time.monotonic()
    cancel = cancel or threading.Event()

    rendering = threading.Event()

    def report(stage: str, percent: float) -> None:
        # Analysis keeps reporting while segments render; once rendering started, only
        # rendering moves the bar, so progress never goes backwards.
        if stage == "analysing" and rendering.is_set():
            return
        if stage in ("rendering", "poster"):
            rendering.set()
        if on_progress is not None:
            on_progress(stage, percent)

    def check_cancel() -> None:
        if cancel.is_set():
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
    req.work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"clip_{req.clip_index:02d}"
    clip_path = req.work_dir / f"{stem}.mp4"
    poster_path = req.work_dir / f"{stem}.jpg"
    captions_path = req.work_dir / f"{stem}.ass"
    captions = None
    if req.caption_preset != "none" and req.words:
        captions = build_caption_track(
            req.words, preset=req.caption_preset, clip_start=start, clip_end=end,
            width=req.output_width, height=req.output_height,
        )  # fmt: skip
        if captions is not None:
            captions_path.write_text(captions, encoding="utf-8")
    report("analysing", _PROBED)

    # ---- analysis on a thread, handing over segment ends as it finds cuts
    scan = SourceScan(start=start, end=end, detector="none")  # filled by the analysis thread
    boundaries: queue.Queue[float | BaseException] = queue.Queue()
    if req.detector is not None:

        def analyse() -> None:
            try:
                scan_source(
                    req.source_path, start=start, end=end, detector=req.detector, sample_fps=req.sample_fps,
                    fast_decode=req.fast_decode, hwaccel=req.hwaccel, cancel=cancel, on_cut=boundaries.put,
                    into=scan,
                    on_progress=lambda pct: report("analysing", _PROBED + pct / 100 * (_ANALYSED - _PROBED)),
                )  # fmt: skip
                boundaries.put(duration)
            except BaseException as exc:  # handed to the rendering thread
                boundaries.put(exc)

        analyser = threading.Thread(target=analyse, name=f"analyse-{stem}", daemon=True)
        analyser.start()
    else:
        analyser = None
        boundaries.put(duration)

    # ---- segments: plan and encode each as soon as its shots are known
    segments: list[tuple[float, CropPath, Path, float]] = []  # (clip start, path, file, poster candidate)
    segment_start = 0.0
    try:
        while segment_start < duration - 1e-6:
            boundary = boundaries.get()
            if isinstance(boundary, BaseException):
                raise boundary
            last = boundary >= duration - 1e-6
            if not last and boundary - segment_start < _MIN_SEGMENT_SECONDS:
                continue
            check_cancel()
            segment_end = duration if last else boundary
            path = plan_crop_path(
                segment_scan(scan, segment_start, segment_end), source_width=source.width,
                source_height=source.height, aspect_ratio=req.aspect_ratio, fps=fps,
                duration=segment_end - segment_start, config=req.reframe,
            )  # fmt: skip
            file = req.work_dir / f"{stem}.part{len(segments):03d}.mp4"
            candidate = _encode_segment(
                req, path, file, start + segment_start, segment_end - segment_start, cancel,
                lambda pct, s0=segment_start, s1=segment_end: report(
                    "rendering", _ANALYSED + (s0 + pct / 100 * (s1 - s0)) / duration * (_RENDERED - _ANALYSED)),
            )  # fmt: skip
            segments.append((segment_start, path, file, candidate))
            segment_start = segment_end
        if analyser is not None:
            analyser.join()

        # ---- join the segments, add the audio, pick the poster among the candidates
        check_cancel()
        joined = join_paths([(t0, path) for t0, path, _, _ in segments])
        _mux(req, [file for _, _, file, _ in segments], clip_path, start, duration, source.has_audio, cancel)
    except BaseException:
        cancel.set()  # stops the analysis thread too
        clip_path.unlink(missing_ok=True)  # never leave a half-written clip to be uploaded
        for _, _, file, _ in segments:
            file.with_suffix(".jpg").unlink(missing_ok=True)
        raise
    finally:
        for _, _, file, _ in segments:
            file.unlink(missing_ok=True)

    report("poster", _RENDERED)
    rendered = probe(clip_path)
    if rendered.duration_seconds < duration - max(_SHORTFALL_TOLERANCE_SECONDS, 0.05 * duration):
        clip_path.unlink(missing_ok=True)
        raise MediaError(
            f"source is truncated or corrupt: rendered only {rendered.duration_seconds:.2f} s "
            f"of {duration:.2f} s requested"
        )
    # Each segment rendered its best poster frame in its own pass; keep the clip's best.
    candidates = {t0 + at: file.with_suffix(".jpg") for t0, _, file, at in segments}
    poster_at = poster_time(joined, duration, among=set(candidates))
    chosen = candidates.get(poster_at)
    if chosen is not None and chosen.exists() and chosen.stat().st_size > 0:
        chosen.replace(poster_path)
    else:  # that frame was never rendered (a source shorter than its header said)
        poster_at = rendered.duration_seconds / 2
        run_ffmpeg(
            ["-ss", f"{poster_at:.3f}", "-i", str(clip_path), "-frames:v", "1", "-q:v", "3", "-update", "1",
             str(poster_path)],
            expected_duration=0.0,
            cancel=cancel,
        )  # fmt: skip
    for candidate in candidates.values():
        candidate.unlink(missing_ok=True)
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
            "crop": {"w": joined.crop_width, "h": joined.crop_height,
                     "x": int(joined.xs[0]), "y": int(joined.ys[0])},
            "detector": scan.detector,
            "decoder": scan.decoder,
            "shots": [
                {"start": round(shot.start, 3), "end": round(shot.end, 3), "camera": shot.mode,
                 "subject": shot.subject, **({"fallback": shot.fallback} if shot.fallback else {})}
                for shot in joined.shots
            ],
            "face_coverage": face_coverage(joined),
            "crop_jitter": crop_jitter(joined),
            "captions": req.caption_preset if captions is not None else "none",
            "poster_seconds": round(poster_at, 3),
            "segments": len(segments),
            "source": {
                "width": source.width,
                "height": source.height,
                "duration_seconds": source.duration_seconds,
            },
            "analysis_seconds": scan.seconds,
            "render_seconds": round(time.monotonic() - started, 3),
        },
    )  # fmt: skip


def _encode_segment(
    req: RenderRequest,
    path: CropPath,
    file: Path,
    source_start: float,
    seconds: float,
    cancel: threading.Event,
    on_progress: Callable[[float], None],
) -> float:
    """Encode one segment's video; returns the segment time its poster candidate is taken at."""
    commands = write_crop_commands(path, file.with_suffix(".cmd"))
    captions = None
    if req.caption_preset != "none" and req.words:
        text = build_caption_track(
            req.words, preset=req.caption_preset, clip_start=source_start, clip_end=source_start + seconds,
            width=req.output_width, height=req.output_height,
        )  # fmt: skip
        if text is not None:
            captions = file.with_suffix(".ass")
            captions.write_text(text, encoding="utf-8")
    candidate_time = poster_time(path, seconds)  # a sample time, so the caller can compare it
    candidate_frame = min(len(path.xs) - 1, path.frame_at(candidate_time))
    graph = _video_filtergraph(
        req, path, commands.name if commands.stat().st_size > 1 else None, captions.name if captions else None,
        candidate_frame,
    )
    try:
        run_ffmpeg(
            [
                "-ss", f"{source_start:.3f}", "-i", str(req.source_path.resolve()),
                "-filter_complex", graph, "-map", "[v]", "-frames:v", str(len(path.xs)), "-an",
                *_video_args(req), str(file.resolve()),
                "-map", "[poster]", "-frames:v", "1", "-q:v", "3", "-update", "1", str(file.with_suffix(".jpg")),
            ],
            expected_duration=seconds,
            on_progress=on_progress,
            cancel=cancel,
            cwd=req.work_dir,
        )  # fmt: skip
    finally:
        commands.unlink(missing_ok=True)
        if captions is not None:
            captions.unlink(missing_ok=True)
    return candidate_time


def _mux(req: RenderRequest, parts: list[Path], clip_path: Path, start: float, duration: float,
         has_audio: bool, cancel: threading.Event) -> None:
    """Join the video segments (stream copy) and add the loudness-normalised audio."""
    listing = clip_path.with_suffix(".parts.txt")
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    audio_input, audio_output = [], []
    if has_audio:
        audio_input = ["-ss", f"{start:.3f}", "-t", f"{duration:.3f}", "-i", str(req.source_path.resolve())]
        audio_output = ["-map", "1:a:0", "-af", _LOUDNORM, "-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
    try:
        run_ffmpeg(
            ["-f", "concat", "-safe", "0", "-i", listing.name, *audio_input, "-map", "0:v:0", *audio_output,
             "-c:v", "copy", "-movflags", "+faststart", str(clip_path.resolve())],
            expected_duration=duration,
            cancel=cancel,
            cwd=req.work_dir,
        )  # fmt: skip
    finally:
        listing.unlink(missing_ok=True)
