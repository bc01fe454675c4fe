"""Shot-aware reframing: from sampled face boxes to a smooth per-frame crop path.

As in Google's AutoFlip, each shot gets one camera mode:
- ``stationary``: the subject stays within a dead band, so the crop does not move;
- ``panning``: the subject drifts at a steady pace, so the crop pans linearly;
- ``tracking``: anything else; the crop follows a smoothed subject path with
  velocity and acceleration limits;
- ``pad``: two faces that no crop of the target aspect can hold: the whole frame is
  shown over a blurred copy of itself (``two_faces="pad"``);
and a shot without faces keeps a centred crop. A cut is a cut: each shot is planned on
its own, so the crop jumps at shot boundaries and never pans across them.

A shot longer than the renderer can buffer is planned in parts: each later part
resumes from the camera state the previous part ended in (`CameraState`), holding
still if the subject still fits and moving within the same limits otherwise, so the
seam is invisible; the part's mode (crop or pad) is kept for the rest of the shot.

The crop keeps the largest size the target aspect allows (no zoom): only its position
moves. Positions are in source pixels, even (4:2:0 chroma), inside the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from reelfarm.geometry import centre_crop
from render_nodes.faces import FaceBox
from render_nodes.scan import FaceSample, SourceScan


@dataclass(frozen=True)
class ReframeConfig:
    # The subject may wander this share of the crop width before the camera moves.
    dead_band: float = 0.08
    # Camera limits, in source widths per second (and per second squared).
    max_speed: float = 0.4
    max_accel: float = 0.8
    # Gaussian smoothing of the subject path before following it.
    smoothing_seconds: float = 0.35
    # A face track must be in this share of a shot's samples to be its subject.
    min_presence: float = 0.2
    # Hold the camera still when one crop position keeps the subject's whole box inside
    # the crop for the entire shot, with this margin (share of the crop) on each side:
    # a still camera looks calmer and costs the encoder far less than a pan.
    hold_margin: float = 0.05
    # "pad": keep two faces that do not fit by showing the whole frame on a blurred fill;
    # "subject": follow the main face only.
    two_faces: str = "pad"


@dataclass(frozen=True)
class ShotPlan:
    start: float  # clip seconds
    end: float
    mode: str  # stationary | panning | tracking | pad
    subject: str  # face | two_faces | none
    fallback: str | None = None  # "centre" when the shot has no face; "held" when it lost it
    continued: bool = False  # a later part of the shot before it (see CameraState)


@dataclass(frozen=True)
class CameraState:
    """Where a part of a shot left the camera: the next part starts from here."""

    x: float
    y: float
    vx: float = 0.0  # px per frame
    vy: float = 0.0
    pad: bool = False


@dataclass
class CropPath:
    source_width: int
    source_height: int
    crop_width: int
    crop_height: int
    fps: float
    xs: np.ndarray  # per output frame, top-left corner in source pixels
    ys: np.ndarray
    shots: list[ShotPlan]
    # Per face sample: the subject box in source pixels (x, y, w, h), or None.
    subject_boxes: list[tuple[float, tuple[float, float, float, float] | None]] = field(default_factory=list)

    def frame_at(self, t: float) -> int:
        return min(len(self.xs) - 1, max(0, int(math.floor(t * self.fps + 1e-6))))

    def pad_mask(self) -> np.ndarray:
        """Per frame: shown whole over a blurred fill (a ``pad`` shot) rather than cropped."""
        mask = np.zeros(len(self.xs), dtype=bool)
        for shot in self.shots:
            if shot.mode == "pad":
                mask[self.frame_at_or_after(shot.start) : self.frame_at_or_after(shot.end)] = True
        return mask

    def frame_at_or_after(self, t: float) -> int:
        return min(len(self.xs), max(0, int(math.ceil(t * self.fps - 1e-6))))

    def head(self, frames: int) -> CropPath:
        """The first `frames` frames of this path (a part committed while planning goes on)."""
        end = frames / self.fps
        return replace(
            self,
            xs=self.xs[:frames],
            ys=self.ys[:frames],
            shots=[replace(s, end=min(s.end, end)) for s in self.shots if s.start < end - 1e-9],
            subject_boxes=[(t, box) for t, box in self.subject_boxes if t < end - 1e-9],
        )

    def end_state(self) -> CameraState:
        n = len(self.xs)
        vx = float(self.xs[-1] - self.xs[-2]) if n > 1 else 0.0
        vy = float(self.ys[-1] - self.ys[-2]) if n > 1 else 0.0
        pad = bool(self.shots) and self.shots[-1].mode == "pad"
        return CameraState(float(self.xs[-1]), float(self.ys[-1]), vx, vy, pad)


# ------------------------------------------------------------------ tracking


def _iou(a: FaceBox, b: FaceBox) -> float:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _close(a: FaceBox, b: FaceBox) -> float:
    """Association score: IoU, or nearness for fast movers that no longer overlap."""
    iou = _iou(a, b)
    if iou > 0:
        return iou
    distance = math.hypot(a.cx - b.cx, a.cy - b.cy)
    reach = 0.75 * max(a.w, a.h, b.w, b.h)
    return 0.05 * (1 - distance / reach) if distance < reach else 0.0


def track_faces(samples: list[FaceSample]) -> list[dict[int, FaceBox]]:
    """Greedy frame-to-frame association; returns per track {sample index: box}."""
    tracks: list[dict[int, FaceBox]] = []
    last: list[tuple[int, FaceBox]] = []  # (track id, its latest box) alive at the previous sample
    for i, sample in enumerate(samples):
        pairs = sorted(
            ((_close(prev, box), tid, j) for tid, prev in last for j, box in enumerate(sample.faces)),
            reverse=True,
        )
        used_tracks, used_boxes, alive = set(), set(), []
        for score, tid, j in pairs:
            if score <= 0 or tid in used_tracks or j in used_boxes:
                continue
            used_tracks.add(tid)
            used_boxes.add(j)
            tracks[tid][i] = sample.faces[j]
            alive.append((tid, sample.faces[j]))
        for j, box in enumerate(sample.faces):
            if j not in used_boxes:
                tracks.append({i: box})
                alive.append((len(tracks) - 1, box))
        # A track survives one missed sample (a blink of the detector).
        alive_ids = {tid for tid, _ in alive}
        alive += [(tid, box) for tid, box in last if tid not in alive_ids and i - max(tracks[tid]) <= 1]
        last = alive
    return tracks


def _track_score(track: dict[int, FaceBox], sample_count: int) -> float:
    presence = len(track) / max(1, sample_count)
    size = float(np.median([b.area for b in track.values()]))
    centrality = 1 - min(1.0, 2 * abs(float(np.median([b.cx for b in track.values()])) - 0.5))
    return presence * math.sqrt(size) * (0.5 + 0.5 * centrality)


# ------------------------------------------------------------------ camera paths


def _gaussian_smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames < 0.5 or len(values) < 3:
        return values
    radius = int(3 * sigma_frames)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _follow(
    target: np.ndarray,
    dead_band: float,
    max_speed: float,
    max_accel: float,
    start: tuple[float, float] | None = None,
) -> np.ndarray:
    """A camera that moves only when the target leaves the dead band, within speed/accel limits.

    `start` (position, velocity per frame) continues a camera from a previous part.
    """
    pos = np.empty_like(target)
    if start is None:
        pos[0], velocity = target[0], 0.0
    else:
        velocity = max(-max_speed, min(max_speed, start[1]))
        pos[0] = start[0] + velocity
    for k in range(1, len(target)):
        error = target[k] - pos[k - 1]
        # Aim to close the error beyond the dead band within ~4 frames, braking in time to stop.
        excess = math.copysign(max(0.0, abs(error) - dead_band), error)
        braking = math.sqrt(2 * max_accel * abs(excess))
        wanted = math.copysign(min(max_speed, abs(excess) / 4, braking), excess)
        velocity += max(-max_accel, min(max_accel, wanted - velocity))
        pos[k] = pos[k - 1] + velocity
    return pos


def _camera(
    target: np.ndarray,
    low: float,
    high: float,
    crop_size: int,
    fps: float,
    source_size: int,
    config: ReframeConfig,
    extent: tuple[float, float] | None = None,
    resume: tuple[float, float] | None = None,
) -> tuple[np.ndarray, str]:
    """Crop offsets (top-left) along one axis for one shot, and the camera mode used.

    `extent` is the span (first edge, last edge) the subject's box covers over the shot.
    `resume` (position, velocity per frame) continues the camera of a previous part.
    """
    if high <= low or len(target) == 0:
        return np.full(len(target), low), "stationary"
    band = config.dead_band * crop_size
    margin = config.hold_margin * crop_size
    fits = extent is not None and extent[1] - extent[0] <= crop_size - 2 * margin
    held = np.clip((extent[0] + extent[1]) / 2 - crop_size / 2, low, high) if fits else None
    speed_limit = config.max_speed * source_size / fps
    accel_limit = config.max_accel * source_size / fps**2
    if resume is not None:
        position = resume[0]
        if extent is not None and extent[0] >= position + margin and extent[1] <= position + crop_size - margin:
            return np.full(len(target), position), "stationary"
        if extent is None and float(np.abs(target - position).max()) <= band / 2:
            return np.full(len(target), position), "stationary"
        goal = np.full(len(target), held) if held is not None else _gaussian_smooth(target, config.smoothing_seconds * fps)
        dead = 1.0 if held is not None else band / 2
        path = _follow(goal, dead_band=dead, max_speed=speed_limit, max_accel=accel_limit, start=resume)
        return np.clip(path, low, high), "tracking"
    if held is not None:
        return np.full(len(target), held), "stationary"
    if float(target.max() - target.min()) <= band:
        return np.full(len(target), np.clip(float(np.median(target)), low, high)), "stationary"
    frames = np.arange(len(target), dtype=float)
    slope, intercept = np.polyfit(frames, target, 1)
    line = slope * frames + intercept
    if float(np.abs(target - line).max()) <= band / 2 and abs(slope) <= speed_limit:
        return np.clip(line, low, high), "panning"
    smooth = _gaussian_smooth(target, config.smoothing_seconds * fps)
    path = _follow(
        smooth,
        dead_band=band / 2,
        max_speed=speed_limit,
        max_accel=accel_limit,
    )
    return np.clip(path, low, high), "tracking"


def _box_px(box: FaceBox, width: int, height: int) -> tuple[float, float, float, float]:
    return box.x * width, box.y * height, box.w * width, box.h * height


def plan_crop_path(
    scan: SourceScan,
    *,
    source_width: int,
    source_height: int,
    aspect_ratio: str,
    fps: float,
    duration: float,
    config: ReframeConfig | None = None,
    resume: CameraState | None = None,
) -> CropPath:
    """Plan the crop for every frame of `duration` seconds at `fps`, shot by shot.

    With `resume`, the first shot continues a shot whose earlier part ended in that state.
    """
    config = config or ReframeConfig()
    crop_w, crop_h, centre_x, centre_y = centre_crop(source_width, source_height, aspect_ratio)
    frame_count = max(1, int(round(duration * fps)))
    xs = np.full(frame_count, float(centre_x))
    ys = np.full(frame_count, float(centre_y))
    bounds = [0.0] + [c for c in scan.cuts if 0 < c < duration] + [duration]
    shots: list[ShotPlan] = []
    subject_boxes: list[tuple[float, tuple[float, float, float, float] | None]] = []

    for shot_start, shot_end in zip(bounds, bounds[1:]):
        first = int(math.ceil(shot_start * fps - 1e-6))
        last = min(frame_count, int(math.ceil(shot_end * fps - 1e-6)))
        if last <= first:
            continue
        samples = [s for s in scan.samples if shot_start <= s.time < shot_end]
        carried = resume if first == 0 else None
        if carried is not None and carried.pad:
            shots.append(ShotPlan(shot_start, shot_end, "pad", "two_faces", continued=True))
            subject_boxes += [(s.time, None) for s in samples]
            continue
        continued = carried is not None
        tracks = track_faces(samples)
        ranked = sorted(tracks, key=lambda t: _track_score(t, len(samples)), reverse=True)
        subject = ranked[0] if ranked and len(ranked[0]) >= config.min_presence * len(samples) else None
        if subject is None:
            if carried is not None:  # lost the face mid-shot: stay where the camera is
                xs[first:last], ys[first:last] = carried.x, carried.y
                shots.append(ShotPlan(shot_start, shot_end, "stationary", "none", fallback="held", continued=True))
            else:
                shots.append(ShotPlan(shot_start, shot_end, "stationary", "none", fallback="centre"))
            subject_boxes += [(s.time, None) for s in samples]
            continue

        # The subject's centre at every sample where it was seen, interpolated to frames.
        seen = sorted(subject)
        sample_times = np.array([samples[i].time for i in seen])
        boxes = [_box_px(subject[i], source_width, source_height) for i in seen]
        centre_xs = np.array([x + w / 2 for x, _, w, _ in boxes])
        centre_ys = np.array([y + h / 2 for _, y, _, h in boxes])
        subject_label = "face"

        second = ranked[1] if len(ranked) > 1 else None
        # A second face counts only when it is on screen *with* the subject most of the shot
        # (two faces one after the other, e.g. across a missed cut, are not a pair).
        together = sorted(set(subject) & set(second)) if second is not None else []
        if len(together) >= 0.5 * len(samples) and _track_score(second, len(samples)) >= 0.5 * _track_score(
            subject, len(samples)
        ):
            both = [_box_px(t[i], source_width, source_height) for t in (subject, second) for i in together]
            left = min(x for x, _, _, _ in both)
            right = max(x + w for x, _, w, _ in both)
            if right - left <= crop_w * 0.95:  # both fit: frame the pair
                mid = (left + right) / 2
                centre_xs = np.full_like(centre_xs, mid)
                subject_label = "two_faces"
            elif config.two_faces == "pad" and not continued:  # a shot never switches to pad midway
                shots.append(ShotPlan(shot_start, shot_end, "pad", "two_faces"))
                subject_boxes += [(s.time, None) for s in samples]
                continue

        frame_times = np.arange(first, last) / fps
        target_x = np.interp(frame_times, sample_times, centre_xs) - crop_w / 2
        target_y = np.interp(frame_times, sample_times, centre_ys) - crop_h / 2
        extent_x = extent_y = None
        if subject_label == "face":
            extent_x = (min(x for x, _, _, _ in boxes), max(x + w for x, _, w, _ in boxes))
            extent_y = (min(y for _, y, _, _ in boxes), max(y + h for _, y, _, h in boxes))
        path_x, mode_x = _camera(
            target_x, 0, source_width - crop_w, crop_w, fps, source_width, config, extent_x,
            resume=(carried.x, carried.vx) if carried else None,
        )  # fmt: skip
        path_y, mode_y = _camera(
            target_y, 0, source_height - crop_h, crop_h, fps, source_height, config, extent_y,
            resume=(carried.y, carried.vy) if carried else None,
        )  # fmt: skip
        xs[first:last], ys[first:last] = path_x, path_y
        modes = {mode_x, mode_y}
        mode = "tracking" if "tracking" in modes else "panning" if "panning" in modes else "stationary"
        shots.append(ShotPlan(shot_start, shot_end, mode, subject_label, continued=continued))
        boxes_by_sample = {i: b for i, b in zip(seen, boxes)}
        subject_boxes += [(s.time, boxes_by_sample.get(i)) for i, s in enumerate(samples)]

    even = lambda v: (np.round(v / 2) * 2).astype(int)  # noqa: E731
    return CropPath(
        source_width=source_width,
        source_height=source_height,
        crop_width=crop_w,
        crop_height=crop_h,
        fps=fps,
        xs=np.clip(even(xs), 0, source_width - crop_w),
        ys=np.clip(even(ys), 0, source_height - crop_h),
        shots=shots or [ShotPlan(0.0, duration, "stationary", "none", fallback="centre")],
        subject_boxes=subject_boxes,
    )


# ------------------------------------------------------------------ quality metrics


def face_coverage(path: CropPath) -> float | None:
    """Share of sampled frames with a subject whose subject box lies inside the crop (None: no faces)."""
    inside = total = 0
    for t, box in path.subject_boxes:
        if box is None:
            continue
        total += 1
        k = path.frame_at(t)
        x, y, w, h = box
        cx, cy = path.xs[k], path.ys[k]
        slack = 2  # even-pixel rounding of the crop
        if (x >= cx - slack and y >= cy - slack and x + w <= cx + path.crop_width + slack
                and y + h <= cy + path.crop_height + slack):
            inside += 1
    return round(inside / total, 4) if total else None


def crop_jitter(path: CropPath) -> float:
    """Mean |acceleration| of the crop centre in px/frame^2, within shots (cuts are meant to jump)."""
    accelerations = []
    for shot in path.shots:
        first = int(math.ceil(shot.start * path.fps - 1e-6))
        last = min(len(path.xs), int(math.ceil(shot.end * path.fps - 1e-6)))
        if last - first >= 3:
            ax = np.diff(path.xs[first:last].astype(float), 2)
            ay = np.diff(path.ys[first:last].astype(float), 2)
            accelerations.append(np.hypot(ax, ay))
    if not accelerations:
        return 0.0
    return round(float(np.concatenate(accelerations).mean()), 4)


def poster_score(t: float, box: tuple[float, float, float, float] | None, duration: float) -> float:
    """How good a poster the frame at clip time `t` makes: a big subject, away from the ends."""
    if box is None or not (0 <= t < duration):
        return -1.0
    return box[2] * box[3] * (1.0 - abs(t / max(duration, 1e-6) - 0.5))


# ------------------------------------------------------------------ parts


def segment_scan(scan: SourceScan, t0: float, t1: float) -> SourceScan:
    """The part of a (possibly still growing) scan in clip seconds [t0, t1), re-timed to t0."""
    return SourceScan(
        start=scan.start + t0,
        end=scan.start + t1,
        samples=[FaceSample(s.time - t0, s.faces) for s in list(scan.samples) if t0 <= s.time < t1],
        cuts=[c - t0 for c in list(scan.cuts) if t0 < c < t1],
        detector=scan.detector,
    )


def _merge_parts(shots: list[ShotPlan]) -> list[ShotPlan]:
    """One entry per shot: parts of a shot planned separately are reported together."""
    merged: list[ShotPlan] = []
    for shot in shots:
        if shot.continued and merged:
            before = merged[-1]
            mode = before.mode if before.mode == shot.mode else "tracking"
            subject = before.subject if before.subject != "none" else shot.subject
            merged[-1] = replace(before, end=shot.end, mode=mode, subject=subject)
        else:
            merged.append(replace(shot, continued=False))
    return merged


def join_paths(parts: list[tuple[float, CropPath]]) -> CropPath:
    """One crop path from consecutive part paths, each given with its clip start time."""
    first = parts[0][1]
    return CropPath(
        source_width=first.source_width,
        source_height=first.source_height,
        crop_width=first.crop_width,
        crop_height=first.crop_height,
        fps=first.fps,
        xs=np.concatenate([p.xs for _, p in parts]),
        ys=np.concatenate([p.ys for _, p in parts]),
        shots=_merge_parts(
            [replace(shot, start=shot.start + t0, end=shot.end + t0) for t0, p in parts for shot in p.shots]
        ),
        subject_boxes=[(t + t0, box) for t0, p in parts for t, box in p.subject_boxes],
    )
