"""Turn a job into tasks.

mode "none": one render task over the (trimmed) source. mode "ai": first the tasks that
find the moments (transcribe chunks in parallel, one face-presence analysis), then, once
scheduler/selection.py has picked the clips, one render task per clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from render_nodes.geometry import output_size

# Seconds per clipLength value (reels document: 3-15 s, 20-45 s, 45-90 s).
CLIP_LENGTH_RANGES = {"short": (3.0, 15.0), "medium": (20.0, 45.0), "long": (45.0, 90.0)}


@dataclass(frozen=True)
class PlannedClip:
    index: int
    start_seconds: float
    end_seconds: float


def source_window(duration: float, options: dict) -> tuple[float, float]:
    start = float(options.get("trimStart") or 0.0)
    trim_end = options.get("trimEnd")
    end = min(float(trim_end), duration) if trim_end is not None else duration
    return start, end


def plan_clips(duration: float, options: dict) -> tuple[list[PlannedClip], str]:
    """Clip ranges for a job and the name of the selection method used.

    `mode: none` is one clip over the (trimmed) source. Until moment selection
    exists, `mode: ai` spreads numClips windows of the clipLength's (or min/maxDuration's) middle length
    evenly over the source ("uniform"), never more than fit without overlap.
    """
    start, end = source_window(duration, options)
    span = end - start
    if options.get("mode", "ai") == "none":
        return [PlannedClip(1, start, end)], "full"
    low, high = CLIP_LENGTH_RANGES[options.get("clipLength", "medium")]
    if options.get("minDuration") is not None or options.get("maxDuration") is not None:
        # The dev endpoints' explicit bounds replace clipLength's range.
        low = float(options.get("minDuration") or 1.0)
        high = float(options.get("maxDuration") or max(low, 60.0))
    length = min((low + high) / 2, span)
    count = max(1, min(int(options.get("numClips", 3)), int(span // length) if length else 1))
    gap = (span - count * length) / count
    clips = []
    for i in range(count):
        clip_start = start + gap / 2 + i * (length + gap)
        clips.append(PlannedClip(i + 1, round(clip_start, 3), round(clip_start + length, 3)))
    return clips, "uniform"


# Parts shorter than this are not worth a task of their own.
MIN_CHUNK_SECONDS = 20.0
# Audio decoded either side of a transcribe chunk, so words cut by its edge are heard whole.
CHUNK_MARGIN_SECONDS = 2.0


def analysis_chunks(duration: float, options: dict, chunk_seconds: float, parallelism: int = 1) -> list[tuple[float, float]]:
    """Consecutive [start, end) ranges of the trimmed source, at most ~chunk_seconds each,
    as many as a multiple of `parallelism` (the task slots of the nodes now registered),
    so that no node is left idle while another transcribes a last part alone.

    Equal parts rather than cuts at silences: the nodes find the silences (voice activity
    is computed where the audio is decoded), and each word belongs to the chunk holding its
    midpoint, so a cut through a word loses nothing (each chunk hears a margin either side).
    """
    start, end = source_window(duration, options)
    span = max(0.0, end - start)
    slots = max(1, parallelism)
    waves = max(1, math.ceil(span / (chunk_seconds * slots) - 0.25))  # a quarter wave over is not worth one more
    count = max(1, min(waves * slots, math.ceil(span / MIN_CHUNK_SECONDS)))
    step = span / count
    return [(round(start + i * step, 3), round(end if i == count - 1 else start + (i + 1) * step, 3))
            for i in range(count)]  # fmt: skip


def analysis_spec(*, video, start: float, end: float, transcriber: str) -> dict:
    """The AnalysisSpec (proto field names) of a transcribe or analyze task."""
    return {
        "source_key": video.storage_key,
        "source_sha256": video.sha256,
        "start_seconds": start,
        "end_seconds": end,
        "margin_seconds": CHUNK_MARGIN_SECONDS,
        "transcriber": transcriber,
    }


def render_spec(*, job, video, clip: PlannedClip, keep: list[tuple[float, float]] | None = None) -> dict:
    """The RenderSpec (proto field names) for one clip of a job."""
    settings = job.render_settings or {}
    aspect = job.options.get("aspectRatio", "9:16")
    width, height = output_size(aspect, settings.get("output_height"))
    return {
        "source_key": video.storage_key,
        "source_sha256": video.sha256,
        "clip_index": clip.index,
        "start_seconds": clip.start_seconds,
        "end_seconds": clip.end_seconds,
        "aspect_ratio": aspect,
        "output_width": width,
        "output_height": height,
        "encoder_preference": settings.get("encoder", "auto"),
        "x264_preset": settings.get("x264_preset", "veryfast"),
        "caption_preset": job.options.get("captionPreset", "none"),
        "words": clip_words(job.options.get("transcript") or [], clip.start_seconds, clip.end_seconds),
        "two_faces": settings.get("two_faces", "pad"),
        "keep": [{"start_seconds": a, "end_seconds": b} for a, b in keep or []],
    }


def clip_words(transcript: list[dict], start: float, end: float) -> list[dict]:
    """The transcript words that overlap [start, end), as CaptionWord fields."""
    return [
        {"text": w["text"], "start_seconds": w["start"], "end_seconds": w["end"]}
        for w in transcript
        if w["end"] > start and w["start"] < end
    ]


def required_encoders(encoder_preference: str) -> list[str]:
    return ["h264_nvenc"] if encoder_preference == "nvenc" else []
