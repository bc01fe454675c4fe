import pytest

from scheduler.planner import plan_clips, source_window


def test_mode_none_is_one_full_clip():
    clips, selection = plan_clips(100.0, {"mode": "none"})
    assert selection == "full"
    assert [(c.index, c.start_seconds, c.end_seconds) for c in clips] == [(1, 0.0, 100.0)]


def test_trim_applies_to_the_window():
    assert source_window(100.0, {"trimStart": 10, "trimEnd": 40}) == (10.0, 40.0)
    assert source_window(100.0, {"trimStart": 10, "trimEnd": 400}) == (10.0, 100.0)
    clips, _ = plan_clips(100.0, {"mode": "none", "trimStart": 10, "trimEnd": 40})
    assert (clips[0].start_seconds, clips[0].end_seconds) == (10.0, 40.0)


@pytest.mark.parametrize("length, low, high", [("short", 3, 15), ("medium", 20, 45), ("long", 45, 90)])
def test_uniform_clips_respect_length_and_do_not_overlap(length, low, high):
    clips, selection = plan_clips(600.0, {"mode": "ai", "numClips": 5, "clipLength": length})
    assert selection == "uniform"
    assert len(clips) == 5
    for clip in clips:
        assert low <= clip.end_seconds - clip.start_seconds <= high
        assert 0 <= clip.start_seconds and clip.end_seconds <= 600
    for a, b in zip(clips, clips[1:]):
        assert a.end_seconds <= b.start_seconds


def test_never_more_clips_than_fit():
    clips, _ = plan_clips(40.0, {"mode": "ai", "numClips": 10, "clipLength": "medium"})
    assert len(clips) == 1
    short_source, _ = plan_clips(4.0, {"mode": "ai", "numClips": 3, "clipLength": "medium"})
    assert [(c.start_seconds, c.end_seconds) for c in short_source] == [(0.0, 4.0)]


def test_analysis_parts_tile_the_trimmed_source_in_multiples_of_the_slots():
    from scheduler.planner import analysis_chunks

    parts = analysis_chunks(612.0, {"trimStart": 12.0}, 120.0, parallelism=2)
    assert len(parts) == 6  # 600 s: 5 parts of 120 s would leave one node alone for the last
    assert parts[0][0] == 12.0 and parts[-1][1] == 612.0
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))  # no gap, no overlap
    assert max(b - a for a, b in parts) <= 120.0
    assert len(analysis_chunks(612.0, {}, 120.0, parallelism=1)) == 5
    assert len(analysis_chunks(30.0, {}, 120.0, parallelism=8)) == 2  # parts of at least 20 s
    assert analysis_chunks(10.0, {}, 120.0, parallelism=0) == [(0.0, 10.0)]
