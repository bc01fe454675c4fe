"""A campaign video composed for real (render_nodes/campaigns/compose.py), judged by ffprobe and pixels.

The screenshots have shapes in their upper half and a flat colour below, so in the caption band
(whatever the pans and zooms show) anything that is not that colour is a caption. Voices are
espeak-ng speech, one WAV per sentence joined with pauses, so every sentence's span is known
(a tone stands in where espeak-ng is not installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from reelfarm.media import MediaError, probe
from render_nodes.campaigns import compose
from render_nodes.campaigns.compose import (
    END_SECONDS,
    FPS,
    INTRO_SECONDS,
    ComposedVideo,
    break_lines,
    caption_pages,
    compose_video,
    find_font,
    font_family,
)
from render_nodes.campaigns.types import SpokenSentence, VoiceTrack
from render_nodes.captions import caption_area
from render_nodes.ffmpeg import Cancelled

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
needs_cjk_font = pytest.mark.skipif(
    shutil.which("fc-list") is None
    or "Noto Sans CJK JP" not in subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, check=False).stdout,
    reason="fonts-noto-cjk not installed",
)

W, H = 1080, 1920
PAPER = (240, 240, 235)  # the screenshots' lower half
RATE = 22050
PAUSE = 0.3

EN = [("Meet ReelFarm.", "Meet ReelFarm."),
      ("Clips with captions, in minutes, for every platform.", "Clips with captions, in minutes.")]  # fmt: skip
# Shown in kanji, spoken in kana (espeak-ng reads kana only); long enough to need three lines.
JA = [("このページでは、新しいサービスの特長と料金プランを分かりやすくご紹介します。",
       "あたらしいさーびすをごしょうかいします。")]  # fmt: skip


# --------------------------------------------------------------------------- fixtures


def _screenshots(folder: Path) -> list[Path]:
    from PIL import Image, ImageDraw

    paths = []
    for i, colour in enumerate([(200, 60, 60), (60, 160, 80), (50, 90, 200)]):
        image = Image.new("RGB", (W, H), PAPER)
        draw = ImageDraw.Draw(image)
        draw.rectangle([80, 150, 1000, 800], fill=colour)
        draw.ellipse([300, 250, 780, 730], fill=(255, 255, 255))
        draw.rectangle([200, 850, 880, 900], fill=(40, 40, 40))  # a "heading" bar, still above the band
        paths.append(folder / f"shot{i}.png")
        image.save(paths[-1])
    return paths


def _speech(text: str, language: str, path: Path) -> bytes:
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", language, "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path)) as wav:
            assert wav.getframerate() == RATE and wav.getsampwidth() == 2 and wav.getnchannels() == 1
            return wav.readframes(wav.getnframes())
    t = np.arange(int(RATE * (0.5 + 0.06 * len(text)))) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def _voice(folder: Path, language: str, lines: list[tuple[str, str]]) -> VoiceTrack:
    audio, sentences, t = b"", [], 0.0
    for shown, spoken in lines:
        pcm = _speech(spoken, language, folder / "sentence.wav")
        seconds = len(pcm) / 2 / RATE
        sentences.append(SpokenSentence(shown, t, t + seconds))
        audio += pcm + b"\0\0" * int(PAUSE * RATE)
        t += seconds + PAUSE
    path = folder / f"voice_{language}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(audio)
    return VoiceTrack(path=path, language=language, engine="espeak-ng", duration_seconds=len(audio) / 2 / RATE,
                      sentences=tuple(sentences))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compose")


@pytest.fixture(scope="module")
def shots(workdir: Path) -> list[Path]:
    return _screenshots(workdir)


@pytest.fixture(scope="module")
def voice_en(workdir: Path) -> VoiceTrack:
    return _voice(workdir, "en", EN)


@pytest.fixture(scope="module")
def english(shots, voice_en, workdir) -> tuple[ComposedVideo, list[float]]:
    progress: list[float] = []
    video = compose_video(screenshots=shots, voice=voice_en, title="ReelFarm: long videos into short clips",
                          domain="reelfarm.example.com", language="en", out_dir=workdir / "en",
                          x264_preset="ultrafast", on_progress=progress.append)  # fmt: skip
    return video, progress


@pytest.fixture(scope="module")
def english_uncaptioned(shots, voice_en, workdir) -> ComposedVideo:
    silent = VoiceTrack(voice_en.path, "en", voice_en.engine, voice_en.duration_seconds, ())
    return compose_video(screenshots=shots, voice=silent, title="ReelFarm: long videos into short clips",
                         domain="reelfarm.example.com", language="en", out_dir=workdir / "en-bare",
                         x264_preset="ultrafast")  # fmt: skip


@pytest.fixture(scope="module")
def japanese(shots, workdir) -> tuple[ComposedVideo, VoiceTrack]:
    voice = _voice(workdir, "ja", JA)
    video = compose_video(screenshots=shots[:1], voice=voice, title="リールファーム：長い動画を短いクリップに",
                          domain="reelfarm.example.jp", language="ja", out_dir=workdir / "ja",
                          x264_preset="ultrafast")  # fmt: skip
    return video, voice


def frame_at(path: Path, seconds: float) -> np.ndarray:
    """The frame shown at ``seconds``, as H x W x 3 RGB."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vf", f"select='gte(t\\,{seconds:.3f})'",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(H, W, 3).astype(np.int16)


def caption_band(frame: np.ndarray) -> np.ndarray:
    _, y, _, h = caption_area(W, H)
    return frame[y:y + h]


def ink(band: np.ndarray) -> np.ndarray:
    """Pixels of the band that are not the screenshots' flat paper colour."""
    return (np.abs(band - np.array(PAPER)).max(axis=2) > 40)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to compression noise: under 0.1% of pixels differ visibly."""
    return (np.abs(a - b).max(axis=2) > 30).mean() < 0.001


# --------------------------------------------------------------------------- renders


@needs_ffmpeg
def test_video_is_vertical_h264_aac_timed_intro_voice_end(english, voice_en):
    video, progress = english
    info = probe(video.video)
    assert (info.width, info.height, info.codec, info.has_audio) == (1080, 1920, "h264", True)
    expected = INTRO_SECONDS + voice_en.duration_seconds + END_SECONDS
    assert abs(info.duration_seconds - expected) <= 0.2
    assert abs(video.duration_seconds - info.duration_seconds) < 1e-6 and (video.width, video.height) == (1080, 1920)
    streams = {s["codec_type"]: s for s in info.raw["streams"]}
    assert streams["audio"]["codec_name"] == "aac" and len(info.raw["streams"]) == 2
    assert abs(float(streams["video"]["duration"]) - expected) <= 0.2
    assert abs(float(streams["audio"]["duration"]) - expected) <= 0.2
    head = video.video.read_bytes()[:1 << 16]
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    assert moov >= 0 and (mdat == -1 or moov < mdat)  # +faststart: the index comes first
    from PIL import Image

    with Image.open(video.poster) as poster:
        assert poster.format == "JPEG" and poster.size == (1080, 1920)
    assert progress and progress == sorted(progress) and progress[-1] == 100.0


@needs_ffmpeg
def test_voice_is_loudness_normalised_and_plays_over_the_scenes_only(english):
    video, _ = english
    summary = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(video.video), "-map", "0:a", "-af", "ebur128", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    integrated = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", summary)[-1])
    assert -16.5 <= integrated <= -11.5
    # The intro is silent: the voice starts with the first scene.
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(video.video), "-t", f"{INTRO_SECONDS - 0.1}",
                          "-f", "s16le", "-ac", "1", "-ar", "8000", "-"], capture_output=True, check=True).stdout
    assert np.abs(np.frombuffer(pcm, "<i2")).max() < 100


@needs_ffmpeg
def test_captions_show_while_each_sentence_is_spoken(english, english_uncaptioned, voice_en):
    video, _ = english
    for sentence in voice_en.sentences:
        t = INTRO_SECONDS + (sentence.start + sentence.end) / 2
        captioned, bare = frame_at(video.video, t), frame_at(english_uncaptioned.video, t)
        differs = np.abs(caption_band(captioned) - caption_band(bare)).max(axis=2) > 40
        assert differs.sum() > 5000, f"no caption for {sentence.text!r}"
        assert ink(caption_band(captioned)).sum() > 5000 and ink(caption_band(bare)).sum() == 0
        # Nothing else changes: the captions stay in their band.
        top = caption_area(W, H)[1]
        assert same_picture(captioned[: top - 1], bare[: top - 1])
    # No caption on the title card: the two renders agree there.
    assert same_picture(frame_at(video.video, 1.0), frame_at(english_uncaptioned.video, 1.0))


@needs_ffmpeg
@needs_cjk_font
def test_japanese_caption_lines_are_broken_to_fit_the_frame(japanese):
    video, voice = japanese
    sentence = voice.sentences[0]
    band = ink(caption_band(frame_at(video.video, INTRO_SECONDS + (sentence.start + sentence.end) / 2)))
    rows, cols = np.nonzero(band)
    assert len(rows) > 20000, "no caption drawn"
    margin = caption_area(W, H)[0]
    # Unbroken, this sentence would be ~2400 px wide: libass would let it run off both edges.
    assert cols.min() >= margin - 2 and cols.max() <= W - margin + 2
    line_height = find_font(font_family("ja")).font_size(compose._CAPTION_EM)
    assert rows.max() - rows.min() > 2.5 * line_height  # three lines
    # White text on the dark box: the glyphs are drawn (tofu would be a few thin rectangles).
    frame = caption_band(frame_at(video.video, INTRO_SECONDS + (sentence.start + sentence.end) / 2))
    box = frame[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert (box.min(axis=2) > 200).sum() > 15000


@needs_ffmpeg
def test_cancel_stops_the_render_and_leaves_nothing(shots, voice_en, tmp_path):
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        compose_video(screenshots=shots, voice=voice_en, title="t", domain="example.com", language="en",
                      out_dir=tmp_path, x264_preset="ultrafast", cancel=cancel,
                      on_progress=lambda pct: cancel.set())  # fmt: skip
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.jpg"))


def test_bad_arguments_are_refused(shots, voice_en, tmp_path):
    common = {"voice": voice_en, "title": "t", "domain": "example.com", "language": "en", "out_dir": tmp_path}
    with pytest.raises(ValueError):
        compose_video(screenshots=[], **common)
    with pytest.raises(ValueError):
        compose_video(screenshots=shots, encoder="mpeg4", **common)
    with pytest.raises(MediaError, match="missing input"):
        compose_video(screenshots=[tmp_path / "nope.png"], **common)
    with pytest.raises(ValueError):
        compose_video(screenshots=shots, **{**common, "language": "../x"})


# --------------------------------------------------------------------------- layout units


def width_by_cells(text: str) -> float:
    """A full-width character is 2 cells, anything else 1."""
    return sum(2 if compose._wide(ch) else 1 for ch in text)


def test_japanese_breaks_between_characters_but_not_before_closing_punctuation():
    text = "今日は、とても良い天気です。「明日」も晴れるでしょう。ReelFarmで動画を作りましょう！"
    for width in range(10, 40):
        lines = break_lines(text, max_width=width, measure=width_by_cells, language="ja")
        assert "".join(lines) == text
        assert all(width_by_cells(line) <= width for line in lines)
        assert not any(line[0] in compose._NO_BREAK_BEFORE for line in lines)
        assert not any(line[-1] in compose._NO_BREAK_AFTER for line in lines)
        assert all("ReelFarm" in line for line in lines if "Reel" in line)  # a Latin word stays whole


def test_latin_text_breaks_at_spaces_and_balances_lines():
    text = "Upload a long video and get vertical clips with captions in minutes"
    lines = break_lines(text, max_width=40, measure=len, language="en")
    assert " ".join(lines) == text and all(len(line) <= 40 for line in lines)
    assert len(lines) == 2 and abs(len(lines[0]) - len(lines[1])) <= 8  # not 40 + 26
    # A word wider than a line is cut rather than left to run off the frame.
    url = "https://example.com/a/very/long/path/that/never/ends"
    assert all(len(line) <= 20 for line in break_lines(url, max_width=20, measure=len, language="en"))


def test_korean_breaks_at_spaces():
    text = "지금 바로 무료로 시작하세요 새로운 서비스를 소개합니다"
    lines = break_lines(text, max_width=24, measure=width_by_cells, language="ko")
    assert " ".join(lines) == text and len(lines) > 1
    assert all(width_by_cells(line) <= 24 for line in lines)


@needs_cjk_font
def test_lines_measured_in_the_real_font_fit_the_caption_width():
    font = find_font("Noto Sans CJK JP")
    size = font.font_size(compose._CAPTION_EM)
    measure = font.measure(size)
    text = JA[0][0] * 2
    lines = break_lines(text, max_width=880, measure=measure, language="ja")
    assert "".join(lines) == text and len(lines) >= 4
    assert all(measure(line) <= 880 for line in lines)
    # Full-width characters are one em each in Noto Sans CJK.
    assert measure("あいうえお") == pytest.approx(5 * size * font.em_per_size, rel=0.01)
    assert [len(page) for page in caption_pages(lines, 3)] in ([2, 2], [3, 2], [2, 2, 1], [3, 3])


def test_caption_pages_fill_evenly():
    assert [len(p) for p in caption_pages(list("abcde"), 3)] == [3, 2]
    assert [len(p) for p in caption_pages(list("abcdefg"), 3)] == [3, 2, 2]
    assert caption_pages([], 3) == []


def test_fonts_per_language():
    assert font_family("ja") == "Noto Sans CJK JP" and font_family("ko") == "Noto Sans CJK KR"
    assert font_family("zh") == "Noto Sans CJK SC" and font_family("zh-TW") == "Noto Sans CJK TC"
    assert font_family("en") == font_family("pt-BR") == "DejaVu Sans"
    with pytest.raises(MediaError, match="not installed"):
        find_font("No Such Family Anywhere")


def test_scenes_last_about_five_seconds_and_cut_between_sentences():
    sentences = [SpokenSentence("a", 0.0, 4.6), SpokenSentence("b", 5.0, 11.0), SpokenSentence("c", 11.3, 14.9)]
    plan = compose._plan(2, round(15 * FPS), sentences)
    scenes = [s for s in plan if s.kind == "scene"]
    assert [s.kind for s in (plan[0], plan[-1])] == ["intro", "end"]
    assert len(scenes) == 3 and sum(s.frames for s in scenes) == 15 * FPS
    assert scenes[0].frames == round(4.8 * FPS)  # snapped to the pause between "a" and "b"
    assert [s.shot for s in scenes] == [0, 1, 0]  # two screenshots, cycled
    many = [s.shot for s in compose._plan(10, round(15 * FPS), ()) if s.kind == "scene"]
    assert many == [0, 3, 6]  # spread down the page
