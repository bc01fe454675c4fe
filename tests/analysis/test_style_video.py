"""analysis.style.video: cuts, fades, dissolves, motion and zoom measured on synthetic media.

Every clip is made here (numpy frames piped to libx264, or ffmpeg's own filters) with a known
ground truth, then decoded by the real `decode_small_frames` (ffmpeg) and analysed: no mocks.
Clips are 640x360 at 25 fps (the analysis sees them at 320x180). Tolerances: a boundary's time
and a transition's start and duration within 1 frame (40 ms); pan speed within 3 %; zoom
usage within 5 points (one 0.2 s sample pair straddles each end of a zoom).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from analysis.style.video import (
    NO_TRANSITION,
    FrameDecodeError,
    MotionAnalyser,
    Transition,
    VideoStyle,
    analyse_video,
    decode_small_frames,
    primary_transition,
)
from reelfarm.media import MediaError, probe

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

RATE = 25
FRAME = 1 / RATE
WIDTH, HEIGHT = 640, 360
DIAGONAL = math.hypot(WIDTH, HEIGHT)


# ------------------------------------------------------------------------------ media


def scene(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A textured picture with its own colour layout: coloured blobs plus fine detail to track."""
    import cv2

    rng = np.random.default_rng(seed)
    layout = cv2.resize(rng.random((4, 6, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    detail = cv2.resize(rng.random((height // 6, width // 6)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_LINEAR)  # fmt: skip
    tint = rng.random(3).astype(np.float32)
    picture = 0.15 + 0.45 * layout * (0.5 + tint) + 0.3 * detail[..., None]
    return (np.clip(picture, 0, 1) * 255).astype(np.uint8)


def held(picture: np.ndarray, frames: int, drift_px_per_frame: tuple[float, float] = (0.0, 0.0)) -> list[np.ndarray]:
    """A shot of `picture`, the camera drifting slowly (a shot is rarely perfectly still)."""
    import cv2

    dx, dy = drift_px_per_frame
    return [cv2.warpAffine(picture, np.float32([[1, 0, dx * k], [0, 1, dy * k]]), (WIDTH, HEIGHT),
                           borderMode=cv2.BORDER_REFLECT) for k in range(frames)]  # fmt: skip


def linear(x: float) -> float:
    return x


def smoothstep(x: float) -> float:
    return x * x * (3 - 2 * x)


def blend(a: np.ndarray, b: np.ndarray, frames: int, ease: Callable[[float], float] = linear) -> list[np.ndarray]:
    """A dissolve: `frames` intermediate frames, neither picture clean in any of them."""
    weights = [ease((k + 1) / (frames + 1)) for k in range(frames)]
    return [((1 - w) * a.astype(np.float32) + w * b.astype(np.float32)).astype(np.uint8) for w in weights]


def fade(a: np.ndarray, b: np.ndarray, down: int, hold: int, up: int) -> list[np.ndarray]:
    """Through black: `down` frames darkening, `hold` black frames, `up` frames brightening."""
    black = np.zeros_like(a)
    return blend(a, black, down) + [black] * hold + blend(black, b, up)


def encode(path: Path, frames: Iterable[np.ndarray], rate: int = RATE) -> Path:
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", f"{WIDTH}x{HEIGHT}", "-r", str(rate), "-i", "-",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    for frame in frames:
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return path


def kinds(style: VideoStyle) -> list[str]:
    return [transition.type for transition in style.shots.transitions]


def within_a_frame(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= FRAME + 1e-6


# ------------------------------------------------------------------------------ shots


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("style_video")


def test_hard_cuts_and_a_fade(media: Path) -> None:
    """4 hard cuts and 1 fade (7 frames down, 1 black, 7 up) between 6 shots of 2 s, some drifting."""
    pictures = [scene(seed) for seed in range(1, 7)]
    frames: list[np.ndarray] = []
    truth: list[tuple[str, int, int]] = []  # (type, first frame, frames)
    for index, picture in enumerate(pictures):
        if index == 3:
            transition = fade(frames[-1], picture, 7, 1, 7)
            truth.append(("fade", len(frames), len(transition)))
            frames += transition
        elif index:
            truth.append(("cut", len(frames), 0))
        frames += held(picture, 50, [(1, 0), (0, 0.5), (0, 0), (-1, 0), (0, 0), (0.5, 0.5)][index])
    path = encode(media / "cuts.mp4", frames)

    style = analyse_video(path)

    shots = style.shots
    assert kinds(style) == [kind for kind, _, _ in truth] == ["cut", "cut", "fade", "cut", "cut"]
    assert shots.shot_count == 6
    for transition, (_, first, count) in zip(shots.transitions, truth, strict=True):
        assert within_a_frame(transition.start_seconds, first * FRAME)
        assert within_a_frame(transition.duration_seconds, count * FRAME)
    assert shots.cuts == pytest.approx([tr.at_seconds for tr in shots.transitions], abs=1e-3)
    minutes = probe(path).duration_seconds / 60
    assert shots.cut_frequency == round(5 / minutes, 1)
    assert shots.primary_transition == {"type": "cut", "duration_ms": 0, "easing": "linear"}
    assert style.style_json()["cut_frequency"] == shots.cut_frequency


def test_mostly_fades_make_fade_the_primary_transition(media: Path) -> None:
    """3 fades of 0.6 s (7 + 1 + 7 frames) and one hard cut: fades dominate."""
    pictures = [scene(seed) for seed in range(11, 16)]
    frames = held(pictures[0], 40)
    for picture in pictures[1:4]:
        frames += fade(frames[-1], picture, 7, 1, 7) + held(picture, 40)
    frames += held(pictures[4], 40)  # the hard cut
    style = analyse_video(encode(media / "fades.mp4", frames))

    assert kinds(style) == ["fade", "fade", "fade", "cut"]
    primary = style.shots.primary_transition
    assert primary["type"] == "fade"
    assert abs(primary["duration_ms"] - 600) <= 40
    assert primary["easing"] == "linear"


def test_dissolves_are_dissolves_with_their_duration_and_easing(media: Path) -> None:
    """A linear and a smoothstep dissolve of 12 frames (0.48 s), then one of 20 frames."""
    pictures = [scene(seed) for seed in range(21, 25)]
    frames = held(pictures[0], 50, (0.5, 0))
    truth = []
    for picture, count, ease in ((pictures[1], 12, linear), (pictures[2], 12, smoothstep), (pictures[3], 20, linear)):
        truth.append((len(frames), count, "linear" if ease is linear else "ease-in-out"))
        frames += blend(frames[-1], picture, count, ease) + held(picture, 50)
    style = analyse_video(encode(media / "dissolves.mp4", frames))

    assert kinds(style) == ["dissolve"] * 3
    for transition, (first, count, easing) in zip(style.shots.transitions, truth, strict=True):
        assert within_a_frame(transition.start_seconds, first * FRAME)
        assert within_a_frame(transition.duration_seconds, count * FRAME)
        assert transition.easing == easing
    assert style.shots.primary_transition["type"] == "dissolve"


@pytest.mark.parametrize("xfade", ["dissolve", "fade"])
def test_ffmpeg_xfade_dissolves_are_not_cuts(media: Path, xfade: str) -> None:
    """ffmpeg's xfade (0.5 s from 2 s, moving testsrc2 into still bars): 12 mixed frames from 2.04 s.

    transition=dissolve switches random pixels over; transition=fade blends: both dissolve."""
    path = media / f"xfade_{xfade}.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={RATE}:duration=3",
         "-f", "lavfi", "-i", f"smptehdbars=size={WIDTH}x{HEIGHT}:rate={RATE}:duration=3",
         "-filter_complex", f"[0][1]xfade=transition={xfade}:duration=0.5:offset=2,format=yuv420p",
         "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True,
    )  # fmt: skip
    style = analyse_video(path)

    assert kinds(style) == ["dissolve"]
    (transition,) = style.shots.transitions
    assert within_a_frame(transition.start_seconds, 2.04)
    assert within_a_frame(transition.duration_seconds, 0.48)


def test_a_flash_is_not_a_cut(media: Path) -> None:
    picture = scene(31)
    frames = held(picture, 40) + [np.full_like(picture, 250)] * 2 + held(picture, 40)
    style = analyse_video(encode(media / "flash.mp4", frames))
    assert style.shots.transitions == []


def test_a_static_clip_has_no_cuts_no_motion_no_zoom(media: Path) -> None:
    style = analyse_video(encode(media / "static.mp4", held(scene(41), 100)))

    assert style.shots.cuts == [] and style.shots.shot_count == 1
    no_transition = {"type": "cut", "duration_ms": 0, "easing": "linear"}
    assert style.style_json() == {"cut_frequency": 0.0, "motion_intensity": 0, "zoom_usage": 0,
                                  "primary_transition": no_transition}  # fmt: skip
    assert style.motion.sampled_seconds == pytest.approx(3.8, abs=0.2)  # 5 samples a second


def test_primary_transition_counts_types_and_breaks_ties_toward_gradual() -> None:
    assert primary_transition([]) == NO_TRANSITION
    cut, fade_, dissolve = (Transition("cut", 1.0, 0.0), Transition("fade", 3.0, 0.6, "ease-in-out"),
                            Transition("dissolve", 5.0, 0.4))  # fmt: skip
    assert primary_transition([cut, cut, fade_]) == NO_TRANSITION
    assert primary_transition([cut, fade_]) == {"type": "fade", "duration_ms": 600, "easing": "ease-in-out"}
    assert primary_transition([dissolve, fade_, dissolve]) == {"type": "dissolve", "duration_ms": 400,
                                                               "easing": "linear"}  # fmt: skip


# ----------------------------------------------------------------------------- motion


def test_a_pan_is_measured_at_its_speed(media: Path) -> None:
    """4 s over a wide picture at 100 px/s (of 640x360): 0.136 frame diagonals per second."""
    import cv2

    wide = scene(51, 1200, HEIGHT)
    frames = [cv2.warpAffine(wide, np.float32([[1, 0, -100 * k / RATE], [0, 1, 0]]), (WIDTH, HEIGHT))
              for k in range(100)]  # fmt: skip
    style = analyse_video(encode(media / "pan.mp4", frames))

    assert style.motion.mean_pan_speed == pytest.approx(100 / DIAGONAL, rel=0.03)
    assert style.motion.zoom_usage == 0
    assert style.shots.transitions == []  # a pan is no dissolve
    assert 65 <= style.motion.motion_intensity <= 80  # 100 x (1 - exp(-0.136 / 0.1)) = 74


def test_a_zoom_over_half_the_clip_gives_half_zoom_usage(media: Path) -> None:
    """6 s: still for 2 s, zooming in at 10 %/s (ln scale) for 3 s, still for 1 s."""
    import cv2

    source = scene(61, 1600, 900)
    frames = []
    for k in range(150):
        zoom = math.exp(0.1 * min(max(k / RATE - 2, 0), 3))
        step = 2.0 / zoom  # source pixels per output pixel, about the source's centre
        to_source = np.float32([[step, 0, 800 - step * WIDTH / 2], [0, step, 450 - step * HEIGHT / 2]])
        frames.append(cv2.warpAffine(source, to_source, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    style = analyse_video(encode(media / "zoom.mp4", frames))

    assert style.motion.zoom_usage == pytest.approx(50, abs=5)
    zooming_share = 3 / style.motion.sampled_seconds
    assert style.motion.mean_zoom_rate / zooming_share == pytest.approx(0.1, rel=0.05)
    assert style.motion.mean_pan_speed < 0.002  # a zoom about the centre does not move it
    assert style.shots.transitions == []


def test_pairs_across_a_reported_cut_are_left_out() -> None:
    """Frames pushed directly: a steady 2 px/frame pan, with a cut reported at 1.0 s."""
    import cv2

    picture = scene(71, 900, HEIGHT)
    motion, reported = MotionAnalyser(), MotionAnalyser()
    for k in range(60):
        frame = cv2.resize(cv2.warpAffine(picture, np.float32([[1, 0, -2 * k], [0, 1, 0]]), (WIDTH, HEIGHT)),
                           (320, 180), interpolation=cv2.INTER_AREA)  # fmt: skip
        motion.push(k / RATE, frame)
        reported.push(k / RATE, frame)
    reported.cut(1.0)
    assert reported.result().sampled_seconds == pytest.approx(motion.result().sampled_seconds - 0.2)
    assert reported.result().mean_pan_speed == pytest.approx(motion.result().mean_pan_speed, rel=0.01)


# ----------------------------------------------------------------------------- decode


def test_decode_small_frames_gives_every_frame_at_its_time(media: Path) -> None:
    path = encode(media / "decode.mp4", held(scene(81), 30))
    frames = list(decode_small_frames(path))
    assert len(frames) == 30
    assert [t for t, _ in frames] == pytest.approx([k / RATE for k in range(30)])
    assert all(rgb.shape == (180, 320, 3) and rgb.dtype == np.uint8 for _, rgb in frames)

    sampled = list(decode_small_frames(path, 160, 90, fps=5))  # 1.2 s at 5 frames a second
    assert [t for t, _ in sampled] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert sampled[0][1].shape == (90, 160, 3)

    # A range: only its frames, at their source times (the colour fit reads a clip this way).
    ranged = list(decode_small_frames(path, fps=5, start=0.4, duration=0.4))
    assert [t for t, _ in ranged] == pytest.approx([0.4, 0.6])
    same_time = list(decode_small_frames(path, fps=5))[2][1]  # the whole decode's frame at 0.4 s
    assert np.abs(ranged[0][1].astype(int) - same_time.astype(int)).mean() < 2


def test_a_missing_file_is_a_clear_error_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FrameDecodeError, match="no such file"):
        decode_small_frames(missing)  # raised at the call, before any iteration
    with pytest.raises(MediaError, match="no such file"):
        analyse_video(missing)


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(FrameDecodeError, match="cannot decode video corrupt.mp4"):
        list(decode_small_frames(corrupt))
