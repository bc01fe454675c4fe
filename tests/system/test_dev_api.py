"""The dev endpoints (projects, upload, submit/poll, clips with signed previews, summary)."""

from __future__ import annotations

import time

import httpx
from conftest import new_api_key

from control_plane.projects.service import signed_preview_url
from harness.polling import wait_until


def _dev(client, method, path, **kwargs):
    return client.http.request(method, f"/api/dev{path}", **kwargs)


def _account_id(stack, client) -> str:
    return client.http.get("/api/auth/me").json()["accountId"]


def test_projects_upload_submit_poll_and_signed_previews(client, stack, sample_video):
    account = _account_id(stack, client)
    first = _dev(client, "POST", "/create-project", json={"name": "Fall Interviews!", "accountId": account})
    second = _dev(client, "POST", "/create-project", json={"name": "fall interviews", "accountId": account})
    assert first.status_code == second.status_code == 201
    assert (first.json()["project"]["slug"], second.json()["project"]["slug"]) == ("fall-interviews",
                                                                                   "fall-interviews-2")
    project = first.json()["project"]["id"]
    unknown = _dev(client, "POST", "/create-project", json={"name": "x", "accountId": "acc_other"})
    # Errors carry 002's code for the status next to the message.
    assert unknown.status_code == 404 and unknown.json() == {"error": "account not found", "code": "not_found"}

    missing = _dev(client, "POST", "/upload-video", files={"file": ("a.mp4", sample_video.read_bytes(), "video/mp4")},
                   data={"account_id": account})  # fmt: skip
    assert missing.status_code == 400 and missing.json() == {"error": "project_id required", "code": "bad_request"}
    uploaded = _dev(client, "POST", "/upload-video", files={"file": ("talk.mp4", sample_video.read_bytes(), "video/mp4")},
                    data={"account_id": account, "project_id": project})  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    video = uploaded.json()["video"]
    assert video["status"] == "uploaded" and video["project_id"] == project

    bad = _dev(client, "POST", "/process-video-submit", json={"videoId": video["id"], "minDuration": 9, "maxDuration": 3})
    assert bad.status_code == 400 and "maxDuration" in bad.json()["error"] and bad.json()["code"] == "bad_request"
    call = _dev(client, "POST", "/process-video-submit",
                json={"videoId": video["id"], "maxClips": 2, "minDuration": 1, "maxDuration": 2,
                      "aspectRatio": "1:1", "customInstructions": "funny bits"}).json()["callId"]  # fmt: skip
    statuses = set()

    def finished():
        response = _dev(client, "GET", "/process-video-result", params={"callId": call})
        statuses.add(response.status_code)
        if response.status_code != 200:
            assert response.status_code == 202 and response.json()["status"] == "running", response.text
            return None
        return response

    response = wait_until(finished, timeout=120, interval=0.1, what=f"call {call} to finish")
    done = response.json()
    assert done["status"] == "completed" and len(done["clips"]) == 2
    clip = done["clips"][0]
    assert clip["aspect_ratio"] == "1:1" and clip["status"] == "ready"
    assert 1 <= clip["end_seconds"] - clip["start_seconds"] <= 2

    listed = _dev(client, "GET", f"/videos/{video['id']}/clips").json()["clips"]
    assert [c["id"] for c in listed] == [c["id"] for c in done["clips"]]
    # The signed URL is absolute and works without any other credentials, for an hour.
    assert listed[0]["preview_url"].startswith(f"{stack.base_url}/api/dev/preview/")
    anonymous = httpx.get(listed[0]["preview_url"])
    assert anonymous.status_code == 200 and anonymous.content[4:8] == b"ftyp"
    # Cached no longer than the link lives (never a year, never immutable).
    cache = anonymous.headers["cache-control"]
    assert "immutable" not in cache and 3500 <= int(cache.split("max-age=")[1]) <= 3600, cache
    tampered = listed[0]["preview_url"].replace("signature=", "signature=0")
    assert httpx.get(tampered).status_code == 403
    expired = signed_preview_url(secret=stack.settings.secret_key, clip_id=clip["id"], now=time.time() - 7200)
    response = httpx.get(stack.base_url + expired)
    assert response.status_code == 403 and response.json() == {"error": "preview link expired", "code": "forbidden"}

    summary = _dev(client, "GET", f"/videos/{video['id']}/summary").json()
    assert summary["video"] == {"id": video["id"], "title": "talk.mp4", "status": "ready"}
    assert summary["counts"] == {"total": 2, "ready": 2, "draft": 0, "failed": 0}

    assert _dev(client, "GET", "/process-video-result", params={"callId": "nope"}).status_code == 404
    other = new_api_key(stack.session_factory, account="someone-else")
    for path in (f"/api/dev/process-video-result?callId={call}", f"/api/dev/videos/{video['id']}/clips",
                 f"/api/dev/videos/{video['id']}/summary"):
        assert httpx.get(stack.base_url + path, headers={"X-API-Key": other}).status_code == 404, path
