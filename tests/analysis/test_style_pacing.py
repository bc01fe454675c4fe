"""Cut pacing, zoom and transitions as a plan (analysis/style/pacing.py)."""

import math

import pytest

from analysis.style import pacing
from analysis.style.pacing import MIN_SEGMENT_SECONDS, PUNCH_ZOOM, ZOOM_RATE, plan_pacing
from reelfarm.transcript import Word

CUT = {"type": "cut", "duration_ms": 0, "easing": "linear"}


def test_cuts_are_added_to_reach_the_targets_frequency_evenly_alternating_wide_and_punched():
    plan = plan_pacing(8.0, {"cut_frequency": 37.5, "primary_transition": CUT}, {"cut_frequency": 0})
    assert plan.cuts == pytest.approx([8 / 6 * k for k in range(1, 6)], abs=1e-3)
    assert [s.zoom for s in plan.segments] == [1.0, PUNCH_ZOOM, 1.0, PUNCH_ZOOM, 1.0, PUNCH_ZOOM]
    assert plan.segments[0].start == 0 and plan.segments[-1].end == 8.0
    # The source's own cuts count: a source already at 30 a minute needs one more in 8 s.
    assert len(plan_pacing(8.0, {"cut_frequency": 37.5}, {"cut_frequency": 30}).cuts) == 1


def test_nothing_to_add_is_no_plan():
    assert plan_pacing(8.0, {"cut_frequency": 10, "zoom_usage": 5}, {"cut_frequency": 12, "zoom_usage": 20}) is None
    assert plan_pacing(8.0, {}, {}) is None


def test_cuts_sit_on_a_nearby_pause_or_beat_and_keep_their_even_place_otherwise():
    even = 8 / 3  # two cuts in 8 s
    plan = plan_pacing(8.0, {"cut_frequency": 15}, {}, pauses=[even + 0.4], beats=[2 * even - 0.3, 7.9])
    assert plan.cuts == pytest.approx([even + 0.4, 2 * even - 0.3], abs=1e-3)
    far = plan_pacing(8.0, {"cut_frequency": 15}, {}, pauses=[even + 1.5])  # beyond 0.35 of the spacing
    assert far.cuts == pytest.approx([even, 2 * even], abs=1e-3)


def test_no_shot_is_shorter_than_the_minimum_however_fast_the_template_cuts():
    plan = plan_pacing(3.0, {"cut_frequency": 600}, {})
    lengths = [s.end - s.start for s in plan.segments]
    assert len(plan.cuts) == int(3.0 / MIN_SEGMENT_SECONDS) - 1 and min(lengths) >= MIN_SEGMENT_SECONDS - 1e-9
    # A transition's own length raises the minimum.
    slow = plan_pacing(3.0, {"cut_frequency": 600, "primary_transition": {"type": "fade", "duration_ms": 1000}}, {})
    assert min(s.end - s.start for s in slow.segments) >= 1.2 - 1e-9


def test_zoom_usage_is_a_push_in_over_that_share_of_every_segment():
    plan = plan_pacing(10.0, {"cut_frequency": 12, "zoom_usage": 40}, {"zoom_usage": 10})
    assert len(plan.segments) == 3
    for s in plan.segments:
        assert s.push_seconds == pytest.approx(0.3 * (s.end - s.start), abs=1e-3)
        assert s.zoom_at(s.start + s.push_seconds) == pytest.approx(s.zoom * math.exp(ZOOM_RATE * s.push_seconds))
        assert s.zoom_at(s.end) == s.zoom_at(s.start + s.push_seconds)  # then held
    # Zoom alone (no cuts wanted) still plans: one segment pushing in.
    alone = plan_pacing(10.0, {"zoom_usage": 50}, {})
    assert alone.cuts == [] and alone.segments[0].push_seconds == pytest.approx(5.0)


def test_framings_through_a_cut_a_fade_and_a_dissolve():
    cut = plan_pacing(4.0, {"cut_frequency": 15}, {})  # one cut at 2 s
    assert cut.framing_at(1.99).zoom == 1.0 and cut.framing_at(2.0).zoom == PUNCH_ZOOM

    fade = plan_pacing(4.0, {"cut_frequency": 15, "primary_transition": {"type": "fade", "duration_ms": 400}}, {})
    assert fade.framing_at(1.5).light == 1.0
    assert fade.framing_at(1.8).light == pytest.approx(1.0) and fade.framing_at(1.8).zoom == 1.0
    assert fade.framing_at(1.9).light == pytest.approx(0.5) and fade.framing_at(2.0).light == pytest.approx(0.0)
    assert fade.framing_at(2.1).light == pytest.approx(0.5) and fade.framing_at(2.1).zoom == PUNCH_ZOOM

    dissolve = plan_pacing(4.0, {"cut_frequency": 15,
                                 "primary_transition": {"type": "dissolve", "duration_ms": 400, "easing": "ease-in-out"}},
                           {})  # fmt: skip
    middle = dissolve.framing_at(2.0)
    assert (middle.zoom, middle.blend_zoom, middle.blend) == (1.0, PUNCH_ZOOM, pytest.approx(0.5))
    assert dissolve.framing_at(1.9).blend == pytest.approx(0.15625)  # smoothstep(0.25)
    assert dissolve.framing_at(1.0).blend == 0.0


def test_pauses_are_the_middles_of_gaps_between_words_inside_the_clip():
    words = [Word("one", 10.0, 10.5), Word("two", 10.55, 11.0), Word("three", 11.6, 12.0), Word("four", 13.0, 13.2)]
    assert pacing.pauses_in(words, 10.0, 12.5) == pytest.approx([1.3])  # 11.3 s; 12.5 s is outside
    assert pacing.beats_in({"detected_beats": [{"timestamp_ms": 9500}, {"timestamp_ms": 10250}]}, 10.0, 12.0) == [0.25]
