"""reelfarm/options.py: the options a job is made with, their defaults and ranges in one place."""

import pytest
from pydantic import ValidationError

from reelfarm.options import CLIP_LENGTH_RANGES, ProcessOptions


def test_defaults_are_the_documented_ones():
    options = ProcessOptions()
    assert (options.mode, options.numClips, options.clipLength, options.aspectRatio, options.captionPreset) == (
        "ai", 3, "medium", "9:16", "none")
    assert options.removeAiVoice is True and options.autoHook is True and options.genre == "auto"
    assert options.length_range() == CLIP_LENGTH_RANGES["medium"] == (20.0, 45.0)


@pytest.mark.parametrize("field", ["removeAiVoice", "autoHook"])
@pytest.mark.parametrize("value", ["false", "true", "no", 0, 1, None])
def test_booleans_are_json_booleans_only(field, value):
    with pytest.raises(ValidationError) as refused:
        ProcessOptions.model_validate({field: value})
    assert refused.value.errors()[0]["loc"] == (field,)
    assert ProcessOptions.model_validate({field: False}).model_dump()[field] is False


def test_stored_options_read_back_typed_and_equal():
    given = ProcessOptions.model_validate({"numClips": 5, "trimStart": 2.5, "removeAiVoice": False, "prompt": "x",
                                           "transcript": [{"text": "hi", "start": 0.1, "end": 0.4}]})
    stored = given.model_dump()  # what a job's options column holds
    assert ProcessOptions.from_job(stored) == given
    assert ProcessOptions.from_job(None) == ProcessOptions() == ProcessOptions.from_job({})
    assert [(w.text, w.start, w.end) for w in given.supplied_words()] == [("hi", 0.1, 0.4)]


def test_max_clips_is_the_dev_endpoints_name_for_num_clips():
    assert ProcessOptions.model_validate({"maxClips": 7}).numClips == 7
    assert "maxClips" not in ProcessOptions.model_validate({"maxClips": 7}).model_dump()
    with pytest.raises(ValidationError):
        ProcessOptions.model_validate({"maxClips": 11})


@pytest.mark.parametrize("fields, expected", [
    ({"clipLength": "short"}, (3.0, 15.0)),
    ({"clipLength": "long", "minDuration": 10, "maxDuration": 12}, (10.0, 12.0)),  # explicit bounds win
    ({"minDuration": 90}, (90.0, 90.0)),  # max defaults to max(min, 60)
    ({"minDuration": 10}, (10.0, 60.0)),
    ({"maxDuration": 20}, (20.0, 20.0)),  # min defaults to min(30, max)
    ({"maxDuration": 120}, (30.0, 120.0)),
])
def test_one_length_rule_for_every_reader(fields, expected):
    """The planner and the moment finder once had two rules (1 s and 30 s default minimums)."""
    assert ProcessOptions.model_validate(fields).length_range() == expected


def test_source_window_is_the_trim_clamped_to_the_source():
    assert ProcessOptions(trimStart=10, trimEnd=400).source_window(100.0) == (10.0, 100.0)
    assert ProcessOptions().source_window(42.0) == (0.0, 42.0)
    with pytest.raises(ValueError, match="empty"):
        ProcessOptions(trimStart=100).source_window(50.0)


@pytest.mark.parametrize("fields, needed", [
    ({}, True),  # mode ai picks moments from the transcript
    ({"mode": "none"}, False),
    ({"mode": "none", "captionPreset": "karaoke"}, True),  # captions need words
    ({"mode": "none", "captionPreset": "karaoke", "transcript": [{"text": "a", "start": 0, "end": 1}]}, False),
])
def test_when_a_transcript_is_needed(fields, needed):
    assert ProcessOptions.model_validate(fields).needs_transcript is needed


def test_options_are_immutable_once_parsed():
    options = ProcessOptions()
    with pytest.raises(ValidationError):
        options.numClips = 9
