"""analysis/selection.py: what a job renders when its source says nothing (uniform clips)."""

import pytest

from analysis.selection import uniform_moments
from harness.scripted_speech import opts


@pytest.mark.parametrize("length, low, high", [("short", 3, 15), ("medium", 20, 45), ("long", 45, 90)])
def test_uniform_clips_respect_length_and_do_not_overlap(length, low, high):
    clips = uniform_moments(600.0, opts(mode="ai", numClips=5, clipLength=length))
    assert len(clips) == 5
    for clip in clips:
        assert low <= clip.end - clip.start <= high
        assert 0 <= clip.start and clip.end <= 600
    for a, b in zip(clips, clips[1:]):
        assert a.end <= b.start


def test_never_more_clips_than_fit():
    clips = uniform_moments(40.0, opts(mode="ai", numClips=10, clipLength="medium"))
    assert len(clips) == 1
    short_source = uniform_moments(4.0, opts(mode="ai", numClips=3, clipLength="medium"))
    assert [(c.start, c.end) for c in short_source] == [(0.0, 4.0)]
