"""Captions follow the words, judged by the pixels of clips that render_clip really renders.

The source is a flat grey picture, so captions are the only thing that changes pixels:
the karaoke highlight must sweep over the words in reading order as they are spoken,
every preset must draw its highlighted word while one is spoken, and nothing may be
drawn before the first word, after the captions clear, or outside the caption area.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from pysubs2 import Color

from reelfarm.transcript import Word
from render_nodes.captions import _LOOKS, caption_area
from render_nodes.pipeline import RenderRequest, render_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

RATE = 25
SECONDS = 4.0
OUT_W, OUT_H = 360, 640
GREY = 128  # color=c=gray
WORD_SLOT, WORD_SPOKEN, FIRST_WORD = 0.6, 0.5, 0.3
WORDS = [
    Word(text, FIRST_WORD + i * WORD_SLOT, FIRST_WORD + i * WORD_SLOT + WORD_SPOKEN)
    for i, text in enumerate(["one", "two", "three", "four", "five"])
]
BEFORE_WORDS = 0.12
# The last word ends at 3.2 s; the clip's last 0.8 s is a pause longer than a caption is
# held through (0.6 s), so the caption clears.
AFTER_WORDS = 3.6
INK = 30  # a channel this far from the grey is something drawn
MIN_INK_PX = 80  # a word at this size is hundreds of pixels


def mid(word: Word) -> float:
    return (word.start + word.end) / 2


@pytest.fixture(scope="module")
def grey_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grey") / "grey.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"color=c=gray:s=640x360:r={RATE}:d={SECONDS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def rendered(grey_source: Path, tmp_path_factory: pytest.TempPathFactory):
    """preset -> every frame of its rendered clip (RGB), rendered once per module."""
    cache: dict[str, np.ndarray] = {}

    def frames(preset: str) -> np.ndarray:
        if preset not in cache:
            result = render_clip(RenderRequest(
                source_path=grey_source, clip_index=0, start_seconds=0.0, end_seconds=SECONDS,
                aspect_ratio="9:16", output_width=OUT_W, output_height=OUT_H, encoder="libx264",
                x264_preset="ultrafast", work_dir=tmp_path_factory.mktemp(preset), caption_preset=preset,
                words=WORDS,
            ))  # fmt: skip
            assert result.info["captions"] == preset
            with av.open(str(result.files[0].path)) as container:
                cache[preset] = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
            assert len(cache[preset]) == round(SECONDS * RATE)
        return cache[preset]

    return frames


def frame_at(frames: np.ndarray, seconds: float) -> np.ndarray:
    return frames[round(seconds * RATE)].astype(np.int16)


def split_area(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the caption area, the frame with the caption area painted background grey)."""
    x, y, w, h = caption_area(OUT_W, OUT_H)
    outside = frame.copy()
    outside[y : y + h, x : x + w] = GREY
    return frame[y : y + h, x : x + w], outside


def ink(pixels: np.ndarray) -> np.ndarray:
    return np.abs(pixels - GREY).max(axis=-1) > INK


def coloured(pixels: np.ndarray, colour: Color, tolerance: int = 50) -> np.ndarray:
    return (np.abs(pixels - np.array([colour.r, colour.g, colour.b])) < tolerance).all(axis=-1)


def white(pixels: np.ndarray) -> np.ndarray:
    return pixels.min(axis=-1) > 200


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def reads_after(later: tuple[float, float], earlier: tuple[float, float], line_px: float) -> bool:
    """Whether `later` comes after `earlier` in reading order: on a later line, or further right on the same one."""
    (lx, ly), (ex, ey) = later, earlier
    if ly > ey + line_px / 2:
        return True
    return abs(ly - ey) <= line_px / 2 and lx > ex


LINE_PX = _LOOKS["karaoke"].font_size * OUT_H


def test_karaoke_highlight_sweeps_over_the_words_in_reading_order(rendered) -> None:
    frames = rendered("karaoke")
    highlight = _LOOKS["karaoke"].highlight_colour
    sung, unsung = [], []
    for word in WORDS:
        area, _ = split_area(frame_at(frames, mid(word)))
        sung.append(coloured(area, highlight))
        unsung.append(white(area))

    sung_px = [int(m.sum()) for m in sung]
    unsung_px = [int(m.sum()) for m in unsung]
    assert sung_px[0] >= MIN_INK_PX and unsung_px[0] >= MIN_INK_PX, "the first word sung, the rest still white"
    assert all(b > a + MIN_INK_PX for a, b in itertools.pairwise(sung_px)), sung_px
    assert all(b < a for a, b in itertools.pairwise(unsung_px)), unsung_px
    assert unsung_px[-1] < MIN_INK_PX / 4, "by the last word every word is sung"

    # A sung word stays sung, and each word's newly highlighted pixels come after the
    # previous word's in reading order (further right, or on the next line).
    newly = [sung[0]]
    for before, now in itertools.pairwise(sung):
        assert (before & ~now).sum() <= 0.02 * before.sum()
        newly.append(now & ~before)
    positions = [centroid(mask) for mask in newly]
    for k in range(1, len(WORDS)):
        assert reads_after(positions[k], positions[k - 1], LINE_PX), (k, positions)
    # Five words do not fit one line of a 360 px wide clip: the sweep wraps to a second line.
    assert positions[-1][1] > positions[0][1] + LINE_PX / 2, positions
    # The highlight's bounding box at word 4 reaches past word 1's: further down or right.
    (ys1, xs1), (ys4, xs4) = np.nonzero(sung[0]), np.nonzero(sung[3])
    assert ys4.max() > ys1.max() + LINE_PX / 2 or xs4.max() > xs1.max()


@pytest.mark.parametrize("preset", ["karaoke", "beasty", "mozi"])
def test_captions_show_while_words_are_spoken_and_only_then(rendered, preset: str) -> None:
    frames = rendered(preset)
    for seconds in (BEFORE_WORDS, AFTER_WORDS):
        area, _ = split_area(frame_at(frames, seconds))
        assert int(ink(area).sum()) == 0, f"something drawn at {seconds} s, with no word spoken"
    for word in WORDS:
        area, _ = split_area(frame_at(frames, mid(word)))
        assert ink(area).sum() >= MIN_INK_PX, f"no caption while {word.text!r} is spoken"
    # Only captions change pixels, and only inside the caption area.
    for index in range(0, len(frames), 5):
        _, outside = split_area(frames[index].astype(np.int16))
        assert int(ink(outside).sum()) == 0, f"drawn outside the caption area in frame {index}"


@pytest.mark.parametrize("preset", ["beasty", "mozi"])
def test_the_spoken_word_is_drawn_in_the_highlight_colour_and_moves_with_the_speech(rendered, preset: str) -> None:
    frames = rendered(preset)
    highlight = _LOOKS[preset].highlight_colour
    line_px = _LOOKS[preset].font_size * OUT_H
    spoken = []
    for word in WORDS:
        area, _ = split_area(frame_at(frames, mid(word)))
        spoken.append(coloured(area, highlight))
        assert spoken[-1].sum() >= MIN_INK_PX / 2, f"{word.text!r} is not highlighted"
        if word is WORDS[0]:  # in a caption of several words with every preset
            assert white(area).sum() >= MIN_INK_PX, "the words not spoken are not in the text colour"
    # One word at a time: the first two words are in the first caption of every preset,
    # so the second one's highlight reads after the first one's.
    assert reads_after(centroid(spoken[1]), centroid(spoken[0]), line_px)
