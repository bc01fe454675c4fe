"""A PacingPlan (analysis/style/pacing.py) made into frames: punch-ins, push-ins, dissolves, fades.

Works on the cropped yuv420p planes the streaming render sends to the encoder, so the punch-in
costs one resize of the crop (not of the source frame) and the output size never changes. A
framing's centre is the subject's (the face the crop follows) where one was seen near the
segment's start, else the crop's own centre; it stays put for the segment, as an editor's
punch-in does, and is looked for again at the source's own cuts.
"""

from __future__ import annotations

from bisect import bisect_left

import cv2
import numpy as np

from analysis.style.pacing import PacingPlan

# Limited-range black in yuv420p.
_BLACK = (16, 128, 128)
# A subject box this far (s) from a segment's start still places its punch-in.
_SUBJECT_REACH_SECONDS = 1.0


class PunchIn:
    """Frames of a clip, composed as `plan` says; feed subjects and source cuts as they are known."""

    def __init__(self, plan: PacingPlan, crop_width: int, crop_height: int) -> None:
        self.plan = plan
        self.width, self.height = crop_width, crop_height
        self._subjects: list[tuple[float, float, float]] = []  # (t, centre x, centre y) in the crop
        self._source_cuts: list[float] = []
        self._centres: dict[tuple[int, int], tuple[float, float]] = {}  # (segment, source shot) -> centre

    def add_subject(self, t: float, box: tuple[float, float, float, float], crop_x: int, crop_y: int) -> None:
        """A subject seen at clip time `t` (box in source pixels; the crop's origin then)."""
        x, y, w, h = box
        self._subjects.append((t, x + w / 2 - crop_x, y + h / 2 - crop_y))

    def add_source_cut(self, t: float) -> None:
        self._source_cuts.append(t)

    def compose(self, planes: list[np.ndarray], t: float) -> list[np.ndarray]:
        framing = self.plan.framing_at(t)
        out = self._framed(planes, framing.segment, framing.zoom, t)
        if framing.blend > 0:
            other = self._framed(planes, framing.blend_segment, framing.blend_zoom, t)
            out = [cv2.addWeighted(a, 1 - framing.blend, b, framing.blend, 0) for a, b in zip(out, other)]
        if framing.light < 1:
            out = [cv2.addWeighted(p, framing.light, np.full_like(p, level), 1 - framing.light, 0)
                   for p, level in zip(out, _BLACK)]  # fmt: skip
        return out

    def _framed(self, planes: list[np.ndarray], segment: int, zoom: float, t: float) -> list[np.ndarray]:
        if zoom <= 1.0 + 1e-6:
            return planes
        w, h = self.width, self.height
        sub_w, sub_h = w / zoom, h / zoom
        cx, cy = self._centre(segment, t)
        x0 = min(max(0.0, cx - sub_w / 2), w - sub_w)
        y0 = min(max(0.0, cy - sub_h / 2), h - sub_h)
        out = []
        for i, plane in enumerate(planes):
            div = 1 if i == 0 else 2
            pw, ph = w // div, h // div
            # An affine warp samples the sub-window at sub-pixel precision: a push-in glides
            # instead of stepping a whole pixel at a time.
            scale = 1 / zoom
            matrix = np.float32([[scale, 0, x0 / div], [0, scale, y0 / div]])
            out.append(cv2.warpAffine(plane[:ph, :pw], matrix, (pw, ph), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REPLICATE))  # fmt: skip
        return out

    def _centre(self, segment: int, t: float) -> tuple[float, float]:
        shot = bisect_left(self._source_cuts, t + 1e-9)
        key = (segment, shot)
        if key not in self._centres:
            # From when this framing began (the segment's start, or the source's cut inside it).
            began = max(self.plan.segments[segment].start, self._source_cuts[shot - 1] if shot else 0.0)
            near = [(abs(st - began), sx, sy) for st, sx, sy in self._subjects
                    if abs(st - began) <= _SUBJECT_REACH_SECONDS and (not shot or st >= self._source_cuts[shot - 1])]
            self._centres[key] = min(near)[1:] if near else (self.width / 2, self.height / 2)
        return self._centres[key]

