"""render_nodes.splice: keep ranges, the spliced intermediate (real ffmpeg), words remapped onto it."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from reelfarm.geometry import output_size
from reelfarm.media import probe
from reelfarm.samples import make_sample_video
from reelfarm.transcript import Word
from render_nodes.ffmpeg import Cancelled, FfmpegFailed
from render_nodes.pipeline import RenderRequest, render_clip
from render_nodes.splice import (
    kept_length,
    normalise_keep,
    remap_time,
    remap_words,
    splice_source,
)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

RATE = 25
SAMPLE_RATE = 48000


def ffmpeg(*args: str) -> bytes:
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 s of moving testsrc2 (every frame differs) over 440 Hz, 880 Hz, 440 Hz, 3 s each."""
    path = tmp_path_factory.mktemp("splice") / "tones.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={RATE}:duration=9",
           *[arg for freq in (440, 880, 440)
             for arg in ("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={SAMPLE_RATE}:duration=3")],
           "-filter_complex", "[1:a][2:a][3:a]concat=n=3:v=0:a=1[a]", "-map", "0:v", "-map", "[a]",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


def decode_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame as grey levels, (frames, height, width), as ffmpeg shows it (rotation applied)."""
    width, height = size
    raw = ffmpeg("-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1")
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width).astype(np.float32)


def decode_audio(path: Path) -> np.ndarray:
    raw = ffmpeg("-i", str(path), "-vn", "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1")
    return np.frombuffer(raw, "<i2").astype(np.float64)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[spectrum.argmax()])


def band(samples: np.ndarray, hz: float, width: float = 20.0) -> float:
    """Energy within `width` Hz of `hz`."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    return float(spectrum[(freqs > hz - width) & (freqs < hz + width)].sum())


# ---------------------------------------------------------------------------- normalise_keep


def test_normalise_keep_clamps_merges_and_drops_short_pieces() -> None:
    keep = [(5.0, 7.0), (-3.0, 1.0), (0.5, 2.0), (2.0, 3.0), (8.0, 8.2), (9.0, 30.0)]
    assert normalise_keep(keep, 0.0, 10.0) == [(0.0, 3.0), (5.0, 7.0), (9.0, 10.0)]
    assert normalise_keep(keep, 0.0, 10.0, min_piece=1.5) == [(0.0, 3.0), (5.0, 7.0)]


@pytest.mark.parametrize("keep", [[], [(20.0, 30.0)], [(11.0, 11.2)], [(10.0, 20.0)], [(5.0, 12.0), (12.0, 25.0)]],
                         ids=["empty", "outside", "too-short", "everything", "everything-touching"])
def test_normalise_keep_falls_back_to_the_whole_clip(keep) -> None:
    assert normalise_keep(keep, 10.0, 20.0) == [(10.0, 20.0)]


def test_normalise_keep_ignores_empty_reversed_and_nan_pieces() -> None:
    keep = [(3.0, 3.0), (6.0, 4.0), (float("nan"), 5.0), (1.0, 2.0)]
    assert normalise_keep(keep, 0.0, 10.0) == [(1.0, 2.0)]


def test_normalise_keep_snaps_to_frames() -> None:
    assert normalise_keep([(0.013, 3.03), (6.021, 8.99)], 0.0, 9.0, fps=25) == [(0.0, 3.04), (6.04, 9.0)]
    # Snapping can make pieces touch: they merge.
    assert normalise_keep([(0.0, 2.99), (3.01, 5.0)], 0.0, 9.0, fps=25) == [(0.0, 5.0)]
    # Pieces stay within the frames inside an off-grid clip; covering all of them is no splice.
    assert normalise_keep([(0.0, 3.0), (6.0, 9.0)], 0.5, 8.7, fps=25) == [(0.52, 3.0), (6.0, 8.68)]
    assert normalise_keep([(0.0, 9.0)], 0.5, 8.7, fps=25) == [(0.5, 8.7)]


def test_normalise_keep_rejects_a_bad_clip_range() -> None:
    with pytest.raises(ValueError):
        normalise_keep([(1.0, 2.0)], 5.0, 5.0)


# ------------------------------------------------------------------------------ remapping


def test_remap_time() -> None:
    keep = [(10.0, 13.0), (16.0, 19.0)]
    assert remap_time(10.0, keep) == 0.0
    assert remap_time(12.5, keep) == pytest.approx(2.5)
    assert remap_time(13.0, keep) == pytest.approx(3.0)
    assert remap_time(16.0, keep) == pytest.approx(3.0)
    assert remap_time(17.5, keep) == pytest.approx(4.5)
    assert remap_time(19.0, keep) == pytest.approx(6.0)
    for cut in (9.99, 14.0, 15.99, 19.01):
        assert remap_time(cut, keep) is None


def test_remap_words() -> None:
    keep = [(10.0, 13.0), (16.0, 19.0)]
    words = [
        Word("before", 9.0, 9.5),        # outside the clip
        Word("straddles-in", 9.8, 10.3),  # clipped to the start
        Word("kept", 11.0, 11.4),
        Word("straddles-out", 12.8, 13.4),  # clipped at the cut
        Word("removed", 14.0, 14.5),      # the interviewer's: gone
        Word("late", 15.9, 16.2),         # clipped after the cut
        Word("shifted", 17.0, 17.5),      # 3 s removed before it
        Word("instant", 18.0, 18.0),
        Word("across", 12.9, 16.1),       # spans the whole removed range
        Word("after", 19.5, 20.0),
    ]
    got = {w.text: (round(w.start, 6), round(w.end, 6)) for w in remap_words(words, keep)}
    assert got == {
        "straddles-in": (0.0, 0.3),
        "kept": (1.0, 1.4),
        "straddles-out": (2.8, 3.0),
        "late": (3.0, 3.2),
        "shifted": (4.0, 4.5),
        "instant": (5.0, 5.0),
        "across": (2.9, 3.1),
    }


def test_remapped_words_caption_the_spliced_clip() -> None:
    """The remapped words fit the rendered range [0, kept length] that render_clip is given."""
    keep = normalise_keep([(100.0, 103.0), (106.0, 109.0)], 100.0, 109.0)
    words = [Word(f"w{i}", 100.0 + i * 0.5, 100.0 + i * 0.5 + 0.4) for i in range(18)]
    remapped = remap_words(words, keep)
    assert kept_length(keep) == pytest.approx(6.0)
    assert [w.text for w in remapped] == [f"w{i}" for i in (*range(6), *range(12, 18))]
    assert remapped[0].start == pytest.approx(0.0)
    assert remapped[6].start == pytest.approx(3.0)  # w12 was at 106.0, right after the cut
    assert all(0 <= w.start <= w.end <= 6.0 for w in remapped)


# ------------------------------------------------------------------------- splice_source


@needs_ffmpeg
# "inner" seeks: decoding starts a second before the first piece.
@pytest.mark.parametrize("keep", [[(0.0, 3.0), (6.0, 9.0)], [(2.0, 3.0), (6.0, 7.0)]], ids=["edges", "inner"])
@pytest.mark.parametrize("suffix", [".mov", ".mkv", ".mp4"])
def test_splice_is_frame_and_sample_accurate(tones: Path, tmp_path: Path, keep, suffix: str) -> None:
    out = splice_source(tones, keep, tmp_path / f"spliced{suffix}")
    total = kept_length(keep)
    info = probe(out)
    assert info.has_audio
    assert (info.width, info.height, info.frame_rate) == (320, 240, RATE)
    assert info.duration_seconds == pytest.approx(total, abs=1 / RATE + 0.03)  # + AAC's last frame

    # Every kept frame, in order, and nothing else: frame k of the splice is source frame
    # expected[k], not its neighbour (testsrc2 moves every frame).
    source_frames = decode_frames(tones, (320, 240))
    frames = decode_frames(out, (320, 240))
    expected = [n for s, e in keep for n in range(round(s * RATE), round(e * RATE))]
    assert len(frames) == len(expected) == round(total * RATE)
    for k in (0, 1, len(expected) // 2 - 1, len(expected) // 2, len(expected) // 2 + 1, len(expected) - 1):
        n = expected[k]
        errors = {m: float(np.abs(frames[k] - source_frames[m]).mean()) for m in (n - 1, n, n + 1)
                  if 0 <= m < len(source_frames)}
        assert min(errors, key=errors.get) == n, (k, errors)
        assert errors[n] < 2.0

    audio = decode_audio(out)
    assert len(audio) / SAMPLE_RATE == pytest.approx(total, abs=0.05)
    half = int(total / 2 * SAMPLE_RATE)
    for middle in (half // 2, half + half // 2):
        window = audio[middle - SAMPLE_RATE // 4 : middle + SAMPLE_RATE // 4]
        assert peak_hz(window) == pytest.approx(440, abs=4)
    # The 880 Hz turn is gone, cut edges included (in the source it has 3x the energy of
    # the 440 Hz parts; what is left is the AAC source's pre-echo just before the cut).
    assert band(audio, 880) < 0.005 * band(audio, 440)


@needs_ffmpeg
def test_spliced_file_renders_as_the_clip(tones: Path, tmp_path: Path) -> None:
    """The intended flow: normalise (frame-snapped), splice, remap the words, render 0..kept length."""
    clip_start, clip_end = 0.5, 8.7
    keep = normalise_keep([(0.013, 3.01), (5.99, 9.0)], clip_start, clip_end, fps=probe(tones).frame_rate)
    assert keep == [(0.52, 3.0), (6.0, 8.68)]  # on frames, inside the clip
    words = [Word(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(18)]
    spliced = splice_source(tones, keep, tmp_path / "spliced.mov")
    assert len(decode_frames(spliced, (320, 240))) == round(kept_length(keep) * RATE)
    width, height = output_size("9:16", 256)
    result = render_clip(RenderRequest(
        source_path=spliced, clip_index=1, start_seconds=0.0, end_seconds=kept_length(keep), aspect_ratio="9:16",
        output_width=width, output_height=height, encoder="libx264", x264_preset="ultrafast",
        work_dir=tmp_path / "work", caption_preset="karaoke", words=remap_words(words, keep),
    ))  # fmt: skip
    assert result.info["duration_seconds"] == pytest.approx(kept_length(keep), abs=1 / RATE)
    assert result.info["captions"] == "karaoke"
    assert probe(result.files[0].path).has_audio


@needs_ffmpeg
def test_splice_a_source_without_audio(tmp_path: Path) -> None:
    src = make_sample_video(tmp_path / "silent.mp4", seconds=6, audio=False)
    out = splice_source(src, [(0.4, 2.0), (4.0, 5.0)], tmp_path / "spliced.mov")
    info = probe(out)
    assert not info.has_audio
    assert info.duration_seconds == pytest.approx(2.6, abs=1 / 25)
    assert len(decode_frames(out, (320, 240))) == round(2.6 * 25)


@needs_ffmpeg
def test_splice_turns_a_rotated_source_upright(tmp_path: Path) -> None:
    stored = make_sample_video(tmp_path / "stored.mp4", seconds=4, audio=True)
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(stored), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    assert (probe(rotated).rotation, probe(rotated).width, probe(rotated).height) == (90, 240, 320)

    out = splice_source(rotated, [(0.0, 1.0), (2.0, 3.0)], tmp_path / "spliced.mov")
    info = probe(out)
    assert (info.rotation, info.width, info.height) == (0, 240, 320)
    # Stored upright: the spliced frames are the source's frames as displayed.
    shown = decode_frames(rotated, (240, 320))
    spliced = decode_frames(out, (240, 320))
    assert len(spliced) == 50
    assert np.abs(spliced[0] - shown[0]).mean() < 2.0
    assert np.abs(spliced[25] - shown[50]).mean() < 2.0


@needs_ffmpeg
def test_splice_cancelled_leaves_nothing(tones: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    out = tmp_path / "spliced.mov"
    with pytest.raises(Cancelled):
        splice_source(tones, [(0.0, 3.0), (6.0, 9.0)], out, cancel=cancel)
    assert not out.exists()


@needs_ffmpeg
def test_splice_failure_is_reported(tmp_path: Path) -> None:
    src = make_sample_video(tmp_path / "src.mp4", seconds=2, audio=False)
    with pytest.raises(FfmpegFailed):
        splice_source(src, [(0.0, 1.0)], tmp_path / "spliced.no_such_container")
    assert not (tmp_path / "spliced.no_such_container").exists()


def test_splice_rejects_bad_keep(tmp_path: Path) -> None:
    for keep in ([], [(2.0, 1.0)], [(0.0, 2.0), (1.0, 3.0)]):
        with pytest.raises(ValueError):
            splice_source(tmp_path / "unused.mp4", keep, tmp_path / "out.mov")
