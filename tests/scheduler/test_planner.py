import pytest

from harness.scripted_speech import opts
from scheduler.planner import analysis_chunks, full_clip


def test_mode_none_is_one_full_clip():
    clip = full_clip(100.0, opts(mode="none"))
    assert (clip.index, clip.start_seconds, clip.end_seconds) == (1, 0.0, 100.0)


def test_trim_applies_to_the_window():
    assert opts(trimStart=10, trimEnd=40).source_window(100.0) == (10.0, 40.0)
    assert opts(trimStart=10, trimEnd=400).source_window(100.0) == (10.0, 100.0)
    clip = full_clip(100.0, opts(mode="none", trimStart=10, trimEnd=40))
    assert (clip.start_seconds, clip.end_seconds) == (10.0, 40.0)


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError):
        opts(trimStart=120).source_window(100.0)


def test_analysis_parts_tile_the_trimmed_source_in_multiples_of_the_slots():
    parts = analysis_chunks(612.0, opts(trimStart=12.0), 120.0, parallelism=2)
    assert len(parts) == 6  # 600 s: 5 parts of 120 s would leave one node alone for the last
    assert parts[0][0] == 12.0 and parts[-1][1] == 612.0
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # no gap, no overlap
    assert max(b - a for a, b in parts) <= 120.0
    assert len(analysis_chunks(612.0, opts(), 120.0, parallelism=1)) == 5
    assert len(analysis_chunks(30.0, opts(), 120.0, parallelism=8)) == 2  # parts of at least 20 s
    assert analysis_chunks(10.0, opts(), 120.0, parallelism=0) == [(0.0, 10.0)]
