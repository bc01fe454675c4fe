"""One video through the whole backbone: API -> database -> scheduler -> gRPC -> Ray node -> storage."""

from __future__ import annotations

import hashlib

import pytest
from conftest import ffprobe_json, make_video

from reelfarm.client import ReelFarmClient


def _video_stream(info: dict) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


@pytest.mark.parametrize(
    "aspect, size", [("9:16", (144, 256)), ("1:1", (256, 256)), ("4:5", (204, 256)), ("16:9", (456, 256))]
)
def test_upload_renders_clip_with_requested_aspect(client: ReelFarmClient, sample_video, tmp_path, aspect, size):
    created = client.upload(sample_video, {"mode": "none", "aspectRatio": aspect})
    assert created["originalName"] == "sample.mp4"
    assert created["sizeBytes"] == sample_video.stat().st_size
    assert created["wsUrl"] == f"/ws?jobId={created['jobId']}"
    assert created["options"]["aspectRatio"] == aspect

    job = client.wait(created["jobId"], timeout=120)
    assert job["status"] == "completed", job
    assert job["progress_percent"] == 100
    assert job["clipCount"] == 1

    manifest = client.download_all(created["jobId"], tmp_path / "out")
    assert manifest["clipCount"] == 1
    clip = manifest["clips"][0]
    assert clip["aspectRatio"] == aspect
    assert (clip["width"], clip["height"]) == size
    assert clip["encoder"] == "libx264"
    assert {f["filename"] for f in clip["files"]} == {"clip_01.mp4", "clip_01.jpg"}

    rendered = ffprobe_json(tmp_path / "out" / "clip_01.mp4")
    video = _video_stream(rendered)
    assert (video["width"], video["height"]) == size
    assert abs(float(rendered["format"]["duration"]) - 4.0) < 0.2
    assert any(s["codec_type"] == "audio" and s["codec_name"] == "aac" for s in rendered["streams"])
    poster = _video_stream(ffprobe_json(tmp_path / "out" / "clip_01.jpg"))
    assert (poster["codec_name"], poster["width"], poster["height"]) == ("mjpeg", *size)

    # Every manifest entry's SHA-256 matches the bytes the API serves.
    for entry in clip["files"]:
        served = client.http.get(f"/api/clips/{created['jobId']}/{entry['filename']}")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == entry["sha256"]
        assert len(served.content) == entry["size_bytes"]
        assert served.headers["etag"] == f'"{entry["sha256"]}"'
        assert "immutable" in served.headers["cache-control"]


def test_ai_mode_without_speech_spreads_the_clips(client: ReelFarmClient, tmp_path):
    # No audio at all: nothing to transcribe, so the clips are spread evenly ("uniform").
    source = make_video(tmp_path / "long.mp4", seconds=30, size="160x120", audio=False)
    created = client.upload(source, {"numClips": 3, "clipLength": "short", "aspectRatio": "1:1"})
    job = client.wait(created["jobId"], timeout=120)
    assert job["status"] == "completed", job
    assert [t["index"] for t in job["tasks"] if t["kind"] == "render"] == [1, 2, 3]
    assert {t["kind"] for t in job["tasks"]} == {"transcribe", "analyze", "render"}
    manifest = client.manifest(created["jobId"])
    assert manifest["selection"] == "uniform"
    clips = manifest["clips"]
    assert [c["index"] for c in clips] == [1, 2, 3]
    for earlier, later in zip(clips, clips[1:]):
        assert earlier["end"] <= later["start"]  # no overlap
    for clip in clips:
        assert 3.0 <= clip["duration"] <= 15.0


def test_trim_options_cut_the_source(client: ReelFarmClient, sample_video, tmp_path):
    created = client.upload(sample_video, {"mode": "none", "trimStart": 1.0, "trimEnd": 3.0})
    done = client.wait(created["jobId"], timeout=120)
    assert done["status"] == "completed", (done["error"], done.get("tasks"))
    manifest = client.download_all(created["jobId"], tmp_path / "out")
    assert manifest["clips"][0]["start"] == pytest.approx(1.0)
    assert float(ffprobe_json(tmp_path / "out" / "clip_01.mp4")["format"]["duration"]) == pytest.approx(2.0, abs=0.15)


def test_jobs_list_newest_first_and_clips_404_until_completed(client: ReelFarmClient, sample_video):
    first = client.upload(sample_video, {"mode": "none"})["jobId"]
    second = client.upload(sample_video, {"mode": "none"})["jobId"]
    early = client.http.get(f"/api/clips/{second}")
    listed = [j["id"] for j in client.http.get("/api/jobs").json()["jobs"]]
    assert listed[:2] == [second, first]
    if client.job(second)["status"] != "completed":
        assert early.status_code == 404 and "not ready" in early.json()["error"]
    client.wait(first, timeout=120)
    client.wait(second, timeout=120)
    assert client.http.get(f"/api/clips/{second}").status_code == 200


def test_captions_and_reframing_reach_the_manifest(client: ReelFarmClient, sample_video, tmp_path):
    words = [{"text": w, "start": 0.5 + 0.5 * i, "end": 0.9 + 0.5 * i} for i, w in enumerate("one two three".split())]
    created = client.upload(sample_video, {"mode": "none", "captionPreset": "karaoke", "transcript": words})
    job = client.wait(created["jobId"], timeout=120)
    assert job["status"] == "completed", job
    manifest = client.download_all(created["jobId"], tmp_path / "out")
    clip = manifest["clips"][0]
    assert {f["filename"] for f in clip["files"]} == {"clip_01.mp4", "clip_01.jpg", "clip_01.ass"}
    assert clip["captionsUrl"].endswith("/clip_01.ass")
    track = (tmp_path / "out" / "clip_01.ass").read_text()
    assert "\\k" in track and "three" in track
    quality = clip["quality"]
    assert quality["captions"] == "karaoke"
    assert quality["detector"] == "blazeface-full-range-sparse" and quality["encoder"] == "libx264"
    # testsrc2 has no face: one shot, a centred crop, and the manifest says so.
    assert [s["fallback"] for s in quality["shots"]] == ["centre"]
    assert quality["face_coverage"] is None


def test_a_bad_transcript_is_a_400_naming_the_field(client: ReelFarmClient, sample_video):
    response = client.http.post(
        "/api/upload",
        files={"video": ("sample.mp4", sample_video.read_bytes(), "video/mp4")},
        data={"options": '{"transcript": [{"text": "hi", "start": 2.0, "end": 1.0}]}'},
    )
    assert response.status_code == 400
    assert "options.transcript.0" in response.json()["error"]
