"""What applying a Style DNA to a clip means in ffmpeg filters (docs/style-dna.md, "Applying a style").

`application_filters` reads the clip's own frames (2 a second, 320x180, its range only) and
fits the colour chain that brings their measured grade to the target's (analysis/style/color.py,
with its correction passes); the audio chain goes from the clip's measured audio style (its
range decoded once) to the target's (analysis/style/audio.py); the frame rate is the target's. Aspect ratio is applied by
the planner (the target's shape becomes the clip's output shape, reframed around faces as any
clip is). Cut pacing, zoom and transitions become a PacingPlan (analysis/style/pacing.py): punch-in
cuts on the clip's pauses or the source's beats, which the streaming render composes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.style import audio, color, pacing, video

# The colour fit's sample of the clip: enough frames for stable statistics, cheap to decode.
FIT_SAMPLE_FPS = 2.0
FIT_MAX_FRAMES = 60
# A clip with this many keyframes is fitted on them alone (an upload's encoder puts one at every
# shot change and every few seconds: a fair sample of its colour, for the cost of decoding them).
FIT_MIN_KEYFRAMES = 8


@dataclass(frozen=True)
class AppliedFilters:
    video: str  # an ffmpeg video filter chain for the clip's frames before scaling ("" for none)
    audio: str | None  # an -af chain replacing the default loudness normalisation; None: the default
    frame_rate: float | None  # the output's frame rate; None: the source's
    pacing: pacing.PacingPlan | None = None  # punch-in cuts, push-ins and their transitions; None: none

    def as_json(self) -> dict:
        return {"video": self.video, "audio": self.audio, "frame_rate": self.frame_rate,
                "pacing": self.pacing.as_json() if self.pacing is not None else None}


def parse_style(style_json: str) -> tuple[dict, dict] | None:
    """(target DNA, source DNA) from a RenderSpec's style_json; None when it is empty."""
    if not style_json:
        return None
    document = json.loads(style_json)
    return document["target"], document.get("source") or {}


def application_filters(source_path: str | Path, start: float, end: float, target: dict, source: dict,
                        *, source_frame_rate: float | None = None, words: Sequence[Any] = (),
                        source_times: bool = True) -> AppliedFilters:  # fmt: skip
    """The filters that give [start, end) of the source the target's style. `words` (source-timed)
    give the pauses a punch-in cut may sit in; the source DNA's beats are used as well unless
    `source_times` is False (the clip was spliced: its times are not the source's)."""
    plan = pacing.plan_pacing(end - start, target, source, pauses=pacing.pauses_in(words, start, end),
                              beats=pacing.beats_in(source, start, end) if source_times else ())  # fmt: skip
    audio_chain = None
    measuring = None
    if target.get("audio_style") is not None and source.get("audio_style") is not None:
        # The clip's own audio, not the whole source's: the chain's gains start from where the
        # clip is. Measured on a thread while the colour is fitted (its decode is a subprocess).
        measuring = ThreadPoolExecutor(1, thread_name_prefix="style-audio")
        measured = measuring.submit(_clip_audio_style, source_path, start, end)
    try:
        video_chain = ""
        if target.get("color_grade") is not None:
            # Fitted on the frames as they will be framed: a punch-in shows a different mix of colours.
            frames = [_framed(rgb, plan.framing_at(t - start).zoom if plan else 1.0)
                      for t, rgb in _clip_frames(source_path, start, end)]  # fmt: skip
            video_chain = color.fit_filters(color.ColorGrade.from_dict(target["color_grade"]), frames)
        if measuring is not None:
            audio_chain = audio.audio_filters(target["audio_style"], measured.result())
    finally:
        if measuring is not None:
            measuring.shutdown(wait=True)
    rate = target.get("frame_rate")
    if rate and source_frame_rate and abs(rate - source_frame_rate) < 0.01:
        rate = None  # already the source's
    return AppliedFilters(video=video_chain if video_chain not in ("", "null") else "", audio=audio_chain,
                          frame_rate=float(rate) if rate else None, pacing=plan)  # fmt: skip


def _clip_frames(source_path: str | Path, start: float, end: float) -> Iterator[tuple[float, Any]]:
    """Small frames spread over [start, end) that the fit measures: the clip's keyframes where it
    has FIT_MIN_KEYFRAMES of them (only those are decoded: a long clip costs next to nothing),
    else up to FIT_MAX_FRAMES at FIT_SAMPLE_FPS (ffmpeg seeks to the clip: nothing before it is
    decoded)."""
    keyframes = _keyframes(source_path, start, end)
    if len(keyframes) >= FIT_MIN_KEYFRAMES:
        return iter(keyframes)
    span = max(0.1, end - start)
    return video.decode_small_frames(source_path, fps=min(FIT_SAMPLE_FPS, FIT_MAX_FRAMES / span), start=start,
                                     duration=span)  # fmt: skip


def _keyframes(source_path: str | Path, start: float, end: float) -> list[tuple[float, Any]]:
    """(time, 320x180 RGB) of every keyframe in [start, end), up to FIT_MAX_FRAMES evenly kept;
    [] when the file cannot be read this way (the caller falls back to a full decode)."""
    import av

    found: list[tuple[float, Any]] = []
    try:
        with av.open(str(source_path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"  # the decoder skips every other frame
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start - 1e-3:
                    continue
                if frame.time >= end:
                    break
                found.append((float(frame.time), frame.to_ndarray(width=320, height=180, format="rgb24")))
    except (av.FFmpegError, IndexError, ValueError):
        return []
    if len(found) > FIT_MAX_FRAMES:
        step = len(found) / FIT_MAX_FRAMES
        found = [found[int(i * step)] for i in range(FIT_MAX_FRAMES)]
    return found


def _clip_audio_style(source_path: str | Path, start: float, end: float) -> audio.AudioStyle:
    """The clip's loudness, dynamics and bass (no beats: the chain does not use them, and the beat
    tracker's first call in a process costs seconds)."""
    samples = audio.decode_audio_channels(source_path, 48000, start=start, duration=max(0.1, end - start))
    return audio.measure_audio(samples, 48000) if samples.shape[0] else audio.AudioStyle.silent()


def _framed(rgb, zoom: float):
    """The centre 1/zoom of a fit sample, at its size: what a punch-in shows (its subject is not
    known before the render; the centre stands in for it)."""
    if zoom <= 1.0 + 1e-6:
        return rgb
    import cv2

    h, w = rgb.shape[:2]
    sub_w, sub_h = round(w / zoom), round(h / zoom)
    x0, y0 = (w - sub_w) // 2, (h - sub_h) // 2
    return cv2.resize(rgb[y0 : y0 + sub_h, x0 : x0 + sub_w], (w, h), interpolation=cv2.INTER_LINEAR)
