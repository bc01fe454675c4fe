"""Walk every endpoint as a second account holding the first one's ids: each answers like a
missing resource (404), never with the other account's data. A new endpoint with an id
in its path fails this test until it is added here."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from fastapi.routing import APIRoute

from harness.polling import wait_until
from reelfarm.client import TERMINAL


def _browser(stack, email: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=stack.base_url, timeout=60)
    assert browser.post("/api/auth/signup", json={"email": email, "password": "a long password"}).status_code == 201
    key = browser.post("/api/keys", json={"name": "walk"}).json()
    return browser, key


def test_another_accounts_ids_are_missing_everywhere(stack, sample_video):
    owner, owner_key = _browser(stack, "owner@example.com")
    intruder, intruder_key = _browser(stack, "intruder@example.com")
    a = httpx.Client(base_url=stack.base_url, headers={"X-API-Key": owner_key["key"]}, timeout=60)
    b = httpx.Client(base_url=stack.base_url, headers={"X-API-Key": intruder_key["key"]}, timeout=60)

    # The owner's resources, one of each kind.
    job = a.post("/api/upload", files={"video": ("a.mp4", sample_video.read_bytes(), "video/mp4")},
                 data={"options": '{"mode": "none"}'}).json()["jobId"]  # fmt: skip
    video = a.post("/api/v1/videos/upload", files={"file": ("a.mp4", sample_video.read_bytes(), "video/mp4")}
                   ).json()["data"]["video_id"]  # fmt: skip
    account = owner.get("/api/auth/me").json()["accountId"]
    project = a.post("/api/dev/create-project", json={"name": "mine", "accountId": account}).json()["project"]["id"]
    call = a.post("/api/dev/process-video-submit", json={"videoId": video, "minDuration": 1, "maxDuration": 2}
                  ).json()["callId"]  # fmt: skip
    status = wait_until(lambda: (seen := a.get(f"/api/jobs/{job}").json())["status"] in TERMINAL and seen,
                        timeout=120, interval=0.2, what=f"job {job} to finish")  # fmt: skip
    assert status["status"] == "completed", (status["error"], status.get("tasks"))
    ids = {"job_id": job, "video_id": video, "key_id": owner_key["id"], "filename": "clip_01.mp4"}

    # Every route with an id in its path, walked with the intruder's key (keys: its login).
    routes = {(m, r.path) for r in stack.app.routes if isinstance(r, APIRoute) for m in r.methods}
    walked = set()
    special = {("GET", "/api/dev/preview/{clip_id}")}  # capability URLs: checked below
    for method, path in sorted(routes):
        if "{" not in path or (method, path) in special:
            continue
        url = path.format(**{k: v for k, v in ids.items() if "{" + k + "}" in path})
        caller = intruder if path.startswith("/api/keys") else b
        response = caller.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert response.status_code == 404, (method, url, response.status_code, response.text)
        assert owner_key["key"] not in response.text and job not in response.text.replace(url, "")
        walked.add((method, path))
    assert walked == {(m, p) for m, p in routes if "{" in p} - special

    # Ids carried in bodies and query strings.
    assert b.post("/api/v1/jobs", json={"video_id": video}).status_code == 404
    assert b.post("/api/dev/process-video-submit", json={"videoId": video}).status_code == 404
    assert b.get("/api/dev/process-video-result", params={"callId": call}).status_code == 404
    assert b.get("/api/dev/process-video-result", params={"callId": job}).status_code == 404
    assert b.post("/api/dev/create-project", json={"name": "x", "accountId": account}).status_code == 404
    upload = b.post("/api/dev/upload-video", files={"file": ("a.mp4", sample_video.read_bytes(), "video/mp4")},
                    data={"project_id": project})  # fmt: skip
    assert upload.status_code == 404 and upload.json() == {"error": "project not found", "code": "not_found"}
    # Listings hold only the intruder's own things.
    assert b.get("/api/jobs").json() == {"jobs": []}
    assert [k["id"] for k in intruder.get("/api/keys").json()] == [intruder_key["id"]]
    # The WebSocket too.
    url = stack.base_url.replace("http://", "ws://") + f"/ws?jobId={job}"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(websockets.connect(url, additional_headers={"X-API-Key": intruder_key["key"]}).__aenter__())
    assert refused.value.response.status_code == 404
    # A preview link is a capability: valid only with its signature, whoever holds it.
    clip = a.get(f"/api/dev/videos/{video}/clips").json()["clips"]
    if clip:
        bare = clip[0]["preview_url"].split("?")[0]
        assert b.get(bare, params={"expires": 9999999999, "signature": "0" * 64}).status_code == 403
