"""What applying a Style DNA to a clip means in ffmpeg filters (docs/style-dna.md, "Applying a style").

`application_filters` reads the clip's own frames (2 a second, 320x180, its range only) and
fits the colour chain that brings their measured grade to the target's (analysis/style/color.py,
with its correction passes); the audio chain goes from the clip's measured audio style (its
range decoded once) to the target's (analysis/style/audio.py); the frame rate is the target's. Aspect ratio is applied by
the planner (the target's shape becomes the clip's output shape, reframed around faces as any
clip is). Cut pacing, zoom punch-ins and transitions are not applied yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from analysis.style import audio, color, video

# The colour fit's sample of the clip: enough frames for stable statistics, cheap to decode.
FIT_SAMPLE_FPS = 2.0
FIT_MAX_FRAMES = 60


@dataclass(frozen=True)
class AppliedFilters:
    video: str  # an ffmpeg video filter chain for the clip's frames before scaling ("" for none)
    audio: str | None  # an -af chain replacing the default loudness normalisation; None: the default
    frame_rate: float | None  # the output's frame rate; None: the source's

    def as_json(self) -> dict:
        return {"video": self.video, "audio": self.audio, "frame_rate": self.frame_rate}


def parse_style(style_json: str) -> tuple[dict, dict] | None:
    """(target DNA, source DNA) from a RenderSpec's style_json; None when it is empty."""
    if not style_json:
        return None
    document = json.loads(style_json)
    return document["target"], document.get("source") or {}


def application_filters(source_path: str | Path, start: float, end: float, target: dict, source: dict,
                        *, source_frame_rate: float | None = None) -> AppliedFilters:  # fmt: skip
    """The filters that give [start, end) of the source the target's style."""
    video_chain = ""
    if target.get("color_grade") is not None:
        frames = [rgb for _, rgb in _clip_frames(source_path, start, end)]
        video_chain = color.fit_filters(color.ColorGrade.from_dict(target["color_grade"]), frames)
    audio_chain = None
    if target.get("audio_style") is not None and source.get("audio_style") is not None:
        # The clip's own audio, not the whole source's: the chain's gains start from where the clip is.
        measured, _ = audio.analyze_audio_file(source_path, start=start, duration=max(0.1, end - start))
        audio_chain = audio.audio_filters(target["audio_style"], measured)
    rate = target.get("frame_rate")
    if rate and source_frame_rate and abs(rate - source_frame_rate) < 0.01:
        rate = None  # already the source's
    return AppliedFilters(video=video_chain if video_chain not in ("", "null") else "", audio=audio_chain,
                          frame_rate=float(rate) if rate else None)  # fmt: skip


def _clip_frames(source_path: str | Path, start: float, end: float):
    """Up to FIT_MAX_FRAMES small frames spread over [start, end): the fit measures the clip itself
    (ffmpeg seeks to the clip: nothing before it is decoded)."""
    span = max(0.1, end - start)
    return video.decode_small_frames(source_path, fps=min(FIT_SAMPLE_FPS, FIT_MAX_FRAMES / span), start=start,
                                     duration=span)  # fmt: skip
