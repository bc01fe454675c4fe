"""Punch-in cuts, push-ins and transitions made into frames (render_nodes/punch_in.py), and the
round trip: a clip rendered with a plan is measured back by the Style DNA extractor."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from analysis.style.apply import AppliedFilters
from analysis.style.extract import extract_style
from analysis.style.pacing import PUNCH_ZOOM, plan_pacing
from render_nodes.faces import make_detector
from render_nodes.pipeline import RenderRequest, render_clip
from render_nodes.punch_in import PunchIn

W, H = 320, 180


def _planes(dot: tuple[int, int] | None = None, luma: int = 100) -> list[np.ndarray]:
    y = np.full((H, W), luma, np.uint8)
    if dot is not None:
        x0, y0 = dot
        y[y0 - 2 : y0 + 3, x0 - 2 : x0 + 3] = 250
    return [y, np.full((H // 2, W // 2), 90, np.uint8), np.full((H // 2, W // 2), 160, np.uint8)]


def _brightest(plane: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(plane >= plane.max() - 30)
    return float(xs.mean()), float(ys.mean())


def test_a_punch_in_magnifies_around_the_subject_and_keeps_the_frame_size():
    plan = plan_pacing(4.0, {"cut_frequency": 15}, {})  # wide until 2 s, then punched in
    punch = PunchIn(plan, W, H)
    # A face at (200, 100) of the crop, whose origin is at (40, 10) of the source.
    punch.add_subject(2.05, (220.0, 90.0, 40.0, 40.0), 40, 10)
    wide = punch.compose(_planes((200, 100)), 1.0)
    assert _brightest(wide[0]) == pytest.approx((200, 100), abs=0.5)
    punched = punch.compose(_planes((200, 100)), 2.5)
    assert [p.shape for p in punched] == [(H, W), (H // 2, W // 2), (H // 2, W // 2)]
    # The window (256 x 144) centres on the face as far as the crop allows: x clamps at 64.
    assert _brightest(punched[0]) == pytest.approx(((200 - 64) * PUNCH_ZOOM, H / 2), abs=1.0)
    assert (punched[0] > 110).sum() > 1.4 * (wide[0] > 110).sum()  # magnified: 1.25^2 the area


def test_without_a_subject_the_punch_in_centres_on_the_crop():
    punch = PunchIn(plan_pacing(4.0, {"cut_frequency": 15}, {}), W, H)
    punched = punch.compose(_planes((170, 95)), 3.0)
    assert _brightest(punched[0]) == pytest.approx((160 + 10 * PUNCH_ZOOM, 90 + 5 * PUNCH_ZOOM), abs=1.0)


def test_a_fade_goes_through_limited_range_black_and_a_dissolve_blends():
    fade = PunchIn(plan_pacing(4.0, {"cut_frequency": 15, "primary_transition": {"type": "fade", "duration_ms": 400}},
                               {}), W, H)  # fmt: skip
    black = fade.compose(_planes(luma=200), 2.0)
    assert [int(p.mean()) for p in black] == [16, 128, 128]
    half = fade.compose(_planes(luma=200), 1.9)
    assert int(half[0].mean()) == pytest.approx(108, abs=1)
    dissolve = PunchIn(plan_pacing(4.0, {"cut_frequency": 15,
                                         "primary_transition": {"type": "dissolve", "duration_ms": 400}}, {}), W, H)
    mixed = dissolve.compose(_planes((200, 100)), 2.0)[0]
    # Half of each framing: the dot shows twice, at half strength, where each framing puts it.
    assert mixed[100, 200] == pytest.approx((250 + 100) / 2, abs=3)


@pytest.fixture(scope="module")
def textured_clip(tmp_path_factory) -> Path:
    """8 s of a photograph slowly panned: one calm shot, 25 fps."""
    from PIL import Image
    from skimage import data

    tmp = tmp_path_factory.mktemp("punch")
    photo = tmp / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    clip = tmp / "plain.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "25", "-t", "8", "-i", str(photo),
                    "-vf", "scale=800:-2,crop=640:360:x='t*15':y=60,format=yuv420p", "-c:v", "libx264",
                    "-preset", "ultrafast", str(clip)], check=True)  # fmt: skip
    return clip


@pytest.mark.parametrize(("transition", "zoom_usage"), [("cut", 40), ("fade", 0)])
def test_a_rendered_plan_is_measured_back_by_the_extractor(textured_clip, tmp_path, transition, zoom_usage):
    target = {"cut_frequency": 37.5, "zoom_usage": zoom_usage,
              "primary_transition": {"type": transition, "duration_ms": 0 if transition == "cut" else 500}}
    plan = plan_pacing(8.0, target, {"cut_frequency": 0, "zoom_usage": 0})
    render_clip(RenderRequest(source_path=textured_clip, clip_index=0, start_seconds=0, end_seconds=8,
                              aspect_ratio="16:9", output_width=640, output_height=360, encoder="libx264",
                              x264_preset="ultrafast", work_dir=tmp_path, detector=make_detector(),
                              style=AppliedFilters(video="", audio=None, frame_rate=None, pacing=plan)))  # fmt: skip
    measured = extract_style(tmp_path / "clip_00.mp4").as_json()
    assert measured["cut_frequency"] == pytest.approx(len(plan.cuts) * 60 / 8)
    assert measured["primary_transition"]["type"] == transition
    if transition == "fade":
        assert measured["primary_transition"]["duration_ms"] == pytest.approx(500, abs=80)
    assert measured["zoom_usage"] == pytest.approx(zoom_usage, abs=8)
