"""Cut pacing, zoom and transitions from a Style DNA, as a plan of framings over a clip's time.

A clip gets the template's pace without new footage the way editors of talking-head reels do
it: *punch-in cuts*. At each added cut the framing jumps between the clip's own crop (wide)
and a face-centred punch-in (PUNCH_ZOOM times closer), alternately. The cuts go where they
disturb least: on a pause in the speech or on a beat of the source's music, whichever is
nearest to where an even spacing at the target's cut frequency puts them. The template's
primary transition is used at each: a cut (a jump), a dissolve (the two framings blended
over its duration) or a fade (through black). Zoom usage is a slow push-in (ZOOM_RATE per
second, above the extractor's 2 %/s threshold) at the start of each segment, for the share of
time the template zooms more than the source does.

The plan is times and factors only; render_nodes/punch_in.py turns it into frames, and
docs/style-dna.md ("Cut pacing, zoom and transitions") says what a user gets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# The punch-in's magnification: 1.25x was the smallest the extractor's cut detector saw as a
# cut every time on a textured talking-head frame (1.15x missed one cut in five).
PUNCH_ZOOM = 1.25
# A push-in's speed, |ln scale| per second: 2.5x the extractor's ZOOM_RATE_MIN (2 %/s).
ZOOM_RATE = 0.05
# No framing is magnified more than this (a push-in stops there and holds).
MAX_ZOOM = 1.6
# A shot shorter than this reads as a glitch, not a cut; none is made shorter.
MIN_SEGMENT_SECONDS = 0.6
# A gap between words this long is a pause a cut can sit in.
MIN_PAUSE_SECONDS = 0.2
# A pause or beat is used when it is this close (as a share of the even spacing) to where the
# cut would go; otherwise the cut keeps its even place.
SNAP_SHARE = 0.35


@dataclass(frozen=True)
class Segment:
    """One framing between two added cuts; times in seconds from the clip's start."""

    start: float
    end: float
    zoom: float  # the framing's magnification at its start (1.0: the clip's own crop)
    push_seconds: float = 0.0  # a push-in over the segment's first seconds, then held

    def zoom_at(self, t: float) -> float:
        pushed = min(max(0.0, t - self.start), self.push_seconds)
        return min(MAX_ZOOM, self.zoom * math.exp(ZOOM_RATE * pushed))

    @property
    def punched(self) -> bool:
        return self.zoom > 1.0 or self.push_seconds > 0


@dataclass(frozen=True)
class Framing:
    """What one output frame shows: `zoom` of its segment's framing, blended with `blend_zoom`
    (the next or previous segment's) by `blend` (0: none), and `light` (1: full, 0: black)."""

    segment: int
    zoom: float
    blend_segment: int = -1
    blend_zoom: float = 1.0
    blend: float = 0.0
    light: float = 1.0


@dataclass(frozen=True)
class PacingPlan:
    segments: tuple[Segment, ...]
    transition: str  # "cut", "dissolve" or "fade"
    transition_seconds: float
    easing: str

    @property
    def cuts(self) -> list[float]:
        return [s.start for s in self.segments[1:]]

    def framing_at(self, t: float) -> Framing:
        index = self._segment_index(t)
        segment = self.segments[index]
        here = Framing(index, segment.zoom_at(t))
        half = self.transition_seconds / 2
        if self.transition == "cut" or half <= 0:
            return here
        # The boundary this frame is nearest, and how far through its transition the frame is.
        if index > 0 and t - segment.start < half:
            boundary, before, after = segment.start, index - 1, index
        elif index + 1 < len(self.segments) and segment.end - t <= half:
            boundary, before, after = segment.end, index, index + 1
        else:
            return here
        progress = _ease((t - (boundary - half)) / (2 * half), self.easing)
        if self.transition == "dissolve":
            # Both framings as they would be at t: the old one held, the new one as it starts.
            return Framing(before, self.segments[before].zoom_at(t), after, self.segments[after].zoom_at(t), progress)
        # Fade: down to black on the old framing, up from black on the new one.
        if progress < 0.5:
            return Framing(before, self.segments[before].zoom_at(t), light=1 - 2 * progress)
        return Framing(after, self.segments[after].zoom_at(t), light=2 * progress - 1)

    def _segment_index(self, t: float) -> int:
        for index, segment in enumerate(self.segments):
            if t < segment.end:
                return index
        return len(self.segments) - 1

    def as_json(self) -> dict[str, Any]:
        return {"cuts": [round(c, 3) for c in self.cuts], "transition": self.transition,
                "transition_ms": round(self.transition_seconds * 1000), "easing": self.easing,
                "punch_zoom": PUNCH_ZOOM,
                "push_in_seconds": round(sum(s.push_seconds for s in self.segments), 2)}  # fmt: skip


def pauses_in(words: Iterable[Any], start: float, end: float) -> list[float]:
    """Mid-points of the gaps between consecutive words in [start, end), clip-relative. `words`
    have `.start`/`.end` (reelfarm.transcript.Word) in source seconds."""
    spans = sorted((float(w.start), float(w.end)) for w in words)
    return [
        (a_end + b_start) / 2 - start
        for (_, a_end), (b_start, _) in pairwise(spans)
        if b_start - a_end >= MIN_PAUSE_SECONDS and start <= (a_end + b_start) / 2 < end
    ]


def beats_in(source: Mapping[str, Any], start: float, end: float) -> list[float]:
    """The source DNA's beats inside [start, end), clip-relative seconds."""
    times = (b["timestamp_ms"] / 1000 for b in source.get("detected_beats") or ())
    return [t - start for t in times if start <= t < end]


def plan_pacing(duration: float, target: Mapping[str, Any], source: Mapping[str, Any], *,
                pauses: Sequence[float] = (), beats: Sequence[float] = ()) -> PacingPlan | None:  # fmt: skip
    """The framings that give a clip of `duration` s the target's cut frequency and zoom usage
    beyond what the source already has; None when the target asks for nothing more."""
    extra_rate = float(target.get("cut_frequency") or 0) - float(source.get("cut_frequency") or 0)
    extra_zoom = (float(target.get("zoom_usage") or 0) - float(source.get("zoom_usage") or 0)) / 100
    transition = dict(target.get("primary_transition") or {})
    kind = transition.get("type") or "cut"
    seconds = max(0.0, float(transition.get("duration_ms") or 0) / 1000) if kind != "cut" else 0.0
    min_segment = max(MIN_SEGMENT_SECONDS, seconds + 0.2)
    cuts = _place_cuts(duration, extra_rate, min_segment, sorted({*pauses, *beats}))
    if not cuts and extra_zoom <= 0:
        return None
    bounds = [0.0, *cuts, duration]
    segments = []
    for index, (a, b) in enumerate(pairwise(bounds)):
        zoom = PUNCH_ZOOM if index % 2 else 1.0
        push = 0.0
        if extra_zoom > 0:
            # Each segment zooms for the same share of its length: the zooming spreads over the
            # clip. The push starts after the transition, and stops at MAX_ZOOM.
            room = max(0.0, (b - a) - seconds)
            push = min(room, extra_zoom * (b - a), math.log(MAX_ZOOM / zoom) / ZOOM_RATE)
        segments.append(Segment(a, b, zoom, round(push, 3)))
    return PacingPlan(tuple(segments), kind if cuts else "cut", seconds, transition.get("easing") or "linear")


def _place_cuts(duration: float, rate_per_minute: float, min_segment: float, candidates: Sequence[float]) -> list[float]:
    """Evenly spaced cuts at `rate_per_minute`, each moved to the nearest pause or beat within
    SNAP_SHARE of the spacing, and never closer than `min_segment` to another or to the ends."""
    count = round(rate_per_minute * duration / 60) if rate_per_minute > 0 else 0
    count = min(count, int(duration / min_segment) - 1)
    if count <= 0:
        return []
    spacing = duration / (count + 1)
    cuts: list[float] = []
    for k in range(1, count + 1):
        ideal = k * spacing
        near = [c for c in candidates if abs(c - ideal) <= SNAP_SHARE * spacing]
        at = min(near, key=lambda c: abs(c - ideal)) if near else ideal
        previous = cuts[-1] if cuts else 0.0
        if at - previous < min_segment:  # the snap went too close to the last cut: keep it even
            at = max(ideal, previous + min_segment)
        if duration - at < min_segment:
            break
        cuts.append(round(at, 3))
    return cuts


def _ease(x: float, easing: str) -> float:
    x = min(1.0, max(0.0, x))
    if easing == "ease-in-out":
        return x * x * (3 - 2 * x)
    if easing == "ease-in":
        return x * x
    if easing == "ease-out":
        return 1 - (1 - x) * (1 - x)
    return x
