"""Turn a job into tasks.

mode "none": one render task over the (trimmed) source. mode "ai": first the tasks that
find the moments (transcribe chunks in parallel, one face-presence analysis), then, once
analysis/selection.py has picked the clips, one render task per clip.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import get_args

from reelfarm import transcript
from reelfarm.geometry import output_size
from reelfarm.options import AspectRatio, ProcessOptions
from reelfarm.transcript import Word

OUTPUT_ASPECTS = frozenset(get_args(AspectRatio))


@dataclass(frozen=True)
class PlannedClip:
    index: int
    start_seconds: float
    end_seconds: float


def full_clip(duration: float, options: ProcessOptions) -> PlannedClip:
    """mode "none": one clip over the (trimmed) source."""
    start, end = options.source_window(duration)
    return PlannedClip(1, start, end)


# Parts shorter than this are not worth a task of their own.
MIN_CHUNK_SECONDS = 20.0
# Audio decoded either side of a transcribe chunk, so words cut by its edge are heard whole.
CHUNK_MARGIN_SECONDS = 2.0


def analysis_chunks(duration: float, options: ProcessOptions, chunk_seconds: float,
                    parallelism: int = 1) -> list[tuple[float, float]]:  # fmt: skip
    """Consecutive [start, end) ranges of the trimmed source, at most ~chunk_seconds each,
    as many as a multiple of `parallelism` (the task slots of the nodes now registered),
    so that no node is left idle while another transcribes a last part alone.

    Equal parts rather than cuts at silences: the nodes find the silences (voice activity
    is computed where the audio is decoded), and each word belongs to the chunk holding its
    midpoint, so a cut through a word loses nothing (each chunk hears a margin either side).
    """
    start, end = options.source_window(duration)
    span = max(0.0, end - start)
    slots = max(1, parallelism)
    waves = max(1, math.ceil(span / (chunk_seconds * slots) - 0.25))  # a quarter wave over is not worth one more
    count = max(1, min(waves * slots, math.ceil(span / MIN_CHUNK_SECONDS)))
    step = span / count
    return [(round(start + i * step, 3), round(end if i == count - 1 else start + (i + 1) * step, 3))
            for i in range(count)]  # fmt: skip


def analysis_spec(*, video, start: float, end: float, transcriber: str, language: str | None = None) -> dict:
    """The AnalysisSpec (proto field names) of a transcribe or analyze task; no language:
    the node detects it."""
    return {
        "source_key": video.storage_key,
        "source_sha256": video.sha256,
        "start_seconds": start,
        "end_seconds": end,
        "margin_seconds": CHUNK_MARGIN_SECONDS,
        "transcriber": transcriber,
        "language": language or "",
    }


def render_spec(*, job, video, options: ProcessOptions, clip: PlannedClip, words: list[Word] | None = None,
                keep: list[tuple[float, float]] | None = None, style: dict | None = None) -> dict:  # fmt: skip
    """The RenderSpec (proto field names) for one clip of a job.

    `words`: the clip's captions (source seconds); by default the words given with the job.
    `style`: the Style DNA to apply ({"target", "source", "aspect_from_template"}); the target's
    aspect ratio replaces the job's when the job did not ask for one and it is an output shape.
    """
    settings = job.render_settings or {}
    aspect = options.aspectRatio
    if style and style.get("aspect_from_template") and style["target"].get("aspect_ratio") in OUTPUT_ASPECTS:
        aspect = style["target"]["aspect_ratio"]
    width, height = output_size(aspect, settings.get("output_height"))
    if words is None:
        words = transcript.overlapping(options.supplied_words(), clip.start_seconds, clip.end_seconds)
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
        "caption_preset": options.captionPreset,
        "words": transcript.to_caption_fields(words),
        "two_faces": settings.get("two_faces", "pad"),
        "keep": [{"start_seconds": a, "end_seconds": b} for a, b in keep or []],
        "style_json": json.dumps({"target": style["target"], "source": style["source"]}) if style else "",
    }


def required_encoders(encoder_preference: str) -> list[str]:
    return ["h264_nvenc"] if encoder_preference == "nvenc" else []
