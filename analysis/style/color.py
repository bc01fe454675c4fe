"""Style DNA colour grade: measure a clip's grade, and build the ffmpeg filters that apply one.

The API document's "color_grade" holds six ints in -100..100, each RELATIVE TO A NEUTRAL
GRADE (NEUTRAL_REFERENCE below: what ungraded footage measures on average):

    {"temperature": 10, "tint": 5, "saturation": 20, "contrast": 15, "highlights": 10, "shadows": -5}

Measurement (`measure_grade`): every pixel of every sampled frame is pooled (RGB uint8, read
as sRGB), converted to CIE L*a*b* (D65) and to BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B
in 0..1 (the luma ffmpeg's YUV filters act on). With ref = NEUTRAL_REFERENCE:

    colourfulness = chroma / ref.chroma        chroma: mean a*b* distance from the clip's own mean a*b*
    saturation    = 100 x (colourfulness - 1)
    temperature   = (mean b* - colourfulness x ref.mean_b) / 0.2    + warmer (yellow), - cooler (blue)
    tint          = (mean a* - colourfulness x ref.mean_a) / 0.2    + magenta, - green
    spread        = (Y p75 - Y p25) / (ref p75 - ref p25)
    contrast      = 100 x (spread - 1)
    highlights    = 100 x (Y p90 - e90) / (1 - ref p90) if brighter than e90, else (Y p90 - e90) / 0.002
    shadows       = 100 x (Y p10 - e10) / ref p10       if darker than e10,   else (Y p10 - e10) / 0.002
    e90, e10      = clip(ref p50 + (ref p90 or p10 - ref p50) x spread, TAIL_FLOOR, TAIL_CEILING)

So content colour that merely scales with saturation (a black-and-white clip, a desaturated
one) is not read as a cast, and contrast alone moves p10 and p90 where contrast predicts
(e10, e90): highlights and shadows read what the tails do beyond that, like a grading tool's
highlight and shadow controls (-100 shadows: p10 at black, +100 highlights: p90 at white).
Each value is rounded and clamped to -100..100.

Application: two `lutyuv` look-up tables (ffmpeg computes each table once, then it is one
look-up a sample; bit depth and video range come from the stream via minval/maxval):

    lutyuv=y='<monotone cubic through 7 knots>'          contrast, highlights, shadows
    lutyuv=u='<scale about neutral + offset>':v='...'    saturation, temperature, tint

The luma curve sends the source's luma percentiles (p10, p25, p50, p75, p90; black and white
follow) to the target's: a monotone curve on Y carries percentiles with it, so that is exact
but for RGB clipping. U and V are scaled about neutral by a chroma gain (saturation) and
shifted by offsets (the cast). Colour and tone interact a little (clipping; L*a*b* is not
YUV), so the design uses measured responses of the neutral corpus (the tables below).

- `grade_filters(grade)` designs the filters for NEUTRAL footage, without running ffmpeg.
- `fit_filters(target, source_frames)` starts from the same design for the source's own
  statistics, then runs up to FIT_PASSES correction passes: the chain is applied to the
  sampled frames (ONE ffmpeg run over all of them, raw rgb24 in and out), the result is
  measured, and what is left is corrected: each luma knot by its percentile's miss, the
  colour by a quasi-Newton step (its Jacobian starts as the neutral corpus's and learns
  from each pass). It stops early once every field is within FIT_TOLERANCE, and never
  returns a chain that measured worse than the source as it is.

docs/style-dna.md ("Colour grade") documents the fields, the neutral reference, the accuracy measured
and the filters for users. cv2 is imported on first use: importing this module stays cheap.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reelfarm.media import FFMPEG, MediaError, dies_with_parent

if TYPE_CHECKING:
    from numpy.typing import NDArray

GRADE_FIELDS = ("temperature", "tint", "saturation", "contrast", "highlights", "shadows")
GRADE_LIMIT = 100

# Scale of the fields (what one unit is), chosen so that ffmpeg settings a colourist would call
# strong read around +-50..100 on the neutral corpus: colortemperature=temperature=3500 reads
# temperature +66, eq=saturation=1.5 saturation +42 (2: +71), eq=contrast=1.5 contrast +46,
# curves=all='0/0.15 1/1' (lifted blacks) shadows +45, curves=all='0/0 1/0.8' highlights -39.
TEMPERATURE_B_PER_UNIT = 0.2  # L*a*b* b* per temperature unit: +100 = b* +20 beyond neutral
TINT_A_PER_UNIT = 0.2  # a* per tint unit
# Highlights and shadows: towards the middle (dimmer highlights, lifted shadows) one unit is
# LUMA_PER_UNIT of luma (0..1; 100 units = 0.2 = 51 code values); towards the end (brighter
# highlights, crushed shadows) 100 units is the neutral tail's whole way to pure white
# (1 - ref p90 = 0.304) or pure black (ref p10 = 0.123).
LUMA_PER_UNIT = 0.002

LUMA_PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0)
# How dark p10 and how bright p90 get under a luma curve: pixels crushed to black (pushed to
# white) in Y keep their chroma, so in RGB they are not quite black (white). On neutral
# footage p10 bottoms out near 0.028 and p90 tops out near 0.969. The tails that contrast
# predicts are limited to this range, so that strong contrast alone reads shadows ~0.
TAIL_FLOOR = 0.03
TAIL_CEILING = 0.97

# Correction passes of `fit_filters` (each: one ffmpeg run over the sampled frames and one
# measurement), and the error (in units, every field) at which it stops early.
FIT_PASSES = 3
FIT_TOLERANCE = 1.0
_FFMPEG_TIMEOUT_SECONDS = 60.0


class GradeError(MediaError):
    """ffmpeg could not apply a grade to the sampled frames; str() is user-readable."""


@dataclass(frozen=True)
class ColorGrade:
    """The six "color_grade" fields: ints in -100..100, relative to NEUTRAL_REFERENCE."""

    temperature: int = 0
    tint: int = 0
    saturation: int = 0
    contrast: int = 0
    highlights: int = 0
    shadows: int = 0

    def __post_init__(self) -> None:
        for name in GRADE_FIELDS:
            value = getattr(self, name)
            # bool is an int subclass; numpy ints are accepted (int() below is exact for them).
            # ValueError, not TypeError: a bad style_json value is bad input like any other.
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"color_grade.{name} must be an int, got {value!r}")  # noqa: TRY004
            if not -GRADE_LIMIT <= value <= GRADE_LIMIT:
                raise ValueError(f"color_grade.{name} must be in -{GRADE_LIMIT}..{GRADE_LIMIT}, got {value}")
            object.__setattr__(self, name, int(value))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in GRADE_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColorGrade:
        """From a style_json "color_grade" object; missing fields are 0, unknown ones an error."""
        unknown = sorted(set(data) - set(GRADE_FIELDS))
        if unknown:
            raise ValueError(f"unknown color_grade field(s): {', '.join(unknown)}")
        return cls(**data)  # type: ignore[arg-type]

    def is_neutral(self) -> bool:
        return all(getattr(self, name) == 0 for name in GRADE_FIELDS)


@dataclass(frozen=True)
class ColorStatistics:
    """What a grade is measured from: all pixels of all sampled frames, pooled."""

    mean_a: float  # CIE L*a*b* a* (D65, sRGB): - green, + magenta/red
    mean_b: float  # b*: - blue, + yellow
    chroma: float  # mean a*b* distance from (mean_a, mean_b): colourfulness, casts left out
    luma_percentiles: tuple[float, float, float, float, float]  # BT.601 Y' (0..1) at LUMA_PERCENTILES


# The neutral reference: the pooled statistics of five ungraded photographs that ship with
# scikit-image (skimage.data astronaut, coffee, chelsea, rocket and stereo_motorcycle's left
# view), each centre-cropped to 16:9 and resized to 320x180 with cv2.INTER_AREA, one frame
# each. tests/analysis/test_style_color.py rebuilds that corpus and checks these numbers.
# What they say: ungraded daylight/indoor footage is on average a little warm and magenta
# (skin, wood, sunlight), moderately colourful, with its median luma below mid-grey.
NEUTRAL_REFERENCE = ColorStatistics(
    mean_a=13.5545,
    mean_b=12.1958,
    chroma=21.9158,
    luma_percentiles=(0.1234, 0.2240, 0.3858, 0.5518, 0.6956),
)

# How the neutral corpus responds to the chroma gain (U and V scaled about neutral), one row
# per gain: its colourfulness; its mean a* and b* (as ratios to the reference); how well U/V
# offsets move a* and b* at that gain (as ratios to _CAST_MODEL, which is at gain 1); and how
# far the gain moves luma p10..p90 (RGB clipping of the colours it pushes out of gamut).
# Colourfulness grows slower than the gain above ~1.2, for the same reason.
_GAIN_RESPONSE = np.array(
    [
        # gain, colourfulness, a* ratio, b* ratio, cast on a*, cast on b*, luma shift p10..p90
        [0.00, 0.0010, 0.0020, 0.0010, 1.122, 1.095, -0.0018, -0.0005, -0.0015, 0.0011, -0.0015],
        [0.13, 0.1253, 0.1134, 0.1156, 1.107, 1.088, -0.0004, -0.0006, -0.0006, 0.0004, -0.0000],
        [0.26, 0.2506, 0.2357, 0.2351, 1.094, 1.084, -0.0004, -0.0001, -0.0006, 0.0003, -0.0000],
        [0.38, 0.3722, 0.3538, 0.3513, 1.078, 1.075, -0.0001, -0.0001, -0.0005, 0.0006, -0.0008],
        [0.51, 0.5057, 0.4861, 0.4849, 1.061, 1.066, -0.0003, 0.0005, -0.0006, 0.0004, -0.0006],
        [0.63, 0.6293, 0.6097, 0.6083, 1.045, 1.054, -0.0001, -0.0001, -0.0006, 0.0004, -0.0006],
        [0.76, 0.7613, 0.7468, 0.7481, 1.026, 1.036, -0.0001, 0.0006, -0.0007, 0.0004, -0.0008],
        [0.88, 0.8822, 0.8734, 0.8751, 1.007, 1.014, -0.0000, 0.0000, -0.0006, 0.0004, -0.0008],
        [1.00, 1.0000, 1.0000, 1.0000, 0.994, 0.992, -0.0000, 0.0000, -0.0000, -0.0000, 0.0000],
        [1.13, 1.1221, 1.1355, 1.1330, 0.970, 0.953, -0.0002, 0.0001, -0.0010, 0.0002, -0.0008],
        [1.26, 1.2363, 1.2691, 1.2543, 0.949, 0.916, 0.0002, 0.0007, -0.0012, 0.0002, -0.0003],
        [1.38, 1.3340, 1.3863, 1.3526, 0.928, 0.878, 0.0006, 0.0003, -0.0010, -0.0002, -0.0007],
        [1.51, 1.4288, 1.5078, 1.4502, 0.907, 0.839, 0.0015, 0.0006, 0.0007, -0.0035, -0.0008],
        [1.63, 1.5099, 1.6123, 1.5256, 0.891, 0.809, 0.0037, 0.0011, 0.0012, -0.0047, -0.0009],
        [1.76, 1.5889, 1.7241, 1.6004, 0.872, 0.775, 0.0039, 0.0034, 0.0015, -0.0079, -0.0010],
        [2.01, 1.7169, 1.9131, 1.7097, 0.838, 0.723, 0.0063, 0.0050, 0.0022, -0.0116, -0.0019],
        [2.26, 1.8232, 2.0888, 1.7953, 0.800, 0.669, 0.0088, 0.0092, 0.0032, -0.0137, -0.0045],
        [2.51, 1.9085, 2.2410, 1.8555, 0.770, 0.625, 0.0102, 0.0126, 0.0062, -0.0173, -0.0057],
        [3.01, 2.0413, 2.4924, 1.9246, 0.726, 0.568, 0.0145, 0.0173, 0.0101, -0.0180, -0.0103],
        [4.01, 2.2457, 2.9269, 1.9777, 0.624, 0.480, 0.0263, 0.0232, 0.0191, -0.0203, -0.0155],
    ]
)
_GAIN_COLOURFULNESS = 1
_GAIN_MEAN_RATIOS = slice(2, 4)
_GAIN_CAST_EFFECT = slice(4, 6)
_GAIN_LUMA_SHIFT = slice(6, 11)
# How the neutral corpus responds to the cast: U and V offsets (u, v), as fractions of the
# chroma range (maxval - minval), added after the gain. Rows: delta mean a*, delta mean b* at
# gain 1 (least squares over a 9 x 9 grid of offsets in -0.1..0.1, ffmpeg 5.1; worst residual
# 0.55 a*, 0.48 b*); the "cast on" columns of _GAIN_RESPONSE scale them for other gains. The
# |u| and |v| terms are there because offsets tint pure black pixels, which clip in RGB
# differently either side of zero (~2 % of the corpus is black: astronaut's background).
_CAST_MODEL = np.array(
    [
        # u, v, |u|, |v|, u^2, uv, v^2, u^3, u^2 v, u v^2, v^3
        [119.42, 239.632, 2.40888, 0.682101, 149.655, -217.348, -28.0452, -535.05, -811.087, -824.011, -1859.63],
        [-266.483, -2.69117, -7.31297, 3.72478, -207.257, 47.7068, 161.311, 2264.16, 274.351, 238.909, 27.4343],
    ]
)
# The cast's factor on colourfulness (offsets are not a pure shift in L*a*b*, and clip): its
# features times 1, (gain - 1) and (gain - 1)^2 (rows), least squares over 7 x 7 offsets in
# -0.1..0.1 at gains 0.5..3 (rms residual 0.009, worst 0.037).
_CAST_CHROMA_MODEL = np.array(
    [
        [-0.25571, 0.63532, 0.091684, -0.062645, -1.3425, 0.068354, -3.842, -4.1051, -15.287, 27.169, 0.66076],
        [1.2424, -1.0738, -0.15769, 0.111, -5.2492, 3.0391, 0.80489, -15.393, 23.864, -13.724, 11.181],
        [-0.29657, 0.28833, 0.078701, -0.037644, 3.2164, -1.0578, 0.31064, 5.2324, -8.785, 1.8816, -5.4491],
    ]
)
# The offsets _CAST_MODEL was fitted on, and how far the design may go (a strong cast on
# footage that needs a lot of chroma gain, whose own cast the gain multiplies, needs more).
_FITTED_OFFSET = 0.1
_MAX_OFFSET = 0.15
# TAIL_FLOOR and TAIL_CEILING as measured, for the design: p10 when the luma curve sends the
# neutral corpus's p10 to black, 1 - p90 when it sends p90 to white (at gain 1; they grow
# with colourfulness). A percentile sent to y reads about hypot(y, floor).
_DARK_FLOOR = 0.0281
_LIGHT_FLOOR = 0.0312
# How the luma curve scales mean a*, mean b* and chroma (rows) per unit of luma that it moves
# p10, p25, p50, p75, p90 (columns): least squares over 40 random contrast/highlights/shadows
# grades of the neutral corpus (worst residual 0.025, 0.030, 0.016 of the ratio).
_TONE_COLOUR_MODEL = np.array(
    [
        [-0.099574, -1.2397, 1.9619, -1.3598, -0.11662],
        [-0.099121, -1.7545, 3.1489, -2.1701, -0.090556],
        [-0.08178, -0.17015, 0.13954, -0.3289, -0.025283],
    ]
)


# ------------------------------------------------------------------------- measurement


def _as_frame_stack(frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The frames as one C-contiguous (N, H, W, 3) uint8 array; ValueError for anything else."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"frames must be a sequence of H x W x 3 RGB frames, got an array of shape {frames.shape}")
        candidates: list[object] = list(frames)
    else:
        candidates = list(frames)
    if not candidates:
        raise ValueError("no frames to measure: the frame list is empty")
    first_shape = None
    for index, frame in enumerate(candidates):
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame {index} is a {type(frame).__name__}, not a numpy array")  # noqa: TRY004
        if frame.dtype != np.uint8:
            raise ValueError(f"frame {index} has dtype {frame.dtype}; frames must be RGB uint8")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise ValueError(f"frame {index} has shape {frame.shape}; frames must be H x W x 3 (RGB)")
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise ValueError(f"frame {index} is {frame.shape} but frame 0 is {first_shape}: frames must be one size")
    return np.ascontiguousarray(np.stack(candidates))  # type: ignore[arg-type]


def color_statistics(frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> ColorStatistics:
    """The raw statistics of `frames` (RGB uint8, H x W x 3 each, one size); ValueError if bad."""
    return _statistics(_as_frame_stack(frames))


def _statistics(stack: NDArray[np.uint8]) -> ColorStatistics:
    count, height, width, _ = stack.shape
    # One tall image, so that cv2 converts everything in one call (~0.1 s for 60 frames of
    # 320x180; numpy's percentile and hypot alone took longer).
    accumulator = ColorAccumulator()
    accumulator.push(np.ascontiguousarray(stack).reshape(count * height, width, 3))
    return accumulator.statistics()


class ColorAccumulator:
    """`color_statistics` of frames pushed one at a time (or several as one tall image), in
    bounded memory: what a long source's extraction feeds while it decodes, instead of keeping
    every sample for the end.

    Lab means and the luma histogram (so its percentiles) take every pixel pushed. The chroma
    is about the mean of all of them, so it needs the pixels again: the a*b* planes of up to
    MAX_CHROMA_PIXELS are kept (2 minutes of 320x180 samples at 2 a second); past that every
    other kept plane is dropped and only every other push after it is kept, so the planes stay
    spread evenly over the source. Up to that many pixels it equals `color_statistics` exactly.
    """

    MAX_CHROMA_PIXELS = 240 * 320 * 180

    def __init__(self) -> None:
        self._sum_a = self._sum_b = 0.0
        self._pixels = 0
        self._histogram: NDArray[np.int64] | None = None
        self._pending: NDArray[np.float32] | None = None  # counts not folded into _histogram yet
        self._pending_pixels = 0
        self._ab: list[NDArray[np.float32]] = []
        self._kept_pixels = 0
        self._stride, self._pushed = 1, 0
        self._width: int | None = None

    def push(self, rgb: NDArray[np.uint8]) -> None:
        import cv2

        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
            raise ValueError(f"frames must be H x W x 3 RGB uint8, not {rgb.dtype} {rgb.shape}")
        if self._width is not None and rgb.shape[1] != self._width:
            raise ValueError(f"frame is {rgb.shape[1]} wide but the first was {self._width}: frames must be one size")
        self._width = rgb.shape[1]
        # uint8 -> float32 scaled in one pass (as astype then *=, bit for bit).
        scaled = np.multiply(np.ascontiguousarray(rgb), np.float32(1.0 / 255.0), dtype=np.float32)
        lab = cv2.cvtColor(scaled, cv2.COLOR_RGB2Lab)  # float input: L* 0..100, a* and b* unscaled
        _, sum_a, sum_b, _ = cv2.sumElems(lab)  # accumulated in double
        pixels = rgb.shape[0] * rgb.shape[1]
        self._sum_a += sum_a
        self._sum_b += sum_b
        self._pixels += pixels
        luma = cv2.cvtColor(scaled, cv2.COLOR_RGB2GRAY)  # 0.299 R + 0.587 G + 0.114 B (BT.601), 0..1
        # cv2 adds into a float32 histogram in place; it is folded into int64 counts before any
        # bin could pass float32's exact range (2^24), so the percentiles stay exact.
        if self._pending_pixels + pixels >= 2**24:
            self._fold()
        self._pending = _luma_histogram(luma, into=self._pending)
        self._pending_pixels += pixels
        if self._pushed % self._stride == 0:
            self._ab.append(np.ascontiguousarray(lab[:, :, 1:]))
            self._kept_pixels += pixels
            while self._kept_pixels > self.MAX_CHROMA_PIXELS and len(self._ab) > 1:
                self._ab = self._ab[::2]
                self._kept_pixels = sum(ab.shape[0] * ab.shape[1] for ab in self._ab)
                self._stride *= 2
        self._pushed += 1

    def _fold(self) -> None:
        if self._pending is not None:
            counts = self._pending.astype(np.int64)
            self._histogram = counts if self._histogram is None else self._histogram + counts
            self._pending, self._pending_pixels = None, 0

    def statistics(self) -> ColorStatistics:
        import cv2

        self._fold()
        if self._histogram is None:
            raise ValueError("no frames to measure")
        mean_a, mean_b = self._sum_a / self._pixels, self._sum_b / self._pixels
        # Chroma about the source's own mean: a uniform cast moves the mean, not the spread.
        distance_sum = 0.0
        for ab in self._ab:
            centred = cv2.subtract(ab, (mean_a, mean_b, 0.0, 0.0))
            squared = cv2.transform(cv2.multiply(centred, centred), np.array([[1.0, 1.0]], dtype=np.float32))
            distance_sum += cv2.sumElems(cv2.sqrt(squared))[0]
        chroma = distance_sum / self._kept_pixels
        return ColorStatistics(float(mean_a), float(mean_b), float(chroma), _luma_percentiles(self._histogram))


_LUMA_STEPS = 255_000


def _luma_histogram(luma: NDArray[np.float32], into: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """One bin per possible 8-bit luma (255000 x luma = 299 R + 587 G + 114 B is an integer);
    added to `into` in place when given."""
    import cv2

    half_step = 0.5 / _LUMA_STEPS  # bins centred on the exact values
    ranges = [-half_step, 1.0 + half_step]
    if into is None:
        return cv2.calcHist([luma], [0], None, [_LUMA_STEPS + 1], ranges)
    return cv2.calcHist([luma], [0], None, [_LUMA_STEPS + 1], ranges, hist=into, accumulate=True)


def _luma_percentiles(histogram: NDArray[np.int64]) -> tuple[float, float, float, float, float]:
    """Luma percentiles as np.percentile (linear) gives them, from the histogram instead of a sort."""
    cumulative = np.cumsum(histogram.ravel())
    last = int(cumulative[-1]) - 1
    values = []
    for percentile in LUMA_PERCENTILES:
        position = percentile / 100.0 * last
        below = math.floor(position)
        # The k-th smallest value (0-based) is in the first bin whose running count exceeds k.
        low, high = np.searchsorted(cumulative, [below, min(below + 1, last)], side="right")
        values.append(float(low + (high - low) * (position - below)) / _LUMA_STEPS)
    return tuple(values)  # type: ignore[return-value]


def _expected_tail(reference_percentile: float, spread: float) -> float:
    """Where contrast alone (spread about the neutral median) puts a tail percentile: no
    lower than TAIL_FLOOR and no higher than TAIL_CEILING, which is as far as they go."""
    median = NEUTRAL_REFERENCE.luma_percentiles[2]
    return min(TAIL_CEILING, max(TAIL_FLOOR, median + (reference_percentile - median) * spread))


def _tail_units(outward: float, room: float) -> float:
    """Highlights (shadows: negated) from how far the tail lies outward of where contrast
    puts it, toward white (black): 100 per `room` (the neutral tail's distance to white,
    to black); inward, one per LUMA_PER_UNIT."""
    return 100.0 * outward / room if outward > 0 else outward / LUMA_PER_UNIT


def _tail_luma(units: float, room: float) -> float:
    """The outward luma that `_tail_units` reads as `units` (its inverse)."""
    return units / 100.0 * room if units > 0 else units * LUMA_PER_UNIT


def _grade_values(stats: ColorStatistics) -> NDArray[np.float64]:
    """The six fields as unrounded, unclamped floats (order: GRADE_FIELDS)."""
    ref = NEUTRAL_REFERENCE
    r10, r25, _, r75, r90 = ref.luma_percentiles
    q10, q25, _, q75, q90 = stats.luma_percentiles
    colourfulness = stats.chroma / ref.chroma
    spread = (q75 - q25) / (r75 - r25)
    return np.array(
        [
            (stats.mean_b - colourfulness * ref.mean_b) / TEMPERATURE_B_PER_UNIT,
            (stats.mean_a - colourfulness * ref.mean_a) / TINT_A_PER_UNIT,
            100.0 * (colourfulness - 1.0),
            100.0 * (spread - 1.0),
            _tail_units(q90 - _expected_tail(r90, spread), 1.0 - r90),
            -_tail_units(_expected_tail(r10, spread) - q10, r10),
        ]
    )


def _to_grade(values: NDArray[np.float64]) -> ColorGrade:
    clamped = np.clip(np.round(values), -GRADE_LIMIT, GRADE_LIMIT).astype(int)
    return ColorGrade(**{name: int(v) for name, v in zip(GRADE_FIELDS, clamped, strict=True)})


def grade_of(stats: ColorStatistics) -> ColorGrade:
    """The grade that `stats` measures as."""
    return _to_grade(_grade_values(stats))


def measure_grade(frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> ColorGrade:
    """The colour grade of sampled frames (RGB uint8 H x W x 3, one size), relative to neutral.

    ValueError for no frames or frames that are not RGB uint8.
    """
    return grade_of(color_statistics(frames))


# ------------------------------------------------------------------------- application


@dataclass(frozen=True)
class _Target:
    """The statistics a grade asks for (the median is free: no field measures it)."""

    chroma: float
    mean_a: float  # at the target colourfulness
    mean_b: float
    p10: float
    interquartile: float
    p90: float

    @classmethod
    def of(cls, values: NDArray[np.float64]) -> _Target:
        temperature, tint, saturation, contrast, highlights, shadows = (float(v) for v in values)
        ref = NEUTRAL_REFERENCE
        r10, r25, _, r75, r90 = ref.luma_percentiles
        colourfulness = max(0.0, 1.0 + saturation / 100.0)
        spread = max(0.0, 1.0 + contrast / 100.0)
        return cls(
            chroma=ref.chroma * colourfulness,
            mean_a=colourfulness * ref.mean_a + tint * TINT_A_PER_UNIT,
            mean_b=colourfulness * ref.mean_b + temperature * TEMPERATURE_B_PER_UNIT,
            p10=_expected_tail(r10, spread) - _tail_luma(-shadows, r10),
            interquartile=(r75 - r25) * spread,
            p90=_expected_tail(r90, spread) + _tail_luma(highlights, 1.0 - r90),
        )

    def wanted_means(self, chroma: float) -> NDArray[np.float64]:
        """(a*, b*) the target asks for at the colourfulness actually reached: the cast fields
        are measured against colourfulness x reference, so they follow the chroma reached."""
        ref = NEUTRAL_REFERENCE
        surplus = (chroma - self.chroma) / ref.chroma
        return np.array([self.mean_a + surplus * ref.mean_a, self.mean_b + surplus * ref.mean_b])


@dataclass(frozen=True)
class _Chain:
    """The parameters of the two lutyuv filters."""

    knots_in: tuple[float, ...]  # luma in (0..1), increasing
    knots_out: tuple[float, ...]  # luma out, non-decreasing
    chroma_gain: float  # U, V scaled about neutral
    u_offset: float  # added to U after scaling, as a fraction of (maxval - minval)
    v_offset: float

    def filters(self) -> str:
        parts = []
        # Below these, the tables would change no code value (or a stray one): leave them out.
        if any(abs(o - i) > 1e-3 for i, o in zip(self.knots_in, self.knots_out, strict=True)):
            parts.append(f"lutyuv=y='{_luma_curve_expression(self.knots_in, self.knots_out)}'")
        if abs(self.chroma_gain - 1.0) > 1e-3 or abs(self.u_offset) > 2e-4 or abs(self.v_offset) > 2e-4:
            parts.append(
                f"lutyuv=u='{_chroma_expression(self.chroma_gain, self.u_offset)}'"
                f":v='{_chroma_expression(self.chroma_gain, self.v_offset)}'"
            )
        return ",".join(parts)


def _chroma_expression(gain: float, offset: float) -> str:
    # (minval+maxval)/2 is neutral chroma whatever the bit depth (128, 512) or range. round():
    # lutyuv truncates what the expression gives, which would push everything half a code down.
    return (
        f"clip(round((minval+maxval)/2+(val-(minval+maxval)/2)*{gain:.4f}+({offset:.5f})*(maxval-minval)),"
        "minval,maxval)"
    )


def _monotone_slopes(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fritsch-Carlson (PCHIP) knot slopes: the cubic never overshoots, so the curve stays
    monotone (a natural spline, as ffmpeg's `curves` uses, can bend backwards between close knots)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    slopes = np.zeros_like(y)
    if len(x) == 2:
        return np.full_like(y, delta[0])
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] <= 0:
            continue  # a flat run or a turn: a flat tangent keeps the cubic inside
        w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
        slopes[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    # Ends: the three-point formula, kept from overshooting (as scipy's PchipInterpolator).
    for end, h0, h1, d0, d1 in ((0, h[0], h[1], delta[0], delta[1]), (-1, h[-1], h[-2], delta[-1], delta[-2])):
        slope = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(slope) != np.sign(d0):
            slope = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(slope) > abs(3 * d0):
            slope = 3 * d0
        slopes[end] = slope
    return slopes


def _cubic_segments(knots_in: Sequence[float], knots_out: Sequence[float]) -> list[tuple[float, ...]]:
    """(x0, c0, c1, c2, c3) per segment: y = c0 + c1 t + c2 t^2 + c3 t^3 with t = x - x0."""
    x = np.asarray(knots_in, dtype=np.float64)
    y = np.asarray(knots_out, dtype=np.float64)
    slopes = _monotone_slopes(x, y)
    segments = []
    for k in range(len(x) - 1):
        h = x[k + 1] - x[k]
        delta = (y[k + 1] - y[k]) / h
        c2 = (3 * delta - 2 * slopes[k] - slopes[k + 1]) / h
        c3 = (slopes[k] + slopes[k + 1] - 2 * delta) / (h * h)
        segments.append((float(x[k]), float(y[k]), float(slopes[k]), float(c2), float(c3)))
    return segments


def tone_curve(knots_in: Sequence[float], knots_out: Sequence[float], luma: NDArray[np.float64]) -> NDArray[np.float64]:
    """What the luma curve through the knots does to `luma` (0..1), in numpy: the y
    expression of the filters computes the same (up to its rounding to a code value)."""
    segments = _cubic_segments(knots_in, knots_out)
    x = np.clip(np.asarray(luma, dtype=np.float64), 0.0, 1.0)
    starts = np.array([segment[0] for segment in segments])
    index = np.clip(np.searchsorted(starts, x, side="right") - 1, 0, len(segments) - 1)
    c = np.array([segment[1:] for segment in segments])[index]
    t = x - starts[index]
    return np.clip(c[:, 0] + t * (c[:, 1] + t * (c[:, 2] + t * c[:, 3])), 0.0, 1.0)


def _luma_curve_expression(knots_in: Sequence[float], knots_out: Sequence[float]) -> str:
    segments = _cubic_segments(knots_in, knots_out)
    # ld(0): the input luma in 0..1. Horner form per segment; nested if()s pick the segment
    # (built from the last one, which is the fallback, outwards).
    expression = ""
    for index in range(len(segments) - 1, -1, -1):
        x0, c0, c1, c2, c3 = segments[index]
        t = f"(ld(0)-{x0:.6f})"
        cubic = f"{c0:.6f}+{t}*({c1:.6f}+{t}*({c2:.6f}+{t}*{c3:.6f}))"
        expression = cubic if not expression else f"if(lt(ld(0),{segments[index + 1][0]:.6f}),{cubic},{expression})"
    # round(): lutyuv truncates the expression's value.
    return f"st(0,clip((val-minval)/(maxval-minval),0,1));round(minval+(maxval-minval)*clip({expression},0,1))"


# Luma knots closer than this (in input) are merged: a cubic over a tiny span is all noise.
_MIN_KNOT_SPACING = 1e-3
# The designed percentile outputs keep this much luma apart, so that each stays a distinct
# percentile of the result.
_MIN_OUTPUT_GAP = 0.002


@dataclass(frozen=True)
class _ToneDesign:
    """Knots of the luma curve, and which percentile (index into LUMA_PERCENTILES) each
    knot carries (None for black and white), with the output each percentile should reach."""

    knots_in: tuple[float, ...]
    knots_out: tuple[float, ...]
    percentile_of_knot: tuple[int | None, ...]
    intended: tuple[float, ...]  # per knot: the luma its percentile should measure


def _tone_design(source: ColorStatistics, target: _Target) -> _ToneDesign:
    """The curve taking `source`'s luma to `target`, before any allowance for RGB clipping.

    The source's p10, p25, p50, p75 and p90 map to the target's; p25 and p75 keep their
    distances from the median, scaled to the target's interquartile range. No field measures
    the median, so it stays where the source has it unless the target's tails leave no room;
    black and white follow the tails with the same scale.
    """
    x10, x25, x50, x75, x90 = source.luma_percentiles
    source_interquartile = x75 - x25
    scale = target.interquartile / source_interquartile if source_interquartile > 1e-4 else 1.0
    below, above = (x50 - x25) * scale, (x75 - x50) * scale
    lowest_median = target.p10 + below + _MIN_OUTPUT_GAP
    highest_median = target.p90 - above - _MIN_OUTPUT_GAP
    if lowest_median <= highest_median:
        median = min(max(x50, lowest_median), highest_median)
    else:  # the target's tails are closer than its interquartile range: split the difference
        median = (lowest_median + highest_median) / 2
    black = min(max(target.p10 - x10 * scale, 0.0), max(target.p10, 0.0))
    white = max(min(target.p90 + (1.0 - x90) * scale, 1.0), min(target.p90, 1.0))
    candidates: list[tuple[float, float, int | None]] = [
        (x10, target.p10, 0),
        (x25, median - below, 1),
        (x50, median, 2),
        (x75, median + above, 3),
        (x90, target.p90, 4),
        (0.0, black, None),
        (1.0, white, None),
    ]
    # Percentiles first, so that a percentile sitting on black (x10 = 0) wins over the end.
    knots: list[tuple[float, float, int | None]] = []
    for x, y, percentile in candidates:
        if all(abs(x - kept[0]) >= _MIN_KNOT_SPACING for kept in knots):
            knots.append((x, y, percentile))
    knots.sort(key=lambda knot: knot[0])
    intended = np.maximum.accumulate(np.clip([knot[1] for knot in knots], 0.0, 1.0))
    return _ToneDesign(
        tuple(knot[0] for knot in knots),
        tuple(float(y) for y in intended),
        tuple(knot[2] for knot in knots),
        tuple(float(y) for y in intended),
    )


def _allow_for_clipping(
    source: ColorStatistics, design: _ToneDesign, source_gain: float, total_gain: float
) -> tuple[float, ...]:
    """Knot outputs that land the percentiles where `design` intends: less the luma that
    going from `source_gain` to `total_gain` moves them by (RGB clipping, _GAIN_RESPONSE),
    and past the floor and ceiling that chroma keeps dark and bright pixels from
    (_clipped_percentile). Gains are total gains (_SourceModel)."""
    before, after = _gain_response(source_gain), _gain_response(total_gain)
    shifts = after[_GAIN_LUMA_SHIFT] - before[_GAIN_LUMA_SHIFT]
    colourfulness = after[_GAIN_COLOURFULNESS]
    floor = _DARK_FLOOR * colourfulness
    ceiling = _LIGHT_FLOOR * colourfulness
    outputs = []
    for y, percentile in zip(design.knots_out, design.percentile_of_knot, strict=True):
        if percentile is not None:
            y -= shifts[percentile]
            x = source.luma_percentiles[percentile]
            if y < x:
                y = _unclipped_output(y, x, floor)
            else:
                y = 1.0 - _unclipped_output(1.0 - y, 1.0 - x, ceiling)
        outputs.append(y)
    return tuple(float(y) for y in np.maximum.accumulate(np.clip(outputs, 0.0, 1.0)))


def _clipped_percentile(output: float, source: float, floor: float) -> float:
    """What a percentile at luma `source` reads when the curve sends it down to `output`:
    hypot(output, floor) near black (crushed pixels keep their chroma), less what that
    formula over-reads at the source itself (where nothing moved), in proportion."""
    if source <= 1e-6:
        return math.hypot(output, floor)
    return math.hypot(output, floor) - (math.hypot(source, floor) - source) * output / source


def _unclipped_output(wanted: float, source: float, floor: float) -> float:
    """The output that makes `_clipped_percentile` read `wanted` (bisection; 0 if out of reach)."""
    low, high = 0.0, max(source, wanted)
    if _clipped_percentile(low, source, floor) >= wanted:
        return 0.0
    for _ in range(40):
        middle = (low + high) / 2
        if _clipped_percentile(middle, source, floor) < wanted:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _gain_response(gain: float) -> NDArray[np.float64]:
    """The _GAIN_RESPONSE row for `gain` (interpolated)."""
    return np.array([np.interp(gain, _GAIN_RESPONSE[:, 0], column) for column in _GAIN_RESPONSE.T])


def _gain_for_colourfulness(ratio: float) -> float:
    """The chroma gain that multiplies the neutral corpus's colourfulness by `ratio`."""
    return float(np.interp(max(ratio, 0.0), _GAIN_RESPONSE[:, 1], _GAIN_RESPONSE[:, 0]))


def _cast_features(offsets: NDArray[np.float64]) -> NDArray[np.float64]:
    u, v = float(offsets[0]), float(offsets[1])
    return np.array([u, v, abs(u), abs(v), u * u, u * v, v * v, u**3, u * u * v, u * v * v, v**3])


def _cast_effect(offsets: NDArray[np.float64], gain: float) -> tuple[NDArray[np.float64], float]:
    """What U/V offsets do to the neutral corpus at a chroma gain: (delta mean a*, delta mean
    b*), and the factor on its colourfulness."""
    features = _cast_features(offsets)
    shift = (_CAST_MODEL @ features) * _gain_response(gain)[_GAIN_CAST_EFFECT]
    excess = min(max(gain - 1.0, -0.5), 2.0)  # the gains the model was fitted on: 0.5..3
    factor = 1.0 + float(_CAST_CHROMA_MODEL @ features @ np.array([1.0, excess, excess * excess]))
    return shift, min(max(factor, 0.5), 1.5)


def _solve_offsets(shift: NDArray[np.float64], gain: float, start: NDArray[np.float64]) -> NDArray[np.float64]:
    """The U/V offsets that move the mean (a*, b*) by `shift` (Newton's method on _CAST_MODEL)."""
    offsets = np.clip(np.asarray(start, dtype=np.float64), -_MAX_OFFSET, _MAX_OFFSET)
    step = 1e-4
    for _ in range(8):
        effect = _cast_effect(offsets, gain)[0]
        jacobian = np.empty((2, 2))
        for column in range(2):
            nudge = np.zeros(2)
            # Nudge away from zero: the model has a kink there (the |u|, |v| terms).
            nudge[column] = step if offsets[column] >= 0 else -step
            jacobian[:, column] = (_cast_effect(offsets + nudge, gain)[0] - effect) / nudge[column]
        update = np.linalg.lstsq(jacobian, shift - effect, rcond=None)[0]  # lstsq: never singular
        offsets = np.clip(offsets + update, -_MAX_OFFSET, _MAX_OFFSET)
        if np.max(np.abs(update)) < 1e-6:
            break
    return offsets


def _colour_parameters(
    base_means: NDArray[np.float64],
    base_chroma: float,
    base_gain: float,
    goal: _Target,
    offsets: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    """(chroma gain, U/V offsets) that take frames whose mean (a*, b*) and chroma are
    `base_means` and `base_chroma` at chroma gain `base_gain` (no cast) to `goal`.

    The gain sets the colourfulness (allowing for the cast's own effect on it), the offsets
    the cast; they interact (the gain scales the content's mean colour and weakens the
    offsets, the cast changes the colourfulness the cast fields are measured against), so a
    few rounds settle them.
    """
    base = _gain_response(base_gain)
    base_colourfulness = max(base[_GAIN_COLOURFULNESS], 1e-6)
    base_ratios = np.maximum(base[_GAIN_MEAN_RATIOS], 1e-6)
    gain = base_gain
    for _ in range(4):
        factor = _cast_effect(offsets, gain)[1]
        if base_chroma > 1e-6:
            gain = _gain_for_colourfulness(base_colourfulness * goal.chroma / (base_chroma * factor))
        response = _gain_response(gain)
        # Clipped: from a near-grey base the content's share is too small to scale reliably.
        mean_scale = np.clip(response[_GAIN_MEAN_RATIOS] / base_ratios, 0.0, 4.0)
        chroma = base_chroma * response[_GAIN_COLOURFULNESS] / base_colourfulness * factor
        offsets = _solve_offsets(goal.wanted_means(chroma) - base_means * mean_scale, gain, offsets)
    return gain, offsets


def _tone_colour_factors(source: ColorStatistics, tone: _ToneDesign) -> NDArray[np.float64]:
    """How the luma curve scales mean a*, mean b* and chroma (U and V unchanged: L* moves, and
    a* and b* with it). Linear in how far the curve moves each source percentile
    (_TONE_COLOUR_MODEL, fitted on the neutral corpus)."""
    moves = np.zeros(len(LUMA_PERCENTILES))
    for x, y, percentile in zip(tone.knots_in, tone.knots_out, tone.percentile_of_knot, strict=True):
        if percentile is not None:
            moves[percentile] = y - x
    return 1.0 + _TONE_COLOUR_MODEL @ moves


def _before_tone(goal: _Target, factors: NDArray[np.float64]) -> _Target:
    """The colour goal before the luma curve scales a*, b* and chroma by `factors`."""
    factor_a, factor_b, factor_chroma = (max(float(f), 0.05) for f in factors)
    return _Target(
        chroma=goal.chroma / factor_chroma,
        mean_a=goal.mean_a / factor_a,
        mean_b=goal.mean_b / factor_b,
        p10=goal.p10,
        interquartile=goal.interquartile,
        p90=goal.p90,
    )


@dataclass(frozen=True)
class _SourceModel:
    """Footage seen as the neutral corpus at chroma gain `gain` plus U/V offsets `cast`.

    A chain with gain g and offsets o then gives the corpus at gain `gain` x g with offsets
    `cast` x g + o (the gain multiplies the footage's own cast too), and the corpus's
    responses (_GAIN_RESPONSE, _CAST_MODEL) predict what that measures. Designing in those
    totals keeps the footage's cast from being amplified by the gain unnoticed.
    """

    gain: float
    cast: NDArray[np.float64]

    @classmethod
    def of(cls, stats: ColorStatistics) -> _SourceModel:
        # The gain at which the corpus is as colourful; then the cast that makes up the rest
        # of the mean colour (1 and none for the corpus itself).
        gain = max(_gain_for_colourfulness(stats.chroma / NEUTRAL_REFERENCE.chroma), 0.05)
        content = (
            np.array([NEUTRAL_REFERENCE.mean_a, NEUTRAL_REFERENCE.mean_b]) * _gain_response(gain)[_GAIN_MEAN_RATIOS]
        )
        cast = _solve_offsets(np.array([stats.mean_a, stats.mean_b]) - content, gain, np.zeros(2))
        return cls(gain, cast)

    def chain(
        self,
        knots_in: tuple[float, ...],
        knots_out: tuple[float, ...],
        total_gain: float,
        total_offsets: NDArray[np.float64],
    ) -> _Chain:
        """The chain that takes this footage to the corpus at `total_gain` with `total_offsets`."""
        gain = total_gain / self.gain
        offsets = np.clip(total_offsets - self.cast * gain, -0.5, 0.5)
        return _Chain(knots_in, knots_out, gain, float(offsets[0]), float(offsets[1]))

    def totals(self, chain: _Chain) -> tuple[float, NDArray[np.float64]]:
        """(total gain, total offsets) of this footage through `chain`."""
        return self.gain * chain.chroma_gain, np.array([chain.u_offset, chain.v_offset]) + self.cast * chain.chroma_gain


def _initial_chain(source: ColorStatistics, goal: _Target) -> tuple[_Chain, _ToneDesign]:
    """The straight design for `source`: no measurement of the result, the neutral corpus's
    responses for everything that is not exact."""
    tone = _tone_design(source, goal)
    # The luma curve changes L*, and with it a* and b* for the same U and V: ask the chroma
    # transform for what, after the curve, is the goal.
    colour_goal = _before_tone(goal, _tone_colour_factors(source, tone))
    model = _SourceModel.of(source)
    ref = NEUTRAL_REFERENCE
    total_gain, total_offsets = _colour_parameters(
        np.array([ref.mean_a, ref.mean_b]), ref.chroma, 1.0, colour_goal, np.zeros(2)
    )
    knots_out = _allow_for_clipping(source, tone, model.gain, total_gain)
    return model.chain(tone.knots_in, knots_out, total_gain, total_offsets), tone


def grade_filters(grade: ColorGrade) -> str:
    """An ffmpeg filter chain (for -vf) that gives NEUTRAL footage `grade`; "" for a neutral grade.

    The chain is two `lutyuv` filters (luma curve; chroma gain and cast) and needs no
    measurement: it is designed against NEUTRAL_REFERENCE. Footage that is not neutral gets
    the same change, not the same result; `fit_filters` aims at the result.
    """
    if grade.is_neutral():
        return ""
    values = np.array([getattr(grade, name) for name in GRADE_FIELDS], dtype=np.float64)
    chain, _ = _initial_chain(NEUTRAL_REFERENCE, _Target.of(values))
    return chain.filters()


# --------------------------------------------------------------------------------- fit


def apply_filters(filters: str, frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> NDArray[np.uint8]:
    """`frames` (RGB uint8, one size) through an ffmpeg -vf chain: ONE ffmpeg run for all of
    them, raw rgb24 in and out. "" passes the frames through. GradeError if ffmpeg fails."""
    stack = _as_frame_stack(frames)
    if not filters:
        return stack.copy()
    count, height, width, _ = stack.shape
    command = [
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", "2", "-i", "pipe:0",
        "-vf", filters, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            dies_with_parent(command),
            input=stack.tobytes(),
            capture_output=True,
            check=False,
            timeout=_FFMPEG_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise GradeError(f"ffmpeg is not installed ({FFMPEG!r} not found)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GradeError(f"ffmpeg took over {_FFMPEG_TIMEOUT_SECONDS:.0f} s to grade {count} frames") from exc
    expected_bytes = stack.nbytes
    if result.returncode != 0 or len(result.stdout) != expected_bytes:
        # ffmpeg names the filter and option that failed first; its last lines are generic.
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        reason = (
            "; ".join(lines[:2])
            if lines
            else f"exit code {result.returncode}, {len(result.stdout)} of {expected_bytes} bytes"
        )
        raise GradeError(f"ffmpeg could not apply the grade filters: {reason}")
    return np.frombuffer(result.stdout, dtype=np.uint8).reshape(stack.shape)


@dataclass(frozen=True)
class GradeFit:
    """What `fit_grade` found."""

    filters: str  # the -vf chain; "" when the source already measures as the target
    measured: ColorGrade  # what the best measured pass read (before its correction, if any)
    passes: int  # ffmpeg runs made


def fit_filters(target: ColorGrade, source_frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> str:
    """The ffmpeg filter chain (for -vf) that moves THIS source's grade to `target`.

    `source_frames` are the source's sampled frames (RGB uint8, one size; ~2 fps of
    320x180 is plenty). Starts from the straight design for the source's measured
    statistics, then up to FIT_PASSES times applies the chain to the frames with ffmpeg,
    measures, and corrects. "" when the source already measures as `target` (within
    FIT_TOLERANCE). ValueError for bad frames; GradeError if ffmpeg fails.
    """
    return fit_grade(target, source_frames).filters


def fit_grade(target: ColorGrade, source_frames: Sequence[NDArray[np.uint8]] | NDArray[np.uint8]) -> GradeFit:
    """`fit_filters`, with what the passes measured and how many ffmpeg runs it took."""
    stack = _as_frame_stack(source_frames)
    source = _statistics(stack)
    wanted = np.array([getattr(target, name) for name in GRADE_FIELDS], dtype=np.float64)
    source_values = _grade_values(source)
    if _fit_error(source_values, wanted) <= FIT_TOLERANCE:
        return GradeFit("", grade_of(source), 0)
    # The best chain measured so far, starting with none at all (the source as it is). Best
    # by the total miss, not the worst field's: a field that cannot be reached (shadows
    # below the floor) must not hide progress on the others.
    best_miss, best_filters, best_measured = _total_miss(source_values, wanted), "", source
    goal = _Target.of(wanted)
    chain, tone = _initial_chain(source, goal)
    model = _SourceModel.of(source)
    colour_wanted = wanted[_COLOUR_FIELDS]
    previous: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None  # (x, colour fields)
    jacobian = np.eye(3)
    passes = 0
    last_was_best = False
    for passes in range(1, FIT_PASSES + 1):
        filters = chain.filters()
        measured = _statistics(apply_filters(filters, stack))
        values = _grade_values(measured)
        if _fit_error(values, wanted) <= FIT_TOLERANCE:
            return GradeFit(filters, grade_of(measured), passes)
        miss = _total_miss(values, wanted)
        last_was_best = miss < best_miss
        if last_was_best:
            best_miss, best_filters, best_measured = miss, filters, measured
        # Colour: a quasi-Newton step on x = (log gain, offsets) -> (saturation, temperature,
        # tint). The first Jacobian is the neutral corpus's (_colour_prediction); each pass
        # after corrects it along the step just taken (Broyden), so footage that responds
        # more or less strongly than the corpus stops overshooting or falling short.
        x = _colour_vector(*model.totals(chain))
        reached = values[_COLOUR_FIELDS]
        if previous is None:
            jacobian = _colour_jacobian(x, measured)
        else:
            step, change = x - previous[0], reached - previous[1]
            if float(step @ step) > 1e-12:
                jacobian = jacobian + np.outer(change - jacobian @ step, step) / float(step @ step)
        previous = (x, reached)
        # No miss where the target is +-100 and the result is already beyond it (it reads +-100).
        miss = colour_wanted - np.clip(reached, -GRADE_LIMIT, GRADE_LIMIT)
        chain = _corrected(chain, tone, measured, x + _colour_step(jacobian, miss), model)
    if last_was_best:
        # Still improving: the last correction (not measured; that would cost another pass)
        # is the best guess.
        return GradeFit(chain.filters(), grade_of(best_measured), passes)
    # A pass made things worse (footage the neutral corpus's responses describe badly):
    # the best chain measured, or none if nothing beat the source as it is.
    return GradeFit(best_filters, grade_of(best_measured), passes)


def _fit_error(values: NDArray[np.float64], wanted: NDArray[np.float64]) -> float:
    """The worst field's miss, in units. A field clamped at +-100 is met by anything beyond it."""
    reached = np.clip(values, -GRADE_LIMIT, GRADE_LIMIT)
    return float(np.max(np.abs(reached - wanted)))


def _total_miss(values: NDArray[np.float64], wanted: NDArray[np.float64]) -> float:
    """Root of the summed squared misses, in units (clamped as `_fit_error`)."""
    reached = np.clip(values, -GRADE_LIMIT, GRADE_LIMIT)
    return float(np.sqrt(np.sum((reached - wanted) ** 2)))


# The colour fields (saturation, temperature, tint) in GRADE_FIELDS, and the scale of the
# offsets in the fit's parameter vector (log gain, u, v): about as far as log gain moves.
_COLOUR_FIELDS = [2, 0, 1]
_OFFSET_SCALE = 10.0
# A fit step is kept to this (log gain, scaled offsets): a Jacobian that is far off should
# not throw a pass away.
_MAX_COLOUR_STEP = np.array([0.7, 0.5, 0.5])


def _colour_vector(total_gain: float, total_offsets: NDArray[np.float64]) -> NDArray[np.float64]:
    """The fit's colour parameters: log total gain, scaled total offsets (_SourceModel)."""
    return np.concatenate([[math.log(max(total_gain, 1e-3))], total_offsets * _OFFSET_SCALE])


def _colour_prediction(
    x: NDArray[np.float64], at: NDArray[np.float64], measured: ColorStatistics
) -> NDArray[np.float64]:
    """The colour fields the neutral corpus's responses predict at parameters `x`, from
    `measured` at parameters `at`."""
    gain_at, gain = math.exp(at[0]), math.exp(x[0])
    offsets_at, offsets = at[1:] / _OFFSET_SCALE, x[1:] / _OFFSET_SCALE
    shift_at, factor_at = _cast_effect(offsets_at, gain_at)
    shift, factor = _cast_effect(offsets, gain)
    response_at, response = _gain_response(gain_at), _gain_response(gain)
    chroma_scale = response[_GAIN_COLOURFULNESS] / max(response_at[_GAIN_COLOURFULNESS], 1e-6)
    mean_scale = response[_GAIN_MEAN_RATIOS] / np.maximum(response_at[_GAIN_MEAN_RATIOS], 1e-6)
    chroma = measured.chroma / factor_at * chroma_scale * factor
    means = (np.array([measured.mean_a, measured.mean_b]) - shift_at) * mean_scale + shift
    ref = NEUTRAL_REFERENCE
    colourfulness = chroma / ref.chroma
    return np.array(
        [
            100.0 * (colourfulness - 1.0),
            (means[1] - colourfulness * ref.mean_b) / TEMPERATURE_B_PER_UNIT,
            (means[0] - colourfulness * ref.mean_a) / TINT_A_PER_UNIT,
        ]
    )


def _colour_jacobian(x: NDArray[np.float64], measured: ColorStatistics) -> NDArray[np.float64]:
    """d(saturation, temperature, tint) / d(log gain, scaled u, scaled v), from the model
    (its slopes at the edge of the offsets it was fitted on, past that edge: a cubic's slope
    outside its data is a guess)."""
    fitted = _FITTED_OFFSET * _OFFSET_SCALE
    x = np.concatenate([x[:1], np.clip(x[1:], -fitted, fitted)])
    base = _colour_prediction(x, x, measured)
    jacobian = np.empty((3, 3))
    for column in range(3):
        nudge = np.zeros(3)
        # Away from zero for the offsets: the cast model has a kink there.
        nudge[column] = 1e-3 if column == 0 or x[column] >= 0 else -1e-3
        jacobian[:, column] = (_colour_prediction(x + nudge, x, measured) - base) / nudge[column]
    return jacobian


def _colour_step(jacobian: NDArray[np.float64], miss: NDArray[np.float64]) -> NDArray[np.float64]:
    try:
        step = np.linalg.solve(jacobian, miss)
    except np.linalg.LinAlgError:
        step = np.linalg.lstsq(jacobian, miss, rcond=None)[0]
    return np.clip(step, -_MAX_COLOUR_STEP, _MAX_COLOUR_STEP)


def _corrected(
    chain: _Chain, tone: _ToneDesign, measured: ColorStatistics, colour: NDArray[np.float64], model: _SourceModel
) -> _Chain:
    """`chain` corrected by what its result measured; `colour`: the new colour parameters
    (_colour_vector)."""
    # Luma: each percentile's knot moves by how far the percentile missed. The knots sit at
    # the source's percentiles, so knot k's output is (nearly) the result's percentile k;
    # what moves it off is RGB clipping.
    knots_out = list(chain.knots_out)
    for k, percentile in enumerate(tone.percentile_of_knot):
        if percentile is not None:
            knots_out[k] += tone.intended[k] - measured.luma_percentiles[percentile]
    knots_out = [float(y) for y in np.maximum.accumulate(np.clip(knots_out, 0.0, 1.0))]
    total_gain = min(math.exp(float(colour[0])), float(_GAIN_RESPONSE[-1, 0]))
    total_offsets = np.clip(colour[1:] / _OFFSET_SCALE, -_MAX_OFFSET, _MAX_OFFSET)
    return model.chain(chain.knots_in, tuple(knots_out), total_gain, total_offsets)
