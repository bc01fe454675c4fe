"""The v1 jobs API, live progress (SSE and WebSocket) and cancel, on a real embedded stack."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import ray
import websockets
from conftest import make_video, new_api_key

from control_plane.jobs.shapes import V1_STAGES
from harness.polling import wait_until


def _v1(client, method, path, **kwargs):
    return client.http.request(method, f"/api/v1{path}", **kwargs)


def _wait_status(client, job_id, statuses, timeout=120):
    def job() -> dict:
        return _v1(client, "GET", f"/jobs/{job_id}").json()["data"]

    return wait_until(lambda: (data := job())["status"] in statuses and data, timeout=timeout, interval=0.2,
                      what=f"job {job_id} to reach {statuses}", describe=job)  # fmt: skip


def test_v1_upload_job_events_and_result(client, stack, sample_video):
    uploaded = _v1(client, "POST", "/videos/upload", files={"file": ("talk.mp4", sample_video.read_bytes(), "video/mp4")})
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["success"] is True and body["message"] == "Video uploaded successfully"
    meta = body["data"]["metadata"]
    assert (meta["width"], meta["height"], meta["codec"]) == (320, 240, "h264")
    assert meta["duration_seconds"] == pytest.approx(4.0, abs=0.1) and meta["frame_rate"] == pytest.approx(25)
    assert meta["format"] == "mp4" and meta["bitrate_kbps"] > 0  # the container, not ffprobe's demuxer list
    # storage_url: the original's bytes, for the uploader's credentials only.
    storage_url = body["data"]["storage_url"]
    assert storage_url.startswith(stack.base_url) and storage_url.endswith(f"/api/v1/videos/{body['data']['video_id']}/file")
    original = client.http.get(storage_url)
    assert original.status_code == 200 and original.content == sample_video.read_bytes()
    assert original.headers["content-type"] == "video/mp4"
    assert httpx.get(storage_url).status_code == 401
    other = new_api_key(stack.session_factory, account="someone-else")
    assert httpx.get(storage_url, headers={"X-API-Key": other}).json() == {"success": False,
                                                                            "error": "video not found"}  # fmt: skip

    created = _v1(client, "POST", "/jobs", json={"video_id": body["data"]["video_id"],
                                                  "config": {"mode": "none", "quality": "low"}})  # fmt: skip
    assert created.status_code == 200, created.text
    job = created.json()["data"]
    assert job["status"] == "queued" and job["progress_percent"] == 0 and job["current_stage"] is None

    events = []
    with client.http.stream("GET", f"/api/v1/jobs/{job['job_id']}/events", timeout=120) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "job":
                events.append(json.loads(line[6:]))
            elif line.startswith("data: ") and name == "end":
                break
    assert events[-1]["status"] == "completed"
    percents = [e["progress_percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100
    assert len(events) >= 2  # it saw the job move, not just its end
    # Stages under 003's names, never going back in 003's order; none once the job is done.
    stages = [e["current_stage"] for e in events if e["current_stage"] is not None]
    assert set(stages) <= set(V1_STAGES)
    assert [V1_STAGES.index(s) for s in stages] == sorted(V1_STAGES.index(s) for s in stages)
    assert events[-1]["current_stage"] is None

    result = _v1(client, "GET", f"/jobs/{job['job_id']}/result").json()
    assert result["message"] == "Job result retrieved"
    data = result["data"]
    assert data["status"] == "completed" and data["processing_time_seconds"] > 0
    video = client.http.get(data["output_video_url"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    # 001: artifacts, manifest.json included, are served with long-lived cache headers.
    manifest = client.http.get(f"/api/clips/{job['job_id']}/manifest.json")
    assert manifest.status_code == 200 and manifest.json()["clipCount"] == 1
    assert manifest.headers["cache-control"] == video.headers["cache-control"] == "private, max-age=31536000, immutable"
    unchanged = client.http.get(f"/api/clips/{job['job_id']}/manifest.json",
                                headers={"If-None-Match": manifest.headers["etag"]})  # fmt: skip
    assert unchanged.status_code == 304

    # The source's Style DNA (003's style_json), also at GET /videos/{id}/style.
    dna = data["style_json"]
    assert dna["version"] == "1.0" and dna["aspect_ratio"] == "4:3" and dna["frame_rate"] == pytest.approx(25)
    assert set(dna["color_grade"]) == {"temperature", "tint", "saturation", "contrast", "highlights", "shadows"}
    assert dna["source_duration_seconds"] == pytest.approx(4.0, abs=0.1) and 0 < dna["extraction_confidence"] <= 1
    style = _v1(client, "GET", f"/videos/{body['data']['video_id']}/style")
    assert style.status_code == 200 and style.json()["data"]["style_json"] == dna
    # Extracted once per source: a second job of the same video plans no style task.
    again = _v1(client, "POST", "/jobs", json={"video_id": body["data"]["video_id"],
                                                "config": {"mode": "none", "quality": "low"}}).json()["data"]  # fmt: skip
    _wait_status(client, again["job_id"], {"completed"})
    assert _v1(client, "GET", f"/jobs/{again['job_id']}/result").json()["data"]["style_json"] == dna
    kinds = [t["kind"] for t in client.http.get(f"/api/jobs/{again['job_id']}").json().get("tasks", [])]
    assert "style" not in kinds and "render" in kinds, kinds


def test_v1_errors_use_the_envelope(client, stack, sample_video):
    missing = _v1(client, "GET", "/jobs/job_missing")
    assert missing.status_code == 404 and missing.json() == {"success": False, "error": "job not found"}
    bad = _v1(client, "POST", "/jobs", json={"video_id": "vid_missing"})
    assert bad.status_code == 404 and bad.json()["success"] is False
    uploaded = _v1(client, "POST", "/videos/upload", files={"file": ("a.mp4", sample_video.read_bytes(), "video/mp4")})
    video_id = uploaded.json()["data"]["video_id"]
    wrong = _v1(client, "POST", "/jobs", json={"video_id": video_id, "config": {"quality": "ultra"}})
    assert wrong.status_code == 400 and "quality" in wrong.json()["error"]
    unknown = _v1(client, "POST", "/jobs", json={"video_id": video_id, "config": {"numClipz": 2}})
    assert unknown.status_code == 400 and "numClipz" in unknown.json()["error"]
    # A job that will never complete has no result: 409 naming its status.
    never = _v1(client, "POST", "/jobs", json={"video_id": video_id, "config": {"mode": "none"}}).json()["data"]
    _v1(client, "POST", f"/jobs/{never['job_id']}/cancel")
    _wait_status(client, never["job_id"], {"cancelled"}, timeout=30)
    early = _v1(client, "GET", f"/jobs/{never['job_id']}/result")
    assert early.status_code == 409
    assert early.json() == {"success": False, "error": "job is not completed (status cancelled)"}


def test_cancel_stops_the_running_task_on_its_node(client, stack, tmp_path):
    long = make_video(tmp_path / "long.mp4", seconds=40, size="640x360")
    video_id = _v1(client, "POST", "/videos/upload",
                   files={"file": ("long.mp4", long.read_bytes(), "video/mp4")}).json()["data"]["video_id"]  # fmt: skip
    # A slow preset and full HD output: the task is surely still running when cancelled.
    job = _v1(client, "POST", "/jobs", json={"video_id": video_id,
                                              "config": {"mode": "none", "quality": "high"}}).json()["data"]  # fmt: skip
    # A v1 job first has its source's Style DNA extracted (style_extraction), then renders.
    wait_until(lambda: _v1(client, "GET", f"/jobs/{job['job_id']}").json()["data"]["current_stage"] == "rendering",
               timeout=120, interval=0.1, what="the job to reach its render")  # fmt: skip
    node = stack.nodes[0]
    wait_until(lambda: ray.get(node.status.remote())["running"], timeout=60, interval=0.1,
               what="the task to start on the node")  # fmt: skip
    cancelled = _v1(client, "POST", f"/jobs/{job['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["data"]["cancel_requested"] is True
    final = _wait_status(client, job["job_id"], {"cancelled", "completed", "failed"}, timeout=30)
    assert final["status"] == "cancelled"
    assert final["current_stage"] is None  # it was rendering; a cancelled job has no stage
    # The node was told over gRPC and stopped.
    wait_until(lambda: not ray.get(node.status.remote())["running"], timeout=15, interval=0.1,
               what="the node to stop rendering the cancelled job")  # fmt: skip
    again = _v1(client, "POST", f"/jobs/{job['job_id']}/cancel")  # idempotent
    assert again.status_code == 200 and again.json()["data"]["status"] == "cancelled"


def test_websocket_pushes_progress_and_checks_ownership(client, stack, sample_video):
    key = client.http.headers["x-api-key"]
    job_id = client.upload(sample_video, {"mode": "none"})["jobId"]
    url = stack.base_url.replace("http://", "ws://") + f"/ws?jobId={job_id}"

    async def listen():
        seen = []
        async with websockets.connect(url, additional_headers={"X-API-Key": key}) as socket:
            async for message in socket:
                seen.append(json.loads(message))
        return seen

    updates = asyncio.run(asyncio.wait_for(listen(), timeout=120))
    assert updates[-1]["status"] == "completed" and updates[-1]["jobId"] == job_id
    assert [u["progress_percent"] for u in updates] == sorted(u["progress_percent"] for u in updates)

    other = new_api_key(stack.session_factory, account="someone-else")

    async def refused(headers):
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.connect(url, additional_headers=headers):
                pass
        return info.value.response.status_code

    assert asyncio.run(refused({"X-API-Key": other})) == 404  # another account's job: like a missing one
    assert asyncio.run(refused({})) == 401
    missing = stack.base_url.replace("http://", "ws://") + "/ws?jobId=nope"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        asyncio.run(websockets.connect(missing, additional_headers={"X-API-Key": key}).__aenter__())
    assert httpx.get(f"{stack.base_url}/api/jobs/{job_id}", headers={"X-API-Key": other}).status_code == 404
