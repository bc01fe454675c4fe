"""Tests for render_nodes.captions: the ASS it writes, and what real ffmpeg/libass burns from it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from reelfarm.transcript import Word
from render_nodes.captions import (
    PRESETS,
    ass_filter,
    build_caption_track,
    caption_area,
)

DRAWN_PRESETS = [p for p in PRESETS if p != "none"]
SIZES = [(720, 1280), (1080, 1920)]

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def evenly_timed(text: str, start: float, end: float, *, fill: float = 0.8) -> list[Word]:
    """One Word per whitespace-separated token, spread over [start, end), each speaking for `fill` of its slot."""
    tokens = text.split()
    slot = (end - start) / len(tokens)
    return [Word(token, start + i * slot, start + i * slot + slot * fill) for i, token in enumerate(tokens)]


def track(words: list[Word], preset: str, *, clip_start: float = 0.0, clip_end: float = 60.0,
          size: tuple[int, int] = (720, 1280)) -> pysubs2.SSAFile:
    text = build_caption_track(words, preset=preset, clip_start=clip_start, clip_end=clip_end,
                               width=size[0], height=size[1])
    assert text is not None
    return pysubs2.SSAFile.from_string(text)


# An override block we wrote: '{' not escaped by a backslash, up to the first '}'.
OVERRIDE_BLOCK = re.compile(r"(?<!\\)\{[^{}]*\}")


def plain_text(event_text: str) -> str:
    """An event's text with our override blocks and line breaks removed, still escaped."""
    return OVERRIDE_BLOCK.sub("", event_text).replace(r"\N", " ")


def unescape(text: str) -> str:
    return text.replace("\\\u2060", "\\").replace(r"\{", "{").replace(r"\}", "}")


def shown_words(event_text: str) -> list[str]:
    return unescape(plain_text(event_text)).split()


# --------------------------------------------------------------------------- the ASS document


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_words_are_retimed_to_the_clip(preset: str) -> None:
    text = build_caption_track([Word("hello", 12.0, 12.4)], preset=preset, clip_start=10.0, clip_end=20.0,
                               width=720, height=1280)
    assert text is not None
    assert "0:00:02.00" in text
    (event,) = pysubs2.SSAFile.from_string(text).events
    assert (event.start, event.end) == (2000, 2400)


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_words_outside_the_clip_are_dropped_and_crossing_ones_clamped(preset: str) -> None:
    words = [
        Word("before", 8.0, 9.0),
        Word("crossing-in", 9.8, 10.3),
        Word("inside", 11.0, 11.5),
        Word("crossing-out", 14.7, 15.4),
        Word("at-the-end", 15.0, 15.5),  # the clip is [10, 15): this starts as it ends
        Word("after", 16.0, 17.0),
    ]
    subs = track(words, preset, clip_start=10.0, clip_end=15.0)
    shown = {word.lower() for event in subs.events for word in shown_words(event.text)}
    assert shown == {"crossing-in", "inside", "crossing-out"}
    assert min(e.start for e in subs.events) == 0
    assert max(e.end for e in subs.events) == 5000


def test_none_preset_gives_no_track() -> None:
    words = evenly_timed("some words here", 0.0, 2.0)
    assert build_caption_track(words, preset="none", clip_start=0, clip_end=2, width=720, height=1280) is None


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_no_track_without_words_in_the_clip(preset: str) -> None:
    outside = [Word("early", 0.0, 1.0), Word("late", 30.0, 31.0)]
    blank = [Word("  ", 11.0, 11.5), Word("\n", 12.0, 12.5)]
    for words in ([], outside, blank):
        assert build_caption_track(words, preset=preset, clip_start=10, clip_end=20, width=720, height=1280) is None


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="beasty.*karaoke.*mozi"):
        build_caption_track([Word("hi", 0, 1)], preset="fancy", clip_start=0, clip_end=2, width=720, height=1280)


def test_karaoke_k_durations_add_up_to_each_event() -> None:
    # Uneven words and gaps, including a pause that splits the line.
    words = [Word("one", 0.13, 0.41), Word("two", 0.47, 0.52), Word("three", 0.9, 1.37), Word("four", 1.4, 1.66),
             Word("five", 2.5, 2.81), Word("six", 2.83, 3.337), Word("seven", 3.4, 3.9)]
    subs = track(words, "karaoke")
    assert len(subs.events) == 2  # the 0.84 s pause after "four" starts a new line
    for event in subs.events:
        durations = [int(cs) for cs in re.findall(r"\\k(\d+)", event.text)]
        assert len(durations) == len(shown_words(event.text))
        assert abs(sum(durations) - (event.end - event.start) / 10) <= len(durations)


def test_karaoke_sweeps_from_secondary_to_primary_colour() -> None:
    style = track(evenly_timed("a b", 0, 1), "karaoke").styles["karaoke"]
    assert style.primarycolor != style.secondarycolor


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_transcript_text_cannot_inject_ass(preset: str) -> None:
    tricky = ["{\\fs300\\c&H0000FF&}big", "back\\Nslash", "\\h", "}{", "a\\{b"]
    words = [Word(text, i * 0.5, i * 0.5 + 0.4) for i, text in enumerate(tricky)]
    subs = track(words, preset)
    shown = []
    for event in subs.events:
        plain = plain_text(event.text)
        # What is left is text only: every brace escaped, no \N, \n or \h.
        assert re.search(r"(?<!\\)[{}]", plain) is None, plain
        assert re.search(r"\\[Nnh]", plain) is None, plain
        shown += shown_words(event.text)
    expected = [t.upper() if preset == "beasty" else t for t in tricky]
    assert [w for w in expected if w not in shown] == []


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
@pytest.mark.parametrize("size", [*SIZES, (1920, 1080)])
def test_script_resolution_is_the_output_size(preset: str, size: tuple[int, int]) -> None:
    subs = track(evenly_timed("hello there", 0, 1), preset, size=size)
    assert (subs.info["PlayResX"], subs.info["PlayResY"]) == (str(size[0]), str(size[1]))
    assert subs.info["WrapStyle"] in ("0", "1", "3")  # a wrapping style, not 2 (no wrapping)


@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_sizes_scale_with_the_output_height(preset: str) -> None:
    small = track(evenly_timed("hello there", 0, 1), preset, size=(720, 1280)).styles[preset]
    large = track(evenly_timed("hello there", 0, 1), preset, size=(1080, 1920)).styles[preset]
    assert large.fontsize == pytest.approx(small.fontsize * 1.5, abs=1)
    assert large.outline == pytest.approx(small.outline * 1.5, abs=0.2)
    assert large.marginv == pytest.approx(small.marginv * 1.5, rel=0.02)  # plus a fixed antialiasing slack
    assert small.marginl >= 0.06 * 720 and large.marginl >= 0.06 * 1080


@pytest.mark.parametrize(("preset", "max_words"), [("beasty", 3), ("karaoke", 6), ("mozi", 4)])
def test_captions_hold_a_few_words_and_break_at_pauses(preset: str, max_words: int) -> None:
    words = evenly_timed("a b c d e f g h i j k l m n", 0.0, 4.2)
    words += [Word("later", 5.5, 5.9)]  # after a pause of over a second
    subs = track(words, preset)
    assert all(1 <= len(shown_words(e.text)) <= max_words for e in subs.events)
    # The word after the pause is shown on its own, and nothing bridges the pause.
    last = subs.events[-1]
    assert shown_words(last.text) == ["LATER" if preset == "beasty" else "later"]
    assert all(e.end <= 4200 for e in subs.events[:-1])


@pytest.mark.parametrize("preset", ["beasty", "mozi"])
def test_the_spoken_word_is_highlighted(preset: str) -> None:
    words = evenly_timed("one two three", 1.0, 2.5)
    subs = track(words, preset)
    text_colour = subs.styles[preset].primarycolor
    text_bgr = f"{text_colour.b:02X}{text_colour.g:02X}{text_colour.r:02X}"
    assert len(subs.events) == 3  # the same caption three times, one word lit in each
    for event, word in zip(subs.events, words, strict=True):
        assert event.start == round(word.start * 1000)
        lit = re.findall(r"\{\\1c&H([0-9A-F]{6})&\}([^{]+)\{", event.text)
        assert [(colour != text_bgr, text.lower()) for colour, text in lit] == [(True, word.text)]


def test_preset_casing() -> None:
    words = evenly_timed("well, hello there. how are you", 0, 3)
    assert [w for e in track(words, "beasty").events for w in shown_words(e.text)][:2] == ["WELL,", "HELLO"]
    mozi_text = " ".join(shown_words(e.text)[0] for e in track(words, "mozi").events)
    assert "Well," in mozi_text and "How" in mozi_text
    karaoke_words = [w for e in track(words, "karaoke").events for w in shown_words(e.text)]
    assert karaoke_words == ["well,", "hello", "there.", "how", "are", "you"]


@pytest.mark.parametrize("size", [*SIZES, (1920, 1080), (1080, 1080)])
def test_caption_area_is_inside_the_safe_area(size: tuple[int, int]) -> None:
    width, height = size
    x, y, w, h = caption_area(width, height)
    assert x >= 0.06 * width and x + w <= 0.94 * width
    assert y >= height / 2 and y + h <= 0.88 * height


# --------------------------------------------------------------------------- burned in with real ffmpeg

BACKGROUND = "0x202020"
BRIGHT = 128  # any channel above this is caption ink: the background is 32, outlines and boxes are dark
OUTSIDE_TOLERANCE_PX = 10
SPEECH = "so we gave away a private island to one lucky subscriber today"


def run_ffmpeg(*args: str) -> bytes:
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def dark_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], Path]:
    """A 2 s solid dark video per output size."""
    folder = tmp_path_factory.mktemp("dark")
    videos = {}
    for width, height in SIZES:
        path = folder / f"dark-{width}x{height}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", f"color=c={BACKGROUND}:s={width}x{height}:d=2",
                   "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
        videos[(width, height)] = path
    return videos


def burn(source: Path, ass_text: str, folder: Path) -> Path:
    # Quotes, brackets, commas, semicolons and colons: all special to ffmpeg's filter parser.
    ass_path = folder / "it's [captions], v1; take:2.ass"
    ass_path.write_text(ass_text, encoding="utf-8")
    burned = folder / "burned.mp4"
    run_ffmpeg("-i", str(source), "-vf", ass_filter(ass_path),
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(burned))
    return burned


def frame_at(video: Path, seconds: float, size: tuple[int, int]) -> np.ndarray:
    raw = run_ffmpeg("-ss", f"{seconds:.3f}", "-i", str(video), "-frames:v", "1",
                     "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
    width, height = size
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def bright_inside_and_outside(frame: np.ndarray) -> tuple[int, int]:
    height, width = frame.shape[:2]
    x, y, w, h = caption_area(width, height)
    bright = frame.max(axis=2) > BRIGHT
    inside = int(bright[y:y + h, x:x + w].sum())
    return inside, int(bright.sum()) - inside


@needs_ffmpeg
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_without_captions_the_caption_area_is_dark(dark_videos, size: tuple[int, int]) -> None:
    frame = frame_at(dark_videos[size], 1.0, size)
    x, y, w, h = caption_area(*size)
    assert bright_inside_and_outside(frame) == (0, 0)
    assert frame[y:y + h, x:x + w].mean() < 40


@needs_ffmpeg
@pytest.mark.parametrize("preset", DRAWN_PRESETS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_burned_captions_stay_in_the_caption_area(dark_videos, tmp_path: Path, preset: str,
                                                  size: tuple[int, int]) -> None:
    ass_text = build_caption_track(evenly_timed(SPEECH, 0.2, 1.8), preset=preset, clip_start=0.0, clip_end=2.0,
                                   width=size[0], height=size[1])
    assert ass_text is not None
    burned = burn(dark_videos[size], ass_text, tmp_path)

    inside, outside = bright_inside_and_outside(frame_at(burned, 1.0, size))
    _, _, w, h = caption_area(*size)
    assert inside > 0.005 * w * h, "no caption drawn in the caption area"
    assert outside <= OUTSIDE_TOLERANCE_PX
    # Also as the first caption pops in, and near the end.
    for seconds in (0.28, 1.6):
        assert bright_inside_and_outside(frame_at(burned, seconds, size))[1] <= OUTSIDE_TOLERANCE_PX


@needs_ffmpeg
@pytest.mark.parametrize("preset", DRAWN_PRESETS)
def test_long_words_and_markup_in_the_transcript_stay_in_the_caption_area(dark_videos, tmp_path: Path,
                                                                           preset: str) -> None:
    size = SIZES[0]
    # Unescaped, the first word would set a 300 px font and the second a line break.
    words = evenly_timed("{\\fs300}WOW back\\Nslash supercalifragilisticexpialidocious WWWWWWWWWWWW", 0.2, 1.8)
    ass_text = build_caption_track(words, preset=preset, clip_start=0.0, clip_end=2.0, width=size[0], height=size[1])
    assert ass_text is not None
    burned = burn(dark_videos[size], ass_text, tmp_path)
    for seconds in (0.3, 0.7, 1.1, 1.5):
        inside, outside = bright_inside_and_outside(frame_at(burned, seconds, size))
        assert inside > 0 and outside <= OUTSIDE_TOLERANCE_PX, (seconds, inside, outside)
