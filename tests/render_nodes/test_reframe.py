"""Reframing against ground truth: a real face photo moved along known paths, cut into shots.

Shots of the test video (640x360, 25 fps):
  0.00-2.00  one face, still                       -> stationary camera
  2.00-5.00  one face moving left to right         -> the camera follows
  5.00-6.52  two faces too far apart for one crop  -> pad (whole frame on a blurred fill)
  6.52-8.00  no face                               -> centre crop, said in the manifest
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.media import FaceShot, make_face_video
from reelfarm.geometry import STANDARD_SIZES, output_size
from render_nodes.faces import FaceBox, make_detector
from render_nodes.pipeline import RenderRequest, render_clip
from render_nodes.reframe import (
    CropPath,
    ReframeConfig,
    _camera,
    crop_jitter,
    face_coverage,
    plan_crop_path,
)
from render_nodes.scan import SourceScan, scan_source

WIDTH, HEIGHT, FPS = 640, 360, 25
CUTS = (2.0, 5.0, 6.52)  # 6.5 s is between frames: the shot starts on frame 163
DURATION = 8.0


def moving(t: float) -> tuple[float, float]:
    return 120 + 400 * t / 3, 175 + 15 * math.sin(2 * t)


SHOTS = [
    FaceShot(2.0, (40, 60, 90), (lambda t: (150, 180),)),
    FaceShot(3.0, (120, 60, 40), (moving,)),
    FaceShot(1.5, (30, 110, 60), (lambda t: (110, 180), lambda t: (530, 180)), face_height=90),
    FaceShot(1.5, (90, 90, 110), ()),
]


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("faces") / "faces.mp4"
    truth = make_face_video(path, SHOTS, size=(WIDTH, HEIGHT), rate=FPS)
    return path, truth


@pytest.fixture(scope="module")
def detector():
    return make_detector("blazeface")


@pytest.fixture(scope="module")
def scan(face_video, detector) -> SourceScan:
    return scan_source(face_video[0], start=0.0, end=DURATION, detector=detector)


@pytest.fixture(scope="module")
def path(scan) -> CropPath:
    return plan_crop_path(scan, source_width=WIDTH, source_height=HEIGHT, aspect_ratio="9:16", fps=FPS,
                          duration=DURATION)


def frames_of(start: float, end: float) -> range:
    return range(math.ceil(start * FPS - 1e-6), math.ceil(end * FPS - 1e-6))


def test_cuts_are_found_on_the_exact_frame(scan, face_video, detector):
    assert len(scan.cuts) == len(CUTS)
    for found, expected in zip(scan.cuts, CUTS):
        assert abs(found - expected) < 0.5 / FPS, (scan.cuts, CUTS)
    # The default fast decode skipped B-frames away from the cuts...
    assert scan.decoded_frames < int(DURATION * FPS)
    # ...and a full decode finds the very same cuts (the cut at 2.0 s is on a B-frame).
    full = scan_source(face_video[0], start=0.0, end=DURATION, detector=detector, fast_decode=False)
    assert full.decoded_frames == int(DURATION * FPS)
    assert full.cuts == scan.cuts


def test_each_shot_gets_the_camera_it_needs(path):
    modes = [(s.mode, s.subject, s.fallback) for s in path.shots]
    assert modes[0] == ("stationary", "face", None)
    assert modes[1][0] in ("tracking", "panning") and modes[1][1] == "face"
    assert modes[2] == ("pad", "two_faces", None)
    assert modes[3] == ("stationary", "none", "centre")


def test_static_shot_has_no_crop_motion(path):
    xs = path.xs[list(frames_of(0.0, CUTS[0]))]
    ys = path.ys[list(frames_of(0.0, CUTS[0]))]
    assert len(set(xs.tolist())) == 1 and len(set(ys.tolist())) == 1


def test_crop_jumps_on_the_cut_frame_and_never_pans_across_it(path):
    cut = round(CUTS[0] * FPS)
    before, after = path.xs[cut - 1], path.xs[cut]
    # The subject of the next shot starts elsewhere: the crop moves in one frame...
    assert abs(int(after) - int(before)) >= 2
    # ...and not in the frames leading up to it (a pan would creep there).
    assert path.xs[cut - 3] == path.xs[cut - 2] == path.xs[cut - 1]


def test_subject_stays_inside_the_crop_in_face_shots(path, face_video):
    _, truth = face_video
    inside = total = 0
    for k in list(frames_of(0.0, CUTS[0])) + list(frames_of(CUTS[0], CUTS[1])):
        (x, y, w, h), = truth[k]
        total += 1
        cx = path.xs[k]
        inside += cx - 2 <= x and x + w <= cx + path.crop_width + 2
    assert inside / total >= 0.98, f"ground-truth coverage {inside}/{total}"
    assert face_coverage(path) >= 0.98


def test_crop_jitter_stays_below_the_camera_limits(path):
    # The follower changes velocity by at most max_accel * width / fps^2 a frame
    # (0.8 * 640 / 625 = 0.82 px/frame^2); rounding positions to even pixels adds
    # under 1 px/frame^2 on average. Anything above is shake the limits failed to stop.
    limit = ReframeConfig().max_accel * WIDTH / FPS**2
    assert crop_jitter(path) <= limit + 1.0


def test_two_faces_follow_the_main_subject_when_told_to(scan):
    path = plan_crop_path(scan, source_width=WIDTH, source_height=HEIGHT, aspect_ratio="9:16", fps=FPS,
                          duration=DURATION, config=ReframeConfig(two_faces="subject"))
    assert path.shots[2].mode != "pad" and path.shots[2].subject == "face"
    assert not path.pad_mask().any()


def test_camera_modes_on_synthetic_paths():
    config = ReframeConfig()
    crop, width = 200, 640
    wobble = 100 + 5 * np.sin(np.arange(50))  # within the dead band (8% of 200 = 16 px)
    held, mode = _camera(wobble, 0, width - crop, crop, FPS, width, config)
    assert mode == "stationary" and np.ptp(held) == 0

    line = np.linspace(50, 250, 75)
    panned, mode = _camera(line, 0, width - crop, crop, FPS, width, config)
    assert mode == "panning" and np.allclose(np.diff(panned, 2), 0, atol=1e-6)

    jump = np.r_[np.full(25, 50.0), np.full(50, 400.0)]  # a teleporting subject
    followed, mode = _camera(jump, 0, width - crop, crop, FPS, width, config)
    speed_limit = config.max_speed * width / FPS
    assert mode == "tracking"
    assert np.abs(np.diff(followed)).max() <= speed_limit + 1e-6
    assert abs(followed[-1] - 400) <= config.dead_band * crop  # it gets there


def test_no_faces_anywhere_is_a_centred_crop():
    scan = SourceScan(start=0, end=2, cuts=[], samples=[])
    path = plan_crop_path(scan, source_width=WIDTH, source_height=HEIGHT, aspect_ratio="9:16", fps=FPS,
                          duration=2.0)
    assert path.shots[0].fallback == "centre"
    assert set(path.xs.tolist()) == {(WIDTH - path.crop_width) // 4 * 2}
    assert face_coverage(path) is None


def test_tracker_keeps_one_identity_for_a_moving_face():
    from render_nodes.reframe import track_faces
    from render_nodes.scan import FaceSample

    samples = [FaceSample(i / 5, (FaceBox(0.1 + 0.02 * i, 0.3, 0.1, 0.2, 0.9),)) for i in range(20)]
    samples[7] = FaceSample(7 / 5, ())  # one missed detection
    tracks = track_faces(samples)
    assert len(tracks) == 1 and len(tracks[0]) == 19


# ------------------------------------------------------------------ full renders


def _frame_rgb(video: Path, at: float | None, size: tuple[int, int], filters: str | None = None) -> np.ndarray:
    """One frame as RGB (after `filters`, if any); `at=None` for a still image (image2
    returns nothing after -ss 0)."""
    seek = [] if at is None else ["-ss", f"{at}"]
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", *seek, "-i", str(video), "-frames:v", "1", *(["-vf", filters] if filters else []),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(size[1], size[0], 3)


def _render(face_video, detector, tmp_path, aspect="9:16", height=320, **extra):
    width, height = output_size(aspect, height)
    req = RenderRequest(
        source_path=face_video[0], clip_index=1, start_seconds=0.0, end_seconds=DURATION, aspect_ratio=aspect,
        output_width=width, output_height=height, encoder="libx264", x264_preset="ultrafast",
        work_dir=tmp_path / aspect.replace(":", "x"), detector=detector, **extra,
    )  # fmt: skip
    return render_clip(req), (width, height)


@pytest.mark.parametrize("aspect", list(STANDARD_SIZES))
def test_reframed_render_has_the_exact_size_and_reports_quality(face_video, detector, tmp_path, aspect):
    result, (width, height) = _render(face_video, detector, tmp_path, aspect)
    info = result.info
    assert (info["width"], info["height"]) == (width, height)
    assert info["duration_seconds"] == pytest.approx(DURATION, abs=0.1)
    assert info["detector"] == detector.name and info["encoder"] == "libx264"
    assert [s["start"] for s in info["shots"]] == pytest.approx([0.0, *CUTS], abs=0.03)
    if aspect != "16:9":  # a 16:9 crop of a 16:9 source is the whole frame: nothing to move
        assert info["face_coverage"] >= 0.98
    assert info["shots"][3]["fallback"] == "centre"
    assert info["crop_jitter"] >= 0
    names = {f.name for f in result.files}
    assert names == {"clip_01.mp4", "clip_01.jpg"}
    # The poster shows the subject: it is taken from a shot with a face.
    assert info["poster_seconds"] < CUTS[1]


def test_pad_shot_shows_the_whole_frame_on_a_blurred_fill(face_video, detector, tmp_path):
    result, size = _render(face_video, detector, tmp_path)
    clip = next(f.path for f in result.files if f.name == "clip_01.mp4")
    frame = _frame_rgb(clip, 5.7, size).astype(int)
    # The letterboxed full frame holds both faces' photo patches: bright skin tones
    # on both the left and right of the output, which no 9:16 crop of the source could show.
    w = size[0]
    band = frame[size[1] // 2 - 20 : size[1] // 2 + 20]
    left, right = band[:, : w // 3], band[:, 2 * w // 3 :]
    assert left.mean() > 90 and right.mean() > 90


def test_captions_are_burned_in_only_when_a_preset_is_on(face_video, detector, tmp_path):
    from reelfarm.transcript import Word
    from render_nodes.captions import caption_area

    words = [Word(text, 0.5 + 0.4 * i, 0.85 + 0.4 * i) for i, text in enumerate("this is a caption test".split())]
    on, size = _render(face_video, None, tmp_path / "on", caption_preset="karaoke", words=words)
    off, _ = _render(face_video, None, tmp_path / "off", caption_preset="none", words=words)
    assert on.info["captions"] == "karaoke" and off.info["captions"] == "none"
    assert "clip_01.ass" in {f.name for f in on.files}
    x, y, w, h = caption_area(*size)
    frame_on = _frame_rgb(next(f.path for f in on.files if f.name == "clip_01.mp4"), 1.2, size).astype(int)
    frame_off = _frame_rgb(next(f.path for f in off.files if f.name == "clip_01.mp4"), 1.2, size).astype(int)
    area_on = frame_on[y : y + h, x : x + w]
    area_off = frame_off[y : y + h, x : x + w]
    differing = (np.abs(area_on - area_off).sum(axis=2) > 120).mean()
    assert differing > 0.01, "no caption pixels in the caption area"
    outside_on = frame_on.copy()
    outside_on[y : y + h, x : x + w] = frame_off[y : y + h, x : x + w]
    assert (np.abs(outside_on - frame_off).sum(axis=2) > 120).mean() < 0.002


def test_faces_seen_one_after_the_other_are_not_a_pair():
    from render_nodes.scan import FaceSample

    # One face on the left for 2 s, then another on the right (say, a cut the detector
    # missed): each is present half the shot, but never together, so no pad.
    left, right = FaceBox(0.1, 0.3, 0.08, 0.15, 0.9), FaceBox(0.8, 0.3, 0.08, 0.15, 0.9)
    samples = [FaceSample(i / 5, (left if i < 10 else right,)) for i in range(20)]
    scan = SourceScan(start=0, end=4, cuts=[], samples=samples)
    path = plan_crop_path(scan, source_width=WIDTH, source_height=HEIGHT, aspect_ratio="9:16", fps=FPS,
                          duration=4.0)
    assert path.shots[0].mode != "pad" and not path.pad_mask().any()
    # Both really together for the whole shot, too far apart for one crop: pad.
    samples = [FaceSample(i / 5, (left, right)) for i in range(20)]
    path = plan_crop_path(SourceScan(start=0, end=4, cuts=[], samples=samples), source_width=WIDTH,
                          source_height=HEIGHT, aspect_ratio="9:16", fps=FPS, duration=4.0)
    assert path.shots[0].mode == "pad"


def test_poster_is_the_planned_frame_of_the_clip(face_video, detector, tmp_path):
    result, size = _render(face_video, detector, tmp_path)
    clip = next(f.path for f in result.files if f.name == "clip_01.mp4")
    poster = next(f.path for f in result.files if f.name == "clip_01.jpg")
    at = result.info["poster_seconds"]
    expected = _frame_rgb(clip, at, size).astype(int)
    got = _frame_rgb(poster, None, size).astype(int)
    neighbour = _frame_rgb(clip, at + 0.6, size).astype(int)
    # JPEG vs H.264 of the same frame differ by a few levels; another moment differs more.
    assert np.abs(got - expected).mean() < 6
    assert np.abs(got - expected).mean() < np.abs(got - neighbour).mean()


def test_render_reports_progress_in_order_and_leaves_only_artifacts(face_video, detector, tmp_path):
    width, height = output_size("9:16", 320)
    seen: list[tuple[str, float]] = []
    req = RenderRequest(
        source_path=face_video[0], clip_index=2, start_seconds=0.0, end_seconds=DURATION, aspect_ratio="9:16",
        output_width=width, output_height=height, encoder="libx264", x264_preset="ultrafast",
        work_dir=tmp_path, detector=detector,
    )  # fmt: skip
    result = render_clip(req, on_progress=lambda stage, pct: seen.append((stage, pct)))
    # At least one part per shot (more when the encoder ran dry and frames were planned
    # early), reported as one entry per shot.
    assert result.info["planned_parts"] >= len(CUTS) + 1
    assert len(result.info["shots"]) == len(CUTS) + 1
    percents = [pct for _, pct in seen]
    assert percents == sorted(percents) and percents[-1] >= 97
    assert [stage for stage, _ in seen][:2] == ["probing", "rendering"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_02.jpg", "clip_02.mp4"]


def test_shots_longer_than_the_frame_buffer_are_planned_in_seamless_parts(face_video, detector, tmp_path):
    whole, _ = _render(face_video, detector, tmp_path / "whole")
    # 1 MiB holds a few frames: the buffer's floor (1 s of frames) decides, so shots are
    # planned in parts of ~0.5 s, each resuming the camera where the last one left it.
    parted, _ = _render(face_video, detector, tmp_path / "parted", frame_buffer_mb=1)
    assert parted.info["planned_parts"] > whole.info["planned_parts"] + 2
    assert len(parted.info["shots"]) == len(whole.info["shots"]) == len(CUTS) + 1
    modes = [s["camera"] for s in parted.info["shots"]]
    assert modes[0] == "stationary" and modes[2] == "pad" and modes[3] == "stationary"
    path = parted.crop_path
    assert path is not None and len(path.xs) == int(DURATION * FPS)
    # The still face: no motion at all, seams included.
    assert len(set(path.xs[list(frames_of(0.0, CUTS[0]))].tolist())) == 1
    # The moving face: inside the crop (ground truth) and no jump at any seam.
    _, truth = face_video
    moving_frames = list(frames_of(CUTS[0], CUTS[1]))
    inside = sum(path.xs[k] - 2 <= truth[k][0][0] and truth[k][0][0] + truth[k][0][2] <= path.xs[k] + path.crop_width + 2
                 for k in moving_frames)  # fmt: skip
    assert inside / len(moving_frames) >= 0.98
    speed_limit = ReframeConfig().max_speed * WIDTH / FPS
    steps = np.abs(np.diff(path.xs[moving_frames].astype(float)))
    assert steps.max() <= speed_limit + 2, steps.max()
    # Still a cut where the video cuts.
    cut = round(CUTS[0] * FPS)
    assert abs(int(path.xs[cut]) - int(path.xs[cut - 1])) >= 2


def test_render_output_matches_its_crop_path(face_video, detector, tmp_path):
    """The frames encoded are the planned crops: compare an output frame with the source's crop."""
    result, size = _render(face_video, detector, tmp_path)
    path = result.crop_path
    clip = next(f.path for f in result.files if f.name == "clip_01.mp4")
    k = round(4.0 * FPS)  # mid-pan: the crop is far from the centre
    assert abs(int(path.xs[k]) - (WIDTH - path.crop_width) // 2) > 40
    x, y = int(path.xs[k]), int(path.ys[k])

    def source_crop(left: int) -> np.ndarray:
        crop = f"crop={path.crop_width}:{path.crop_height}:{left}:{y},scale={size[0]}:{size[1]}"
        return _frame_rgb(face_video[0], k / FPS, size, filters=crop).astype(int)

    expected, shifted = source_crop(x), source_crop(max(0, x - 30))
    got = _frame_rgb(clip, k / FPS, size).astype(int)
    assert np.abs(got - expected).mean() < 8
    assert np.abs(got - expected).mean() < np.abs(got - shifted).mean()


def test_camera_holds_still_while_the_whole_face_fits_in_one_crop():
    config = ReframeConfig()
    crop, width = 200, 640
    sway = 100 + 40 * np.sin(np.arange(100) / 8)  # beyond the dead band (16 px)...
    _, mode = _camera(sway, 0, width - crop, crop, FPS, width, config)
    assert mode != "stationary"
    # ...but a 60 px face swaying 80 px always fits one 200 px crop (with 5% margins).
    held, mode = _camera(sway, 0, width - crop, crop, FPS, width, config, extent=(150.0, 290.0))
    assert mode == "stationary" and np.ptp(held) == 0
    assert held[0] <= 150 and held[0] + crop >= 290


def test_truncated_source_fails_the_reframed_render_with_a_reason(face_video, detector, tmp_path):
    from reelfarm.media import MediaError

    whole = tmp_path / "faststart.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(face_video[0]), "-c", "copy", "-movflags", "+faststart",
                    str(whole)], check=True)  # fmt: skip
    data = whole.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 5])  # the index is intact: probing accepts it
    with pytest.raises(MediaError, match="truncated"):
        _render((truncated, None), detector, tmp_path)
    assert not any((tmp_path / "9x16").glob("clip_01.*"))


def test_cancel_stops_a_reframed_render_and_leaves_nothing(face_video, detector, tmp_path):
    import threading

    from render_nodes.ffmpeg import Cancelled

    cancel = threading.Event()
    width, height = output_size("9:16", 1920)
    req = RenderRequest(
        source_path=face_video[0], clip_index=1, start_seconds=0.0, end_seconds=DURATION, aspect_ratio="9:16",
        output_width=width, output_height=height, encoder="libx264", x264_preset="veryslow",
        work_dir=tmp_path, detector=detector,
    )  # fmt: skip
    stages = []

    def progress(stage, pct):
        stages.append(stage)
        if stage == "rendering" and pct > 10:
            cancel.set()

    with pytest.raises(Cancelled):
        render_clip(req, on_progress=progress, cancel=cancel)
    assert not list(tmp_path.glob("clip_01.*"))


def test_portrait_phone_footage_stored_sideways_is_rendered_upright(face_video, detector, tmp_path):
    """A display matrix (what phones write) turns stored frames for display: honour it."""
    from reelfarm.media import probe

    sideways = tmp_path / "sideways.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(face_video[0]), "-vf", "transpose=clock",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", str(sideways)], check=True)  # fmt: skip
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rotated)], check=True)  # fmt: skip
    info = probe(rotated)
    assert (info.width, info.height, info.rotation) == (WIDTH, HEIGHT, 90)
    for label, det in (("reframed", detector), ("static", None)):
        upright, size = _render(face_video, det, tmp_path / f"upright-{label}")
        turned, _ = _render((rotated, None), det, tmp_path / f"turned-{label}")
        assert [s["camera"] for s in turned.info["shots"]] == [s["camera"] for s in upright.info["shots"]]
        a = _frame_rgb(next(f.path for f in upright.files if f.name == "clip_01.mp4"), 1.0, size).astype(int)
        b = _frame_rgb(next(f.path for f in turned.files if f.name == "clip_01.mp4"), 1.0, size).astype(int)
        assert np.abs(a - b).mean() < 8, label
