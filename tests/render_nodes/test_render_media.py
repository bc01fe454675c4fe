"""Real-ffmpeg tests for render_nodes.ffmpeg and render_nodes.pipeline (no mocks)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reelfarm.geometry import STANDARD_SIZES, centre_crop, output_size
from reelfarm.media import MediaError, probe
from render_nodes.ffmpeg import Cancelled, FfmpegFailed, encoder_works, probe_encoders, run_ffmpeg
from render_nodes.pipeline import RenderRequest, render_clip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def make_source(path: Path, *, size: str = "320x240", seconds: float = 4, audio: bool = True) -> Path:
    """A small H.264/AAC mp4 without faststart, so its moov atom sits at the end."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


def ffprobe_json(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "src.mp4")


def request(src: Path, work_dir: Path, aspect: str, *, start: float = 1.0, end: float = 3.0,
            height: int = 256, preset: str = "ultrafast") -> RenderRequest:
    width, height = output_size(aspect, height)
    return RenderRequest(
        source_path=src, clip_index=3, start_seconds=start, end_seconds=end, aspect_ratio=aspect,
        output_width=width, output_height=height, encoder="libx264", x264_preset=preset, work_dir=work_dir,
    )


# ---------------------------------------------------------------------------- probe


def test_probe_reports_stream_fields(source: Path) -> None:
    info = probe(source)
    assert (info.width, info.height) == (320, 240)
    assert info.duration_seconds == pytest.approx(4.0, abs=0.1)
    assert info.frame_rate == pytest.approx(25.0)
    assert info.codec == "h264"
    assert info.has_audio
    assert info.bitrate_kbps is not None and info.bitrate_kbps > 0
    assert "mp4" in info.format_name
    assert info.raw["format"]["filename"] == str(source)


def test_probe_without_audio(tmp_path: Path) -> None:
    info = probe(make_source(tmp_path / "silent.mp4", seconds=1, audio=False))
    assert not info.has_audio


@pytest.mark.parametrize("content", [b"", random.Random(0).randbytes(64 * 1024)], ids=["empty", "random"])
def test_probe_rejects_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError) as exc_info:
        probe(path)
    message = str(exc_info.value)
    assert message.strip()
    assert "not a decodable video" in message or "no video stream" in message


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="No such file"):
        probe(tmp_path / "missing.mp4")


# ------------------------------------------------------------------------ geometry


def test_output_size_standard_and_scaled() -> None:
    for aspect, size in STANDARD_SIZES.items():
        assert output_size(aspect) == size
    assert output_size("9:16", 1280) == (720, 1280)
    assert output_size("1:1", 1280) == (1280, 1280)
    assert output_size("4:5", 1280) == (1024, 1280)
    assert output_size("16:9", 720) == (1280, 720)
    assert output_size("9:16", 255) == (144, 256)
    with pytest.raises(ValueError):
        output_size("3:2")


def test_centre_crop_all_aspects() -> None:
    assert centre_crop(1920, 1080, "16:9") == (1920, 1080, 0, 0)
    assert centre_crop(1920, 1080, "9:16") == (606, 1080, 656, 0)
    assert centre_crop(1920, 1080, "1:1") == (1080, 1080, 420, 0)
    assert centre_crop(1920, 1080, "4:5") == (864, 1080, 528, 0)
    # A portrait source needs top/bottom trimmed for landscape output.
    assert centre_crop(1080, 1920, "16:9") == (1080, 606, 0, 656)
    for aspect in STANDARD_SIZES:
        w, h, x, y = centre_crop(321, 241, aspect)
        assert w % 2 == 0 and h % 2 == 0
        assert x + w <= 321 and y + h <= 241
        assert abs((321 - w) / 2 - x) < 2 and abs((241 - h) / 2 - y) < 2  # offsets are kept even
    with pytest.raises(ValueError):
        centre_crop(100, 100, "2:1")


# ---------------------------------------------------------------------- render_clip


@pytest.mark.parametrize("aspect", list(STANDARD_SIZES))
def test_render_clip_each_aspect(source: Path, tmp_path: Path, aspect: str) -> None:
    req = request(source, tmp_path / "work", aspect)
    events: list[tuple[str, float]] = []
    result = render_clip(req, on_progress=lambda stage, pct: events.append((stage, pct)))

    clip, poster = result.files
    assert (clip.name, clip.content_type) == ("clip_03.mp4", "video/mp4")
    assert (poster.name, poster.content_type) == ("clip_03.jpg", "image/jpeg")
    assert clip.path == req.work_dir / "clip_03.mp4"

    meta = ffprobe_json(clip.path)
    video = next(s for s in meta["streams"] if s["codec_type"] == "video")
    audio = [s for s in meta["streams"] if s["codec_type"] == "audio"]
    assert (video["width"], video["height"]) == (req.output_width, req.output_height)
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert float(meta["format"]["duration"]) == pytest.approx(2.0, abs=0.15)
    assert audio and audio[0]["codec_name"] == "aac" and audio[0]["sample_rate"] == "48000"

    poster_meta = ffprobe_json(poster.path)
    assert poster_meta["streams"][0]["codec_name"] == "mjpeg"
    assert (poster_meta["streams"][0]["width"], poster_meta["streams"][0]["height"]) == (
        req.output_width, req.output_height,
    )
    assert poster.path.read_bytes()[:2] == b"\xff\xd8"

    percents = [pct for _, pct in events]
    assert percents == sorted(percents)
    assert {stage for stage, _ in events} >= {"probing", "rendering", "poster"}
    assert percents[-1] >= 90

    info = result.info
    json.dumps(info)
    assert (info["width"], info["height"]) == (req.output_width, req.output_height)
    assert info["duration_seconds"] == pytest.approx(2.0, abs=0.15)
    assert info["source"] == {"width": 320, "height": 240, "duration_seconds": pytest.approx(4.0, abs=0.1)}
    assert set(info["crop"]) == {"w", "h", "x", "y"}
    assert info["encoder"] == "libx264"


def test_render_clip_clamps_end_and_handles_silent_source(tmp_path: Path) -> None:
    src = make_source(tmp_path / "silent.mp4", seconds=2, audio=False)
    result = render_clip(request(src, tmp_path / "work", "1:1", start=1.0, end=60.0, height=128))
    assert result.info["end_seconds"] == pytest.approx(2.0, abs=0.1)
    assert result.info["duration_seconds"] == pytest.approx(1.0, abs=0.15)
    streams = ffprobe_json(result.files[0].path)["streams"]
    assert [s["codec_type"] for s in streams] == ["video"]


def test_render_clip_rejects_empty_range(source: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="empty clip range"):
        render_clip(request(source, tmp_path / "work", "9:16", start=5.0, end=6.0))


def test_render_clip_truncated_source_fails(source: Path, tmp_path: Path) -> None:
    # Without faststart the moov atom is at the end, so the first 30% is undecodable.
    data = source.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(MediaError) as exc_info:
        render_clip(request(broken, tmp_path / "work", "9:16"))
    assert "not a decodable video" in str(exc_info.value)
    assert not (tmp_path / "work" / "clip_03.mp4").exists()


def test_render_clip_cancel(tmp_path: Path) -> None:
    src = make_source(tmp_path / "long.mp4", size="160x120", seconds=20, audio=False)
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    req = request(src, tmp_path / "work", "9:16", start=0.0, end=20.0, height=1920, preset="veryfast")
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(Cancelled):
            render_clip(req, cancel=cancel)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 8
    assert not (req.work_dir / "clip_03.mp4").exists()


def test_render_clip_cancelled_before_start(source: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        render_clip(request(source, tmp_path / "work", "9:16"), cancel=cancel)


# ----------------------------------------------------------------------- run_ffmpeg


def test_run_ffmpeg_failure_has_reason(tmp_path: Path) -> None:
    with pytest.raises(FfmpegFailed) as exc_info:
        run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")], expected_duration=1.0)
    err = exc_info.value
    assert err.returncode != 0
    assert "No such file or directory" in err.reason
    assert 0 < len(err.reason) <= 500
    assert err.reason in str(err)


def test_run_ffmpeg_progress_reaches_100(tmp_path: Path) -> None:
    seen: list[float] = []
    run_ffmpeg(
        ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25:duration=2", "-f", "null", "-"],
        expected_duration=2.0,
        on_progress=seen.append,
    )
    assert seen and seen == sorted(seen)
    assert all(0 <= p <= 100 for p in seen)
    assert seen[-1] == 100.0


# ------------------------------------------------------------------------ encoders


def test_encoder_probing() -> None:
    assert encoder_works("libx264")
    assert not encoder_works("no_such_encoder")
    assert "libx264" in probe_encoders()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="machine may have an NVIDIA GPU")
def test_nvenc_unusable_without_gpu() -> None:
    assert not encoder_works("h264_nvenc")
