"""A video's Style DNA (reelfarm/style_dna.py) from one decode of its frames and one of its audio.

The frames come once, small (320x180, every frame: analysis/style/video.py), and feed the
shot analyser (every frame), the motion analyser (~5 a second) and the colour samples (2 a
second: analysis/style/color.py). The audio is decoded once (48 kHz, its own channels), on a thread of its own while
the frames decode, and feeds the loudness, dynamics, bass and speech measures and the beat
tracker (analysis/style/audio.py). Progress goes through 003's stages: video_analysis (the
decode), audio_analysis, motion_analysis, style_extraction (assembling the document).
docs/style-dna.md says what each field measures and how `extraction_confidence` is made.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from analysis.style import audio, color, video
from reelfarm.media import MediaError
from reelfarm.style_dna import AudioStyle, Beat, ColorGrade, StyleDNA, Transition

# Colour statistics need few frames, spread over the whole source: two a second.
COLOUR_SAMPLE_SECONDS = 0.5
# Named ratios a source is reported as when within 2 % of one; anything else is reduced w:h.
NAMED_RATIOS = ("16:9", "9:16", "1:1", "4:5", "5:4", "4:3", "3:4", "21:9", "3:2", "2:3", "2:1", "1:2")
# How much signal each part of the DNA needs to be trusted fully (extraction_confidence).
FULL_COLOUR_SAMPLES = 20  # 10 s of video
FULL_MOTION_SECONDS = 10.0
FULL_PACING_SECONDS = 60.0  # cuts per minute from less than a minute is an extrapolation

ProgressFn = Callable[[str, float], None]


class StyleExtractionCancelled(Exception):
    pass


@dataclass
class _AudioOutcome:
    style: audio.AudioStyle | None = None
    beats: audio.BeatAnalysis | None = None
    error: BaseException | None = None


def extract_style(path: str | Path, *, on_progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None, now: datetime | None = None) -> StyleDNA:  # fmt: skip
    """The Style DNA of the video at `path`; MediaError when it cannot be decoded."""
    report = on_progress or (lambda _stage, _percent: None)
    cancel = cancel or threading.Event()
    info = video.probe_source(path)
    duration = max(info.duration_seconds, 1e-6)

    heard = _AudioOutcome()
    listener = threading.Thread(target=_analyse_audio, args=(Path(path), info.has_audio, heard), daemon=True,
                                name="style-audio")  # fmt: skip
    listener.start()

    report("video_analysis", 0.0)
    shots, motion = video.ShotAnalyser(info.frame_rate or None), video.MotionAnalyser()
    # Colour statistics gather while the decoder works (the loop waits on it most of the time),
    # in bounded memory: a long source no longer keeps every sample for the end.
    colour, colour_samples, next_colour, last_report = color.ColorAccumulator(), 0, 0.0, 0.0
    for t, rgb in video.decode_small_frames(path, info=info):
        shots.push(t, rgb)
        motion.push(t, rgb)
        if t + 1e-6 >= next_colour:
            colour.push(rgb)
            colour_samples += 1
            next_colour = t + COLOUR_SAMPLE_SECONDS
        if t - last_report >= 1.0:
            last_report = t
            report("video_analysis", min(99.0, 100.0 * t / duration))
            if cancel.is_set():
                raise StyleExtractionCancelled()
    if not colour_samples:
        raise MediaError("source has no decodable video frames")

    report("audio_analysis", 0.0)
    listener.join()
    if heard.error is not None:
        raise heard.error
    report("motion_analysis", 0.0)
    shot_result = shots.result(info.duration_seconds)
    for transition in shot_result.transitions:  # a cut is not camera motion
        motion.cut(transition.start_seconds, transition.duration_seconds)
    motion_result = motion.result()
    report("style_extraction", 0.0)
    grade = color.grade_of(colour.statistics())

    confidence = _confidence(colour_samples=colour_samples, duration=info.duration_seconds,
                             has_audio=heard.style is not None)  # fmt: skip
    beats = heard.beats
    return StyleDNA(
        color_grade=ColorGrade(**grade.as_dict()),
        aspect_ratio=aspect_ratio(info.width, info.height),
        frame_rate=round(info.frame_rate, 3) if info.frame_rate else None,
        audio_style=AudioStyle(**heard.style.as_dict()) if heard.style is not None else None,
        cut_frequency=shot_result.cut_frequency,
        motion_intensity=motion_result.motion_intensity,
        zoom_usage=motion_result.zoom_usage,
        primary_transition=Transition(**shot_result.primary_transition),
        detected_beats=[Beat(**beat) for beat in beats.beats] if beats is not None else [],
        tempo_bpm=beats.tempo_bpm if beats is not None else None,
        music_genre=None,  # no offline classifier ships its weights in a package (docs/style-dna.md)
        created_at=now or datetime.now(UTC),
        source_duration_seconds=round(info.duration_seconds, 3),
        extraction_confidence=confidence,
    )


def _analyse_audio(path: Path, has_audio: bool, outcome: _AudioOutcome) -> None:
    if not has_audio:
        return
    try:
        # One decode at 48 kHz in the source's channel layout: a mono downmix reads stereo up to 3 LU low.
        outcome.style, outcome.beats = audio.analyze_audio_file(path)
    except BaseException as exc:  # noqa: BLE001 - re-raised on the extracting thread
        outcome.error = exc


def aspect_ratio(width: int, height: int) -> str:
    """"16:9" for 1920x1080 and 1280x720, "9:16" for phone video; a named ratio within 2 %, else w:h reduced."""
    if width <= 0 or height <= 0:
        raise MediaError(f"no picture size ({width}x{height})")
    actual = width / height
    for name in NAMED_RATIOS:
        w, h = (int(p) for p in name.split(":"))
        if abs(actual / (w / h) - 1.0) <= 0.02:
            return name
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _confidence(*, colour_samples: int, duration: float, has_audio: bool) -> float:
    """Mean of how fully each part is backed, 0..1: colour (samples, full at 20), motion and
    transitions (seconds of video, full at 10 s), pacing (full at a minute: cuts per minute from
    a shorter source is an extrapolation), audio (1 with a soundtrack, 0 without)."""
    parts = [
        min(1.0, colour_samples / FULL_COLOUR_SAMPLES),
        min(1.0, duration / FULL_MOTION_SECONDS),
        min(1.0, duration / FULL_PACING_SECONDS),
        1.0 if has_audio else 0.0,
    ]
    return round(sum(parts) / len(parts), 2)
