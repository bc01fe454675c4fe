"""Voice activity detection (WebRTC's VAD, via webrtcvad-wheels) and silence-aligned chunking.

Times are seconds relative to the start of the PCM given; callers that decode a chunk
of a longer source add the chunk's offset.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import webrtcvad

from render_nodes.speech.audio import BYTES_PER_SAMPLE

FRAME_MS = 30  # webrtcvad takes 10, 20 or 30 ms frames; 30 is the steadiest
_RATES = (8000, 16000, 32000, 48000)


def speech_flags(pcm: bytes, sample_rate: int = 16000, aggressiveness: int = 2,
                 frame_ms: int = FRAME_MS) -> list[bool]:
    """webrtcvad's speech/non-speech decision per ``frame_ms`` frame (a partial last frame is dropped)."""
    if sample_rate not in _RATES:
        raise ValueError(f"webrtcvad needs a sample rate in {_RATES}, not {sample_rate}")
    if not 0 <= aggressiveness <= 3:
        raise ValueError("aggressiveness must be 0..3")
    vad = webrtcvad.Vad(aggressiveness)
    step = sample_rate * frame_ms // 1000 * BYTES_PER_SAMPLE
    return [vad.is_speech(pcm[i : i + step], sample_rate) for i in range(0, len(pcm) - step + 1, step)]


def speech_segments(pcm: bytes, sample_rate: int = 16000, aggressiveness: int = 2,
                    min_silence_seconds: float = 0.3, min_speech_seconds: float = 0.2,
                    pad_seconds: float = 0.1) -> list[tuple[float, float]]:
    """Sorted, disjoint (start, end) seconds of speech in ``pcm``.

    Runs of speech frames are joined across gaps shorter than ``min_silence_seconds``;
    joined runs shorter than ``min_speech_seconds`` (clicks, breaths) are dropped; the
    rest are widened by ``pad_seconds`` each side (clamped to the audio) and re-merged.
    """
    flags = speech_flags(pcm, sample_rate, aggressiveness)
    frame = FRAME_MS / 1000.0
    duration = len(pcm) // BYTES_PER_SAMPLE / sample_rate
    runs: list[list[float]] = []
    start: int | None = None
    for i, is_speech in enumerate([*flags, False]):
        if is_speech and start is None:
            start = i
        elif not is_speech and start is not None:
            runs.append([start * frame, i * frame])
            start = None
    joined: list[list[float]] = []
    for run in runs:
        if joined and run[0] - joined[-1][1] < min_silence_seconds:
            joined[-1][1] = run[1]
        else:
            joined.append(run)
    kept = [(max(0.0, a - pad_seconds), min(duration, b + pad_seconds))
            for a, b in joined if b - a >= min_speech_seconds]
    return [(round(a, 3), round(b, 3)) for a, b in merge_segments(kept)]


def merge_segments(segments: Iterable[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    """Sort segments and merge those that overlap or are at most ``gap`` apart; empty ones go."""
    out: list[tuple[float, float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in segments):
        if b <= a:
            continue
        if out and a - out[-1][1] <= gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def silences(segments: Iterable[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """The gaps of [0, duration] not covered by ``segments``."""
    gaps: list[tuple[float, float]] = []
    cursor = 0.0
    for a, b in merge_segments((max(0.0, a), min(duration, b)) for a, b in segments):
        if a > cursor:
            gaps.append((cursor, a))
        cursor = max(cursor, b)
    if duration > cursor:
        gaps.append((cursor, duration))
    return gaps


def plan_chunks(segments: Iterable[tuple[float, float]], duration: float,
                target_seconds: float = 120.0) -> list[tuple[float, float]]:
    """Split [0, duration] into consecutive chunks of about ``target_seconds`` cut in silence.

    There are ``max(1, round(duration / target_seconds))`` chunks. Each cut starts at its
    even-split position and moves to the middle of the longest silence (the part of it
    within a quarter chunk of that position; ties go to the nearest), widening the search
    to just under half a chunk when there is none, and staying put in unbroken speech.
    The chunks cover [0, duration] exactly, without overlap.
    """
    if target_seconds <= 0:
        raise ValueError("target_seconds must be > 0")
    if not duration > 0 or not math.isfinite(duration):
        return []
    n = max(1, round(duration / target_seconds))
    length = duration / n
    gaps = silences(segments, duration)
    cuts = [0.0]
    for k in range(1, n):
        nominal = k * length
        cut = None
        for reach in (0.25 * length, 0.45 * length):
            cut = _best_cut(gaps, nominal - reach, nominal + reach, nominal)
            if cut is not None:
                break
        cuts.append(nominal if cut is None else cut)
    cuts.append(duration)
    return [(a, b) for a, b in itertools.pairwise(cuts)]


def _best_cut(gaps: list[tuple[float, float]], lo: float, hi: float, nominal: float) -> float | None:
    best: tuple[float, float, float] | None = None  # (-clipped length, distance, cut)
    for a, b in gaps:
        ca, cb = max(a, lo), min(b, hi)
        if cb <= ca:
            continue
        mid = (ca + cb) / 2.0
        key = (-(cb - ca), abs(mid - nominal), mid)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]
