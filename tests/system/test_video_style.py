"""GET /api/v1/videos/{id}/style computes a video's Style DNA when it has none (issue 17).

A real stack (API, scheduler, a render node) and real ffmpeg-made media: the first call asks for
the DNA (202), the scheduler plans one `style` task for it (no job: nothing in the account's jobs
or quota), the node extracts it, and the call then answers 200 with it. One extraction per
source whoever asks: more calls, or a v1 job of the same source before or after the call, add no
second task. A failed extraction is a 422 naming why, once; the next call tries again.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import new_api_key
from sqlalchemy import func, select

from harness.polling import wait_until
from reelfarm.models import Job, StyleExtraction, Task


def make_clip(path: Path, *, seconds: float = 3.0) -> Path:
    """16:9 at 30 fps with one hard cut halfway (ffmpeg's testsrc2, then its HD colour bars: both
    saturated) over a steady 440 Hz tone (a soundtrack, no beats)."""
    half = seconds / 2
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={half}",
                    "-f", "lavfi", "-i", f"smptehdbars=size=320x180:rate=30:duration={half}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0,format=yuv420p[v]",
                    "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
                    str(path)], check=True)  # fmt: skip
    return path


def _v1(client, method: str, path: str, **kwargs) -> httpx.Response:
    return client.http.request(method, f"/api/v1{path}", **kwargs)


def _upload(client, path: Path) -> str:
    response = _v1(client, "POST", "/videos/upload", files={"file": (path.name, path.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    return response.json()["data"]["video_id"]


def _style_when_done(client, video_id: str, timeout: float = 120) -> httpx.Response:
    """Poll the style until it is no longer being extracted (the answer that ended it)."""

    def style() -> httpx.Response:
        return _v1(client, "GET", f"/videos/{video_id}/style")

    return wait_until(lambda: (r := style()).status_code != 202 and r, timeout=timeout, interval=0.2,
                      what=f"video {video_id}'s style extraction to end", describe=lambda: style().text)  # fmt: skip


def _style_tasks(stack, sha256: str) -> list[Task]:
    with stack.session_factory() as s:
        return [t for t in s.scalars(select(Task).where(Task.kind == "style")) if t.spec["source_sha256"] == sha256]


def _extracting(response: httpx.Response, video_id: str) -> None:
    assert response.status_code == 202, response.text
    assert response.json() == {"success": True, "message": "Style is being extracted",
                               "data": {"video_id": video_id, "status": "extracting", "style_json": None}}  # fmt: skip


def test_the_first_call_extracts_the_style_once_then_answers_with_it(client, stack, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    sha256 = hashlib.sha256(clip.read_bytes()).hexdigest()
    video_id = _upload(client, clip)

    # Another account's video is not found, and asks for nothing.
    other = new_api_key(stack.session_factory, account="someone-else")
    theirs = httpx.get(f"{stack.base_url}/api/v1/videos/{video_id}/style", headers={"X-API-Key": other})
    assert theirs.status_code == 404 and theirs.json() == {"success": False, "error": "video not found"}
    with stack.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(StyleExtraction)) == 0

    first, second = (_v1(client, "GET", f"/videos/{video_id}/style") for _ in range(2))
    _extracting(first, video_id)
    _extracting(second, video_id)
    done = _style_when_done(client, video_id)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["success"] is True and body["message"] == "Style retrieved" and body["data"]["video_id"] == video_id
    dna = body["data"]["style_json"]

    # What the clip is: 16:9, 30 fps, 3 s, one hard cut (20 a minute), saturated test patterns,
    # a soundtrack without beats.
    assert dna["version"] == "1.0" and dna["aspect_ratio"] == "16:9" and dna["frame_rate"] == pytest.approx(30)
    assert dna["source_duration_seconds"] == pytest.approx(3.0, abs=0.1)
    assert dna["cut_frequency"] == pytest.approx(20, abs=1) and dna["primary_transition"]["type"] == "cut"
    assert set(dna["color_grade"]) == {"temperature", "tint", "saturation", "contrast", "highlights", "shadows"}
    assert dna["color_grade"]["saturation"] > 50
    assert dna["audio_style"] is not None and dna["audio_style"]["enhance_speech"] is False
    assert dna["tempo_bpm"] is None and dna["detected_beats"] == []
    assert 0 < dna["extraction_confidence"] < 1  # a 3 s clip is little signal

    # Two calls, one extraction: one style task, of no job; nothing in the account's jobs.
    (task,) = _style_tasks(stack, sha256)
    assert task.job_id is None and task.state == "completed"
    with stack.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(StyleExtraction)) == 0  # done: the request is gone
    assert client.http.get("/api/jobs").json() == {"jobs": []}

    # Kept: asked again, the same DNA, and nothing new to extract.
    again = _v1(client, "GET", f"/videos/{video_id}/style")
    assert again.status_code == 200 and again.json()["data"]["style_json"] == dna
    assert len(_style_tasks(stack, sha256)) == 1
    assert theirs.status_code == httpx.get(f"{stack.base_url}/api/v1/videos/{video_id}/style",
                                           headers={"X-API-Key": other}).status_code == 404  # fmt: skip


def test_a_v1_job_of_the_source_shares_the_one_extraction(client, stack, tmp_path):
    def job_result(job_id: str) -> dict:
        def status() -> str:
            return _v1(client, "GET", f"/jobs/{job_id}").json()["data"]["status"]

        assert wait_until(lambda: (s := status()) in ("completed", "failed", "cancelled") and s, timeout=120,
                          interval=0.2, what=f"job {job_id} to finish") == "completed"  # fmt: skip
        return _v1(client, "GET", f"/jobs/{job_id}/result").json()["data"]

    # The style asked for first, then a job of the source: the job adopts the extraction (or,
    # when it has already finished, finds the DNA kept).
    first = make_clip(tmp_path / "first.mp4")
    first_id = _upload(client, first)
    _extracting(_v1(client, "GET", f"/videos/{first_id}/style"), first_id)
    job = _v1(client, "POST", "/jobs", json={"video_id": first_id, "config": {"mode": "none", "quality": "low"}})
    assert job.status_code == 200, job.text
    result = job_result(job.json()["data"]["job_id"])
    style = _style_when_done(client, first_id)
    assert style.status_code == 200 and result["style_json"] == style.json()["data"]["style_json"] is not None
    assert len(_style_tasks(stack, hashlib.sha256(first.read_bytes()).hexdigest())) == 1

    # A job first, then the style: the call follows the job's own style task.
    second = make_clip(tmp_path / "second.mp4", seconds=2.0)
    second_id = _upload(client, second)
    job = _v1(client, "POST", "/jobs", json={"video_id": second_id, "config": {"mode": "none", "quality": "low"}})
    job_id = job.json()["data"]["job_id"]
    response = _v1(client, "GET", f"/videos/{second_id}/style")
    if response.status_code == 202:  # else the job's task already had it
        _extracting(response, second_id)
    result = job_result(job_id)
    style = _style_when_done(client, second_id)
    assert style.status_code == 200 and style.json()["data"]["style_json"] == result["style_json"] is not None
    (task,) = _style_tasks(stack, hashlib.sha256(second.read_bytes()).hexdigest())
    assert task.job_id == job_id


def test_a_failed_extraction_is_a_422_once_and_the_next_call_retries(client, stack, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0)
    video_id = _upload(client, clip)
    # Lose the stored source: every attempt to fetch it fails (retryably) until none is left.
    (blob,) = (p for p in (stack.settings.data_dir / "storage" / "blobs").rglob("*") if p.is_file())
    aside = blob.rename(tmp_path / "aside")

    _extracting(_v1(client, "GET", f"/videos/{video_id}/style"), video_id)
    failed = _style_when_done(client, video_id)
    assert failed.status_code == 422, failed.text
    error = failed.json()
    assert error["success"] is False and error["error"].startswith("style extraction failed: cannot fetch source")
    assert "after 3 attempts" in error["error"] and error["error"].endswith("(GET it again to retry)")

    # The source is back: the next call asks again, and gets the DNA.
    aside.rename(blob)
    _extracting(_v1(client, "GET", f"/videos/{video_id}/style"), video_id)
    done = _style_when_done(client, video_id)
    assert done.status_code == 200, done.text
    assert done.json()["data"]["style_json"]["source_duration_seconds"] == pytest.approx(2.0, abs=0.1)
    states = sorted(t.state for t in _style_tasks(stack, hashlib.sha256(clip.read_bytes()).hexdigest()))
    assert states == ["completed", "failed"]
