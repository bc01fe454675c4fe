"""Style DNA from decoded frames: shot cuts, transitions, motion intensity and zoom usage.

One decode feeds every analysis: `decode_small_frames` runs ONE ffmpeg process that scales
the source to small RGB frames (320x180 by default) at the source's own frame rate, and the
caller pushes each frame to the streaming analysers (`VideoStyleAnalyser` pushes to both and
joins their results; `analyse_video` is the whole loop for one file):

    shots, motion = ShotAnalyser(), MotionAnalyser()
    for t, rgb in decode_small_frames(path):
        shots.push(t, rgb)          # every frame: cuts and transitions need them all
        motion.push(t, rgb)         # keeps ~5 per second, skips the rest cheaply
    shot_result = shots.result(duration_seconds)
    for transition in shot_result.transitions:   # a cut is not camera motion
        motion.cut(transition.start_seconds, transition.duration_seconds)
    motion_result = motion.result()

Shots. Per frame, on an 80x45 subsample: a 512-bin colour histogram (8 square-root-spaced
levels per channel, so night scenes spread over bins) and a 16x9 grid of block means. Changes
are histogram distance (half the L1 distance, 0..1) and block change (mean absolute
difference of the block means, 0..1). `result()` decides from 11 numbers kept per frame:

- hard cut at frame i: histogram change >= CUT_HISTOGRAM_CHANGE, or block change >=
  CUT_BLOCK_CHANGE x the mean luma (at least 0.1: cuts at night, cuts between shots of one
  palette); that change >= CUT_PEAK_RATIO x the larger of the medians of the 3 frames before
  and the 3 after (motion and the steps of a dissolve are sustained); and no flash: the
  picture before (i-1) is not back 2 frames on (i+2), nor the one 3 before (i-3) back at i
  (a change of under FLASH_RETURN of the jump counts as back).
- fade: a run of near-black (mean luma <= DARK_MEAN, no 16x9 block above DARK_BLOCK_MAX) or
  near-white frames between two shots, reached or left by a luma ramp of >=
  RAMP_MIN_FRAMES frames (a ramp frame: the mean luma steps by more than RAMP_STEP_MIN +
  RAMP_STEP_PER_LUMA x luma). The span runs from the first frame off the old shot to the
  last frame before the new one. Runs touching the clip's start or end are the clip's own
  fade in/out: nothing there (nor a cut or dissolve in it) counts.
- dissolve: where the histogram distance between frames i-K and i+K (K frames =
  GRADUAL_HALF_WINDOW_SECONDS) is >= GRADUAL_WIDE_CHANGE away from cuts and fades, centred on
  the middle of that stretch. It is gradual when the largest one-frame block change is under
  CUT_SHARE_OF_WIDE_CHANGE of the block change across the window (hard cuts measure
  0.9-1.0, a 0.5 s dissolve ~0.08). Its span: the frames whose block change stands above
  the median of the shots around by more than SPAN_SHARE_OF_PEAK of the peak. It is a
  dissolve (not camera motion) when (a) that excess adds up to >= DISSOLVE_CARRIES of the
  change across the window, (b) the block change across the window is >=
  DISSOLVE_STEADINESS of the sum of the one-frame changes (every block moves one way in a
  blend: ~1; a pan or whip wanders: ~1/N), and (c) halfway through, the variance of the
  block means dips by >= DISSOLVE_VARIANCE_DIP below the line between the two shots' (two
  unrelated pictures averaged lose contrast; a moving camera keeps it).
- easing: the progress through the transition (luma for each fade ramp, the cumulative block
  change for a dissolve; 0..1 over the frames between the clean shots) against a straight
  line and smoothstep 3x^2 - 2x^3: "ease-in-out" when smoothstep fits better (smaller
  squared error) with >= EASE_MIN_FRAMES frames in a ramp, else "linear".
- duration: the frames that show neither shot clean x the frame period.

primary_transition: the most common type (ties: fade, then dissolve, then cut), the median
duration of that type, its majority easing (ties: linear). No boundary: a cut of 0 ms, linear.

Motion (grayscale samples ~MOTION_FPS per second; Shi-Tomasi corners, tracked on from sample
to sample and searched for again when half are lost, followed with pyramidal Lucas-Kanade
forward and back; a RANSAC similarity transform between consecutive samples):

- pan speed: how far the frame centre moves, in frame diagonals per second.
- zoom rate: |ln scale| per second. A sample pair zooms when that is >= ZOOM_RATE_MIN.
- local motion: mean of the per-corner residual beyond the transform (less TRACKING_NOISE_PX),
  frame diagonals per second: people and things moving on their own.
- motion_intensity = 100 x (1 - exp(-speed / MOTION_SPEED_SCALE)), speed = pan speed +
  zoom rate / 2 (a corner's speed in diagonals) + local motion, time-weighted over the samples.
- zoom_usage = 100 x (sampled seconds with a zoom) / (sampled seconds).
Sample pairs across a cut or transition are left out (the caller reports them with
`MotionAnalyser.cut`; a pair whose corners mostly fail to track is left out as well).

The rules and thresholds are documented for users in docs/style-dna.md ("Shots, transitions, motion and zoom") (with the
accuracy measured on synthetic media). cv2 is imported on first use: importing this module
stays cheap.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from reelfarm.media import FFMPEG, MediaError, MediaInfo, dies_with_parent, probe

if TYPE_CHECKING:
    from numpy.typing import NDArray

# ------------------------------------------------------------------------------ shots

CUT_HISTOGRAM_CHANGE = 0.35
CUT_BLOCK_CHANGE = 0.15  # relative to the mean luma (at least 0.1): a cut at night counts too
CUT_PEAK_RATIO = 3.0
FLASH_RETURN = 0.5
# Near-black: mean luma and the brightest 16x9 block; near-white: mean and the darkest block.
DARK_MEAN, DARK_BLOCK_MAX = 0.05, 0.10
LIGHT_MEAN, LIGHT_BLOCK_MIN = 0.95, 0.90
RAMP_STEP_MIN, RAMP_STEP_PER_LUMA = 0.0015, 0.004
RAMP_MIN_FRAMES = 2
MAX_RAMP_SECONDS = 2.0
GRADUAL_HALF_WINDOW_SECONDS = 0.8
GRADUAL_WIDE_CHANGE = 0.30
CUT_SHARE_OF_WIDE_CHANGE = 0.5
SPAN_SHARE_OF_PEAK = 0.12
DISSOLVE_STEADINESS = 0.5
DISSOLVE_CARRIES = 0.5
DISSOLVE_VARIANCE_DIP = 0.2
EASE_MIN_FRAMES = 3

_HISTOGRAM_BITS = 3  # per channel: 8 x 8 x 8 = 512 bins
# Bins on a square-root scale (edges at 4, 16, 36, 64, 100, 144, 196): a night scene spreads
# over several bins instead of sitting in the bottom one.
_HISTOGRAM_LEVEL = np.minimum((1 << _HISTOGRAM_BITS) * np.sqrt(np.arange(256) / 255.0), 7).astype(np.uint8)
_SAMPLES_ACROSS = 80  # the per-frame subsample: every 4th pixel of 320 wide
_BLOCK_GRID = (16, 9)  # (columns, rows) of block means
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# ----------------------------------------------------------------------------- motion

MOTION_FPS = 5.0
MOTION_SPEED_SCALE = 0.1  # frame diagonals per second at which intensity reaches 63
ZOOM_RATE_MIN = 0.02  # |ln scale| per second: 2 %/s
TRACKING_NOISE_PX = 0.5
MIN_TRACKED_CORNERS = 12
MIN_TRACKED_SHARE = 0.3
_MAX_CORNERS = 200
_TRACKING_WINDOW = (15, 15)
_PYRAMID_LEVELS = 3  # reaches ~60 px between samples: a pan across the frame in a second
_FORWARD_BACKWARD_MAX_PX = 0.5


class FrameDecodeError(MediaError):
    """The source could not be decoded to frames (missing, not a video, ffmpeg failed)."""


# ----------------------------------------------------------------------------- decode


def decode_small_frames(
    path: str | os.PathLike[str],
    width: int = 320,
    height: int = 180,
    *,
    fps: float | None = None,
    info: MediaInfo | None = None,
    start: float | None = None,
    duration: float | None = None,
) -> Iterator[tuple[float, NDArray[np.uint8]]]:
    """(time in seconds, height x width x 3 RGB uint8) for every frame, from ONE ffmpeg process.

    Frames come at the stream's own rate (or `fps`), so frame i is at i / rate: ffmpeg
    duplicates or drops frames of a variable-rate source to keep that true. The source is
    stretched to width x height (its display orientation; 320x180 keeps 16:9 undistorted).
    `info` is `probe_source(path)` when the caller has it already (saves an ffprobe).
    `start`/`duration`: only that range (ffmpeg seeks; nothing before it is decoded); times stay
    source seconds.
    Raises FrameDecodeError at once for a missing file or something that is not a video,
    and while iterating when ffmpeg fails part way (after the frames it did decode).
    """
    return _decode(path, info if info is not None else probe_source(path), width, height, fps, start, duration)


def probe_source(path: str | os.PathLike[str]) -> MediaInfo:
    """ffprobe's description of a video; FrameDecodeError when it is missing or not a video."""
    source = os.fspath(path)
    if not os.path.exists(source):
        raise FrameDecodeError(f"cannot decode video: no such file: {source}")
    try:
        return probe(source)
    except MediaError as exc:
        raise FrameDecodeError(f"cannot decode video {os.path.basename(source)}: {exc}") from exc


def _decode(
    path: str | os.PathLike[str], info: MediaInfo, width: int, height: int, fps: float | None,
    start: float | None = None, duration: float | None = None,
) -> Iterator[tuple[float, NDArray[np.uint8]]]:
    source = os.fspath(path)
    rate = float(fps) if fps else info.frame_rate
    if not rate or rate <= 0:
        raise FrameDecodeError(f"cannot decode video {os.path.basename(source)}: frame rate unknown")
    frame_bytes = width * height * 3
    # The fps filter fixes the rate (duplicating or dropping frames of a variable-rate source),
    # so the frame index is the time; before the scaler, it spares scaling dropped frames.
    # Area scaling averages the pixels it drops (no aliasing for the trackers, and cheap).
    # Skipping the decoder's deblocking saves 10-20 % of an H.264/HEVC decode: block edges
    # average away at 1/6 of the size.
    offset = max(0.0, float(start or 0.0))
    window = [*(["-ss", f"{offset:.3f}"] if offset else []), *(["-t", f"{duration:.3f}"] if duration else [])]
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-skip_loop_filter", "all", *window, "-i", source,
           "-map", "0:v:0", "-an", "-sn", "-dn",
           "-vf", f"fps={rate:.6f},scale={width}:{height}:flags=area,format=rgb24",
           "-f", "rawvideo", "pipe:1"]  # fmt: skip
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: ffmpeg never blocks on it
        try:
            proc = subprocess.Popen(dies_with_parent(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=stderr, bufsize=frame_bytes)  # fmt: skip
        except FileNotFoundError as exc:
            raise FrameDecodeError(f"{FFMPEG} is not installed") from exc
        assert proc.stdout is not None
        index = 0
        try:
            while True:
                buffer = bytearray(frame_bytes)  # a new one each frame: callers may keep frames
                got = proc.stdout.readinto(buffer) or 0
                while 0 < got < frame_bytes:
                    more = proc.stdout.readinto(memoryview(buffer)[got:])
                    if not more:
                        break
                    got += more
                if got < frame_bytes:
                    break
                yield offset + index / rate, np.frombuffer(buffer, dtype=np.uint8).reshape(height, width, 3)
                index += 1
            returncode = proc.wait()
        finally:
            if proc.poll() is None:  # the caller stopped early (or raised): stop ffmpeg too
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if returncode != 0 or index == 0:
            stderr.seek(0)
            lines = [ln.strip() for ln in stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"ffmpeg exit code {returncode}, no frames"
            raise FrameDecodeError(f"cannot decode video {os.path.basename(source)}: {reason}")


# ------------------------------------------------------------------------------ shots


@dataclass(frozen=True)
class Transition:
    """One boundary between two shots. A cut has duration 0 and starts at the new shot's first frame."""

    type: str  # "cut", "fade" or "dissolve"
    start_seconds: float
    duration_seconds: float
    easing: str = "linear"  # "linear" or "ease-in-out"

    @property
    def at_seconds(self) -> float:
        """Where the shots change: the cut, or the middle of a gradual transition."""
        return self.start_seconds + self.duration_seconds / 2

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "start_seconds": round(self.start_seconds, 3),
                "duration_seconds": round(self.duration_seconds, 3), "easing": self.easing}  # fmt: skip


@dataclass(frozen=True)
class ShotResult:
    cuts: list[float]  # every shot boundary (hard cut, fade, dissolve), seconds
    transitions: list[Transition]  # the same boundaries, one each, in time order
    shot_count: int
    cut_frequency: float  # shot boundaries per minute, 1 decimal
    primary_transition: dict[str, Any]  # {"type", "duration_ms", "easing"}


NO_TRANSITION = {"type": "cut", "duration_ms": 0, "easing": "linear"}


class ShotAnalyser:
    """Shot boundaries and how they are made, from every decoded frame in order.

    `push` costs ~0.15 ms a frame at 320x180 (vectorised on an 80x45 subsample) and keeps
    ~90 bytes a frame (10 MB for an hour at 30 fps) plus a ring of 2K+1 small histograms;
    `result` decides from those numbers.
    """

    def __init__(self, frame_rate: float | None = None) -> None:
        self._rate = frame_rate  # None: from the first two frames' times
        self._times = array("d")
        # One number per frame for each of _Series' per-frame fields: a change is from the
        # frame before (0 for the first frame), a *_3 change from 3 frames before (the flash
        # test), a wide change from frame i-K to i+K (NaN until frame i+K arrives).
        self._series = {name: array("d") for name in _PER_FRAME}
        self._recent: deque[tuple[NDArray[np.float32], NDArray[np.float32]]] = deque()
        self._half_window = 0

    def push(self, t: float, rgb: NDArray[np.uint8]) -> None:
        """Add the next frame (times increasing, every frame of the source)."""
        import cv2

        # Every 4th pixel of a 320x180 frame (80x45) is plenty for a histogram and 16x9 block
        # means, and keeps a frame's work near 0.1 ms.
        stride = max(1, round(rgb.shape[1] / _SAMPLES_ACROSS))
        sample = np.ascontiguousarray(rgb[::stride, ::stride])
        levels = cv2.LUT(sample, _HISTOGRAM_LEVEL).astype(np.uint16)
        bins = (levels[..., 0] << (2 * _HISTOGRAM_BITS)) | (levels[..., 1] << _HISTOGRAM_BITS) | levels[..., 2]
        histogram = np.bincount(bins.ravel(), minlength=1 << (3 * _HISTOGRAM_BITS)).astype(np.float32)
        histogram /= bins.size
        blocks = cv2.resize(sample, _BLOCK_GRID, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        block_luma = blocks @ _LUMA

        if len(self._times) == 1:
            if self._rate is None:
                self._rate = 1.0 / max(t - self._times[0], 1e-3)
            self._half_window = max(2, round(GRADUAL_HALF_WINDOW_SECONDS * self._rate))
        self._times.append(float(t))
        self._recent.append((histogram, blocks))
        while len(self._recent) > max(4, 2 * self._half_window + 1):
            self._recent.popleft()

        series = self._series
        previous = self._recent[-2] if len(self._recent) > 1 else None
        series["histogram_change"].append(_histogram_distance(histogram, previous[0]) if previous else 0.0)
        series["block_change"].append(_block_distance(blocks, previous[1]) if previous else 0.0)
        series["mean_luma"].append(float(block_luma.mean()))
        series["block_luma_max"].append(float(block_luma.max()))
        series["block_luma_min"].append(float(block_luma.min()))
        series["block_variance"].append(float(blocks.var()))
        before = self._recent[-4] if len(self._recent) >= 4 else None
        series["histogram_change_3"].append(_histogram_distance(histogram, before[0]) if before else math.nan)
        series["block_change_3"].append(_block_distance(blocks, before[1]) if before else math.nan)
        series["wide_histogram"].append(math.nan)
        series["wide_block"].append(math.nan)
        k = self._half_window
        if k and len(self._recent) == 2 * k + 1:
            centre = len(self._times) - 1 - k
            series["wide_histogram"][centre] = _histogram_distance(histogram, self._recent[0][0])
            series["wide_block"][centre] = _block_distance(blocks, self._recent[0][1])

    def result(self, duration_seconds: float | None = None) -> ShotResult:
        """The boundaries found so far; `duration_seconds` (the source's) sets cut_frequency."""
        count = len(self._times)
        period = 1.0 / self._rate if self._rate else 0.04
        if duration_seconds is None or duration_seconds <= 0:
            duration_seconds = count * period
        if count < 3:
            return ShotResult([], [], 1 if count else 0, 0.0, dict(NO_TRANSITION))
        times = np.array(self._times)
        series = _Series(**{name: np.array(values) for name, values in self._series.items()},
                         half_window=self._half_window, max_ramp=max(2, round(MAX_RAMP_SECONDS / period)))  # fmt: skip
        transitions = [
            Transition(kind, float(times[first]), (last - first + 1) * period if kind != "cut" else 0.0, easing)
            for kind, first, last, easing in _find_boundaries(series)
        ]
        minutes = duration_seconds / 60.0
        return ShotResult(
            cuts=[round(tr.at_seconds, 3) for tr in transitions],
            transitions=transitions,
            shot_count=len(transitions) + 1,
            cut_frequency=round(len(transitions) / minutes, 1) if minutes > 0 else 0.0,
            primary_transition=primary_transition(transitions),
        )


def primary_transition(transitions: Iterable[Transition]) -> dict[str, Any]:
    """The most common type (cuts count as "cut"), its median duration and its usual easing.

    Ties go to a gradual type over "cut" (an editor who fades as often as they cut has a
    fading style), then to fade over dissolve. No boundary at all: a cut of 0 ms.
    """
    transitions = list(transitions)
    if not transitions:
        return dict(NO_TRANSITION)
    counts = Counter(tr.type for tr in transitions)
    preference = {"fade": 0, "dissolve": 1, "cut": 2}
    kind = min(counts, key=lambda k: (-counts[k], preference.get(k, 1)))
    chosen = [tr for tr in transitions if tr.type == kind]
    if kind == "cut":
        return dict(NO_TRANSITION)
    easings = Counter(tr.easing for tr in chosen)
    easing = "ease-in-out" if easings["ease-in-out"] > easings["linear"] else "linear"
    duration_ms = round(float(np.median([tr.duration_seconds for tr in chosen])) * 1000)
    return {"type": kind, "duration_ms": duration_ms, "easing": easing}


def _histogram_distance(one: NDArray[np.float32], other: NDArray[np.float32]) -> float:
    """Half the L1 distance of two normalised histograms: 0 (same) .. 1 (no colour in common)."""
    return 0.5 * float(np.abs(one - other).sum())


def _block_distance(one: NDArray[np.float32], other: NDArray[np.float32]) -> float:
    """Mean absolute difference of two grids of block means (0..1)."""
    return float(np.abs(one - other).mean())


@dataclass
class _Series:
    """The per-frame numbers `ShotAnalyser.result` decides from (see its __init__)."""

    histogram_change: NDArray[np.float64]
    block_change: NDArray[np.float64]
    mean_luma: NDArray[np.float64]
    block_luma_max: NDArray[np.float64]
    block_luma_min: NDArray[np.float64]
    block_variance: NDArray[np.float64]
    histogram_change_3: NDArray[np.float64]
    block_change_3: NDArray[np.float64]
    wide_histogram: NDArray[np.float64]
    wide_block: NDArray[np.float64]
    half_window: int  # K, frames
    max_ramp: int  # frames


_PER_FRAME = [f.name for f in fields(_Series) if f.name not in ("half_window", "max_ramp")]


def _find_boundaries(s: _Series) -> list[tuple[str, int, int, str]]:
    """(type, first frame, last frame, easing); a cut's first and last are the new shot's first frame."""
    count = len(s.mean_luma)
    fades, edge_zones = _find_fades(s)
    explained = [(first, last) for _, first, last, _ in fades] + edge_zones
    blocked = np.zeros(count, dtype=bool)  # frames a fade or the clip's fade in/out explains
    for first, last in explained:
        blocked[max(0, first - 1) : last + 2] = True
    cuts = [i for i in _find_cuts(s) if not blocked[i]]

    k = s.half_window
    near_boundary = np.zeros(count, dtype=bool)  # the wide change there is that boundary's
    for first, last in explained + [(i, i) for i in cuts]:
        near_boundary[max(0, first - k) : last + k + 1] = True
    dissolves = _find_dissolves(s, near_boundary)
    return sorted(fades + [("cut", i, i, "linear") for i in cuts] + dissolves, key=lambda item: item[1])


def _find_cuts(s: _Series) -> list[int]:
    count = len(s.histogram_change)
    luma_level = np.maximum(0.5 * (s.mean_luma + np.r_[s.mean_luma[:1], s.mean_luma[:-1]]), 0.1)
    cuts = set()
    for change, change_3, strong in (
        (s.histogram_change, s.histogram_change_3, s.histogram_change >= CUT_HISTOGRAM_CHANGE),
        (s.block_change, s.block_change_3, s.block_change >= CUT_BLOCK_CHANGE * luma_level),
    ):
        for i in np.flatnonzero(strong):
            if i == 0:
                continue
            # Each side's median ignores one other big change there (a one-frame shot, a flash);
            # the larger side is the one to stand out from (the last step of a dissolve does not).
            before, after = change[max(1, i - 3) : i], change[i + 1 : i + 4]
            typical = max(float(np.median(side)) if len(side) else 0.0 for side in (before, after))
            if change[i] < CUT_PEAK_RATIO * typical:
                continue  # sustained change: motion or a gradual transition
            # A flash (or a frame or two of anything) comes back: frame i-1 returns at i+2, or the
            # frame 3 before i is back at i. (NaN, at the clip's ends, compares False.)
            back_after = change_3[i + 2] if i + 2 < count else math.nan
            if back_after < FLASH_RETURN * change[i] or change_3[i] < FLASH_RETURN * change[i]:
                continue
            cuts.add(int(i))
    return sorted(cuts)


def _find_fades(s: _Series) -> tuple[list[tuple[str, int, int, str]], list[tuple[int, int]]]:
    """Fades through black or white between shots, and (first, last) of the fades in/out at the clip's edges."""
    count = len(s.mean_luma)
    dark = (s.mean_luma <= DARK_MEAN) & (s.block_luma_max <= DARK_BLOCK_MAX)
    light = (s.mean_luma >= LIGHT_MEAN) & (s.block_luma_min >= LIGHT_BLOCK_MIN)
    fades: list[tuple[str, int, int, str]] = []
    edge_zones: list[tuple[int, int]] = []
    for flags, sign in ((dark, 1.0), (light, -1.0)):
        # Signed so that "away from black/white" is always up.
        luma = sign * s.mean_luma
        for first, last in _runs(flags):
            # The ramps may reach into the run (a nearly black frame is still on its way down):
            # the extremes are where the luma stops falling / starts rising.
            bottom_out, bottom_in = first, last
            while bottom_out < last and _steps_away(luma[bottom_out], luma[bottom_out + 1]):
                bottom_out += 1
            while bottom_in > bottom_out and _steps_away(luma[bottom_in], luma[bottom_in - 1]):
                bottom_in -= 1
            # Walk out of the run while the luma keeps climbing: the clean frames are where it stops.
            clean_before = first
            while first - clean_before <= s.max_ramp and clean_before >= 1 and _steps_away(
                luma[clean_before - 1], luma[clean_before]
            ):
                clean_before -= 1
            clean_after = last
            while clean_after - last <= s.max_ramp and clean_after + 1 < count and _steps_away(
                luma[clean_after + 1], luma[clean_after]
            ):
                clean_after += 1
            if first == 0 or last == count - 1:
                edge_zones.append((clean_before, clean_after))
                continue
            ramp_out, ramp_in = bottom_out - clean_before - 1, clean_after - bottom_in - 1
            if max(ramp_out, ramp_in) < RAMP_MIN_FRAMES:
                continue  # hard cuts to and from a black shot: the cut finder has them
            easing = _fade_easing(s.mean_luma, clean_before, bottom_out, bottom_in, clean_after)
            fades.append(("fade", min(clean_before + 1, first), max(clean_after - 1, last), easing))
    return fades, edge_zones


def _steps_away(outer: float, inner: float) -> bool:
    """Whether one frame from `inner` to `outer` climbs a fade's ramp (signed luma: up is away from black/white)."""
    return outer - inner > RAMP_STEP_MIN + RAMP_STEP_PER_LUMA * abs(outer)


def _fade_easing(
    luma: NDArray[np.float64], clean_before: int, bottom_out: int, bottom_in: int, clean_after: int
) -> str:
    """Easing of a fade from its luma ramps: down over clean_before..bottom_out, up over bottom_in..clean_after."""
    errors = np.zeros(2)
    frames = 0
    for clean, bottom in ((clean_before, bottom_out), (clean_after, bottom_in)):
        step = 1 if bottom > clean else -1
        between = np.arange(clean + step, bottom, step)
        if len(between) == 0 or luma[clean] == luma[bottom]:
            continue
        progress = (luma[clean] - luma[between]) / (luma[clean] - luma[bottom])
        position = np.abs(between - clean) / abs(bottom - clean)
        errors += _easing_errors(position, progress)
        frames = max(frames, len(between))
    return _easing(errors, frames)


def _easing_errors(position: NDArray[np.float64], progress: NDArray[np.float64]) -> NDArray[np.float64]:
    smooth = position * position * (3 - 2 * position)
    return np.array([float(((progress - position) ** 2).sum()), float(((progress - smooth) ** 2).sum())])


def _easing(errors: NDArray[np.float64], frames: int) -> str:
    return "ease-in-out" if frames >= EASE_MIN_FRAMES and errors[1] < errors[0] else "linear"


def _find_dissolves(s: _Series, near_boundary: NDArray[np.bool_]) -> list[tuple[str, int, int, str]]:
    count = len(s.block_change)
    k = s.half_window
    wide = np.nan_to_num(s.wide_histogram, nan=0.0)
    candidates = (wide >= GRADUAL_WIDE_CHANGE) & ~near_boundary
    found: list[tuple[str, int, int, str]] = []
    for first, last in _runs(candidates):
        # The wide change stays high while the window holds the whole transition: a plateau
        # centred on it (its argmax would follow the motion in the shots on either side).
        centre = (first + last) // 2
        low, high = centre - k + 1, centre + k  # the one-frame changes inside the window
        # Histograms jump bins frame to frame in any blend of two palettes: the block means
        # move smoothly, so they tell a one-frame change from a spread one.
        largest = float(s.block_change[low : high + 1].max())
        if largest >= CUT_SHARE_OF_WIDE_CHANGE * s.wide_block[centre]:
            continue  # a cut the cut finder turned down (a flash, or a cut in heavy motion)
        outside = np.r_[max(1, centre - 2 * k) : low, high + 1 : min(count, centre + 2 * k + 1)]
        baseline = float(np.median(s.block_change[outside])) if len(outside) else 0.0
        excess = s.block_change[low : high + 1] - baseline
        peak = int(np.argmax(excess))
        if excess[peak] <= 0:
            continue
        above = excess > SPAN_SHARE_OF_PEAK * excess[peak]
        step_first = step_last = peak
        while step_first - 1 >= 0 and above[step_first - 1]:
            step_first -= 1
        while step_last + 1 < len(above) and above[step_last + 1]:
            step_last += 1
        steps = s.block_change[low + step_first : low + step_last + 1]
        if len(steps) < 3:
            continue  # under 2 frames between the shots: nothing to call a dissolve
        if float(excess[step_first : step_last + 1].sum()) < DISSOLVE_CARRIES * s.wide_block[centre]:
            continue  # the window's change is spread over the shots (motion), not made in the span
        if s.wide_block[centre] < DISSOLVE_STEADINESS * float(steps.sum()):
            continue  # the frames wander (camera motion), they do not blend
        # Steps i..j change frames i-1 -> j: the frames in between are i..j-1.
        span_first, span_last = low + step_first, low + step_last - 1
        clean_before, clean_after = span_first - 1, span_last + 1
        middle = (clean_before + clean_after) // 2
        expected = np.interp(middle, [clean_before, clean_after], s.block_variance[[clean_before, clean_after]])
        dip = 1 - s.block_variance[middle] / max(expected, 1e-9)
        if dip < DISSOLVE_VARIANCE_DIP:
            continue  # halfway through a blend the two pictures' contrasts average out; a pan's do not
        progress = np.cumsum(steps)[:-1] / steps.sum()
        position = np.arange(1, len(steps)) / len(steps)
        found.append(("dissolve", span_first, span_last, _easing(_easing_errors(position, progress), len(progress))))
    return found


def _runs(flags: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


# ----------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class MotionResult:
    motion_intensity: int  # 0..100
    zoom_usage: int  # 0..100: share of sampled time with a zoom
    mean_pan_speed: float  # frame diagonals per second (time-weighted over sampled time)
    mean_zoom_rate: float  # |ln scale| per second
    mean_local_motion: float  # frame diagonals per second
    sampled_seconds: float  # time covered by sample pairs within shots


_STEP_COLUMNS = ("start", "end", "pan_speed", "zoom_rate", "local_motion")  # zoom_rate > 0: zooming in


class MotionAnalyser:
    """Camera and content motion from samples ~`fps` per second (push every frame; extras are skipped)."""

    def __init__(self, fps: float = MOTION_FPS) -> None:
        self.fps = fps
        # One entry per pair of consecutive samples that tracked (40 bytes each).
        self._steps = {name: array("d") for name in _STEP_COLUMNS}
        self._boundaries: list[tuple[float, float]] = []
        self._last_time: float | None = None
        self._last_gray: NDArray[np.uint8] | None = None
        # Corners tracked into the last sample, tracked on from there: finding corners costs
        # as much as tracking them, so they are looked for again only when half are lost.
        self._corners: NDArray[np.float32] | None = None
        self._corners_found = 0  # how many the last search found

    def push(self, t: float, rgb: NDArray[np.uint8]) -> None:
        """Offer the next frame (times increasing); it is used when 1/fps has passed since the last used one."""
        # Less a millisecond: frame times are multiples of 1/rate, rounding must not skip one.
        if self._last_time is not None and t - self._last_time < 1.0 / self.fps - 1e-3:
            return
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if self._last_gray is not None and self._last_time is not None:
            if self._corners is None or len(self._corners) < max(MIN_TRACKED_CORNERS, self._corners_found // 2):
                self._corners = _find_corners(self._last_gray)
                self._corners_found = 0 if self._corners is None else len(self._corners)
            step, self._corners = _measure_step(self._last_gray, gray, t - self._last_time, self._corners)
            if step is not None:
                for name, value in zip(_STEP_COLUMNS, (self._last_time, t, *step), strict=True):
                    self._steps[name].append(value)
        self._last_time, self._last_gray = t, gray

    def cut(self, start_seconds: float, duration_seconds: float = 0.0) -> None:
        """A shot boundary from start_seconds (the new shot's first frame, for a cut) lasting
        duration_seconds: sample pairs that reach across it are left out (before or after
        they were pushed)."""
        self._boundaries.append((start_seconds, start_seconds + max(0.0, duration_seconds)))

    def result(self) -> MotionResult:
        steps = {name: np.array(values) for name, values in self._steps.items()}
        start, end = steps["start"], steps["end"]
        keep = np.ones(len(start), dtype=bool)
        if self._boundaries and len(start):
            # A pair is out when a boundary starts by its end and ends after its start: among
            # the boundaries starting by the pair's end (sorted), the furthest-reaching one tells.
            bounds = np.array(sorted(self._boundaries))
            reach = np.maximum.accumulate(bounds[:, 1])
            started = np.searchsorted(bounds[:, 0] - 1e-6, end, side="right")
            keep = ~((started > 0) & (reach[np.maximum(started - 1, 0)] - 1e-6 > start))
        seconds_each = (end - start)[keep]
        seconds = float(seconds_each.sum())
        if seconds <= 0:
            return MotionResult(0, 0, 0.0, 0.0, 0.0, 0.0)
        zoom_rate = np.abs(steps["zoom_rate"][keep])
        pan, zoom, local = (
            float((values * seconds_each).sum()) / seconds
            for values in (steps["pan_speed"][keep], zoom_rate, steps["local_motion"][keep])
        )
        speed = pan + zoom / 2 + local
        zooming = float(seconds_each[zoom_rate >= ZOOM_RATE_MIN].sum())
        return MotionResult(
            motion_intensity=round(100 * (1 - math.exp(-speed / MOTION_SPEED_SCALE))),
            zoom_usage=round(100 * zooming / seconds),
            mean_pan_speed=round(pan, 4),
            mean_zoom_rate=round(zoom, 4),
            mean_local_motion=round(local, 4),
            sampled_seconds=round(seconds, 3),
        )


def _find_corners(gray: NDArray[np.uint8]) -> NDArray[np.float32] | None:
    """Shi-Tomasi corners worth tracking (N x 1 x 2), or None on a flat picture."""
    import cv2

    return cv2.goodFeaturesToTrack(gray, maxCorners=_MAX_CORNERS, qualityLevel=0.01, minDistance=6, blockSize=5)


def _measure_step(
    before: NDArray[np.uint8], after: NDArray[np.uint8], seconds: float, corners: NDArray[np.float32] | None
) -> tuple[tuple[float, float, float] | None, NDArray[np.float32] | None]:
    """(pan speed, zoom rate, local motion) from one grayscale sample to the next, or None when
    the corners do not carry over (a cut nobody reported, a flash, heavy blur); and where the
    corners went in `after`, to track on from there (None: look for new ones)."""
    import cv2

    if seconds <= 0:
        return None, None
    height, width = before.shape
    diagonal = math.hypot(width, height)
    if corners is None or len(corners) < MIN_TRACKED_CORNERS:
        return (0.0, 0.0, 0.0), None  # nothing to track: a flat picture shows no motion either
    lk = {"winSize": _TRACKING_WINDOW, "maxLevel": _PYRAMID_LEVELS,
          "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)}  # fmt: skip
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, corners, None, **lk)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, moved, None, **lk)
    # Forward-backward agreement drops the corners LK lost or mismatched.
    good = (found.ravel() == 1) & (found_back.ravel() == 1)
    good &= np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < _FORWARD_BACKWARD_MAX_PX
    if good.sum() < max(MIN_TRACKED_CORNERS, MIN_TRACKED_SHARE * len(corners)):
        return None, None
    source, target = corners.reshape(-1, 2)[good], moved.reshape(-1, 2)[good]
    transform, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=1.0,
                                               maxIters=2000, confidence=0.99)  # fmt: skip
    if transform is None:
        return None, None
    scale = math.hypot(transform[0, 0], transform[1, 0])
    centre = np.array([width / 2, height / 2, 1.0])
    # The centre's motion is the pan; the transform's own translation would mix in the zoom.
    centre_shift = transform @ centre - centre[:2]
    predicted = source @ transform[:, :2].T + transform[:, 2]
    residual = np.maximum(np.linalg.norm(target - predicted, axis=1) - TRACKING_NOISE_PX, 0.0)
    inside = (target[:, 0] >= 0) & (target[:, 0] < width) & (target[:, 1] >= 0) & (target[:, 1] < height)
    step = (
        float(np.linalg.norm(centre_shift)) / diagonal / seconds,
        math.log(scale) / seconds,
        float(residual.mean()) / diagonal / seconds,
    )
    return step, target[inside].reshape(-1, 1, 2).astype(np.float32)


# ---------------------------------------------------------------------------- together


@dataclass(frozen=True)
class VideoStyle:
    shots: ShotResult
    motion: MotionResult

    def style_json(self) -> dict[str, Any]:
        """This module's fields of the style_json document."""
        return {
            "cut_frequency": self.shots.cut_frequency,
            "motion_intensity": self.motion.motion_intensity,
            "zoom_usage": self.motion.zoom_usage,
            "primary_transition": dict(self.shots.primary_transition),
        }


class VideoStyleAnalyser:
    """Both analysers behind one `push`, joined so that transitions are not counted as motion."""

    def __init__(self, frame_rate: float | None = None, motion_fps: float = MOTION_FPS) -> None:
        self.shots = ShotAnalyser(frame_rate)
        self.motion = MotionAnalyser(motion_fps)

    def push(self, t: float, rgb: NDArray[np.uint8]) -> None:
        self.shots.push(t, rgb)
        self.motion.push(t, rgb)

    def result(self, duration_seconds: float | None = None) -> VideoStyle:
        shots = self.shots.result(duration_seconds)
        for transition in shots.transitions:
            self.motion.cut(transition.start_seconds, transition.duration_seconds)
        return VideoStyle(shots, self.motion.result())


def analyse_video(path: str | os.PathLike[str]) -> VideoStyle:
    """Decode `path` once (320x180, every frame) and measure its shots and motion."""
    info = probe_source(path)
    analyser = VideoStyleAnalyser(frame_rate=info.frame_rate)
    for t, rgb in decode_small_frames(path, info=info):
        analyser.push(t, rgb)
    return analyser.result(info.duration_seconds)
