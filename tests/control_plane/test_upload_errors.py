"""Bad input gets a clear 4xx with a JSON error naming the problem; nothing is recorded."""

from __future__ import annotations

import json

import pytest
from conftest import make_video
from sqlalchemy import func, select

from reelfarm.models.jobs import Job


def _jobs(stack) -> int:
    with stack.session_factory() as session:
        return session.scalar(select(func.count()).select_from(Job))


def _post(client, files=None, data=None):
    return client.http.post("/api/upload", files=files or {}, data=data or {})


def test_missing_file(client, stack):
    response = _post(client, files={"options": (None, "{}")})  # multipart, but no file part
    assert response.status_code == 400
    assert response.json() == {"error": "video file required"}
    assert _jobs(stack) == 0


def test_empty_file(client, stack):
    response = _post(client, files={"video": ("empty.mp4", b"", "video/mp4")})
    assert response.status_code == 400
    assert response.json()["error"] == "video file is empty"
    assert _jobs(stack) == 0


def test_not_a_video(client, stack):
    response = _post(client, files={"video": ("notes.mp4", b"this is not a video at all" * 100, "video/mp4")})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("video file is not a decodable video: notes.mp4"), error
    assert str(stack.settings.data_dir) not in error and "/tmp" not in error  # no server paths
    assert _jobs(stack) == 0
    # Nothing left behind in storage either.
    leftovers = [p for p in (stack.settings.data_dir / "storage").rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize(
    "options, field",
    [
        ({"numClips": 11}, "options.numClips"),
        ({"numClips": 0}, "options.numClips"),
        ({"aspectRatio": "3:2"}, "options.aspectRatio"),
        ({"captionPreset": "comic"}, "options.captionPreset"),
        ({"clipLength": "huge"}, "options.clipLength"),
        ({"trimStart": -1}, "options.trimStart"),
        ({"trimStart": 5, "trimEnd": 2}, "trimEnd must be greater than trimStart"),
        ({"nmClips": 2}, "options.nmClips"),
        # A string is not a boolean, whatever it says: "false" must not mean true anywhere.
        ({"removeAiVoice": "false"}, "options.removeAiVoice"),
        ({"removeAiVoice": "no"}, "options.removeAiVoice"),
        ({"autoHook": "true"}, "options.autoHook"),
        ({"minDuration": 50, "maxDuration": 40}, "maxDuration must be at least minDuration"),
    ],
)
def test_options_out_of_range_name_the_field(client, stack, sample_video, options, field):
    response = _post(client, files={"video": ("s.mp4", sample_video.read_bytes(), "video/mp4")},
                     data={"options": json.dumps(options)})
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert _jobs(stack) == 0


def test_options_not_json(client, sample_video):
    response = _post(client, files={"video": ("s.mp4", sample_video.read_bytes(), "video/mp4")},
                     data={"options": "{numClips: 3"})
    assert response.status_code == 400
    assert response.json()["error"] == "options: not valid JSON"


def test_trim_start_beyond_duration(client, sample_video):
    response = _post(client, files={"video": ("s.mp4", sample_video.read_bytes(), "video/mp4")},
                     data={"options": json.dumps({"trimStart": 60})})
    assert response.status_code == 400
    assert "options.trimStart" in response.json()["error"]


def test_not_multipart(client):
    response = client.http.post("/api/upload", json={"video": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "video file required (send multipart/form-data)"


def test_too_large_is_413(start_stack, settings, tmp_path):
    from conftest import new_api_key

    from reelfarm.client import ReelFarmClient

    stack = start_stack(settings.model_copy(update={"max_upload_bytes": 10_000}))
    client = ReelFarmClient(stack.base_url, new_api_key(stack.session_factory))
    big = make_video(tmp_path / "big.mp4", seconds=4, size="640x480")
    assert big.stat().st_size > 10_000
    response = _post(client, files={"video": ("big.mp4", big.read_bytes(), "video/mp4")})
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert _jobs(stack) == 0


@pytest.mark.parametrize("headers, message", [
    ({}, "not authenticated"),
    ({"X-API-Key": "rf_live_wrong"}, "invalid or revoked API key"),
    ({"Authorization": "Bearer rf_live_wrong"}, "invalid or revoked API key"),
])
def test_auth_required(stack, headers, message):
    import httpx

    response = httpx.get(f"{stack.base_url}/api/jobs", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": message}


def test_bearer_key_works_and_other_accounts_see_404(stack, client, sample_video):
    import httpx
    from conftest import new_api_key

    job_id = client.upload(sample_video, {"mode": "none"})["jobId"]
    assert httpx.get(f"{stack.base_url}/api/jobs/{job_id}",
                     headers={"Authorization": f"Bearer {client.http.headers['x-api-key']}"}).status_code == 200
    other = new_api_key(stack.session_factory, account="someone-else")
    for path in (f"/api/jobs/{job_id}", f"/api/clips/{job_id}", f"/api/clips/{job_id}/clip_01.mp4"):
        response = httpx.get(stack.base_url + path, headers={"X-API-Key": other})
        assert response.status_code == 404, path
    client.wait(job_id, timeout=120)


def test_unknown_artifact_names_are_404(client, sample_video):
    job_id = client.upload(sample_video, {"mode": "none"})["jobId"]
    client.wait(job_id, timeout=120)
    for name in ("clip_1.mp4", "../reelfarm.db", "clip_01.exe", "clip_09.mp4"):
        assert client.http.get(f"/api/clips/{job_id}/{name}").status_code == 404, name
    assert client.http.get(f"/api/clips/{job_id}/manifest.json").json()["jobId"] == job_id
