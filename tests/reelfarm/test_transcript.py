"""reelfarm/transcript.py: one timed word, and its two wire forms converted in one place."""

from reelfarm import transcript
from reelfarm.transcript import Word

WORDS = [Word("hello", 1.0, 1.4), Word("there", 1.5, 1.8123456)]


def test_rows_round_trip_at_millisecond_precision():
    rows = transcript.to_rows(WORDS)
    assert rows == [["hello", 1.0, 1.4], ["there", 1.5, 1.812]]
    assert transcript.from_rows(rows) == [Word("hello", 1.0, 1.4), Word("there", 1.5, 1.812)]


def test_caption_fields_are_the_protos_names():
    from reelfarm.v1 import common_pb2

    fields = transcript.to_caption_fields(WORDS)
    assert [common_pb2.CaptionWord(**f).text for f in fields] == ["hello", "there"]
    assert transcript.from_caption_fields(fields) == WORDS


def test_overlapping_keeps_words_that_touch_the_range():
    words = [Word("before", 0.0, 1.0), Word("across", 0.9, 1.2), Word("inside", 1.3, 1.5), Word("after", 2.0, 2.5)]
    assert [w.text for w in transcript.overlapping(words, 1.0, 2.0)] == ["across", "inside"]
