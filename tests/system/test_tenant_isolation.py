"""Walk every endpoint and dashboard page as a second account holding the first one's ids:
each answers like a missing resource (404), never with the other account's data. A new
route with an id in its path fails this test until it is added here."""

from __future__ import annotations

import asyncio
import hashlib
import re

import httpx
import pytest
import websockets
from fastapi.routing import APIRoute, iter_route_contexts

from harness.polling import wait_until
from reelfarm.client import TERMINAL
from reelfarm.database import session_scope
from reelfarm.models.campaigns import Campaign, CampaignVideo
from reelfarm.models.webhooks import WebhookEvent


def _browser(stack, email: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=stack.base_url, timeout=60)
    assert browser.post("/api/auth/signup", json={"email": email, "password": "a long password"}).status_code == 201
    key = browser.post("/api/keys", json={"name": "walk"}).json()
    return browser, key


def every_route(app) -> set[tuple[str, str]]:
    """(method, path) of every FastAPI route, those of included routers too (FastAPI >= 0.16x
    keeps included routers as one entry of app.routes: iter_route_contexts flattens them)."""
    return {(method, context.path) for context in iter_route_contexts(app.routes)
            if isinstance(context.original_route, APIRoute) for method in context.methods}  # fmt: skip


def csrf_token_of(browser: httpx.Client) -> str:
    page = browser.get("/dashboard/settings/keys")
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


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
    sha = hashlib.sha256(sample_video.read_bytes()).hexdigest()
    blob = a.post("/api/v1/blobs/upload_urls", json={"blobs": [
        {"sha256": sha, "content_type": "video/mp4", "size_bytes": sample_video.stat().st_size}]}).json()["data"]["blobs"][0]  # fmt: skip
    assert httpx.put(blob["upload_url"], content=sample_video.read_bytes(), headers=blob["upload_headers"]).status_code == 200
    batch = a.post("/api/v1/batches", json={"manifest": {"batch_ref": "walk", "items": [{
        "item_ref": "one", "category": "brand", "usage_rights": {"license": "owned"},
        "platform_assets": [{"platform": "youtube", "video_sha256": sha}]}]}}).json()["data"]  # fmt: skip
    item_id = a.get(f"/api/v1/batches/{batch['batch_id']}").json()["data"]["items"][0]["item_id"]
    with session_scope(stack.session_factory) as session:  # campaigns need a web page: their rows will do here
        campaign = Campaign(account_id=account, job_id=job, url="https://example.com/", title="walk", languages=["en"],
                            status="review")  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_video = CampaignVideo(campaign_id=campaign.id, language="en", platform="tiktok", storage_key="none")
        event = WebhookEvent(account_id=account, event="job.completed", subject_id=job, url="https://example.com/hook",
                             body="{}")  # fmt: skip
        session.add_all([campaign_video, event])
        session.flush()
        campaign_id, campaign_video_id, event_id = campaign.id, campaign_video.id, event.id
    owner_csrf = csrf_token_of(owner)
    upload_id = owner.post("/dashboard/uploads", json={"filename": "a.mp4", "size": 10, "options": {}},
                           headers={"X-CSRF-Token": owner_csrf}).json()["upload_id"]  # fmt: skip
    invitation_id = owner.post("/api/accounts/members", json={"email": "later@example.com"}).json()["invitationId"]
    with httpx.Client(base_url=stack.base_url, timeout=60) as colleague:  # a co-member of the owner's workspace
        assert colleague.post("/api/auth/signup", json={"email": "colleague@example.com",
                                                        "password": "a long password"}).status_code == 201  # fmt: skip
    joined = owner.post("/api/accounts/members", json={"email": "colleague@example.com", "role": "member"})
    assert joined.status_code == 201 and joined.json()["status"] == "active", joined.text
    member_id = joined.json()["userId"]
    ids = {"job_id": job, "video_id": video, "key_id": owner_key["id"], "filename": "clip_01.mp4", "sha256": sha,
           "batch_id": batch["batch_id"], "item_id": item_id, "campaign_id": campaign_id,
           "event_id": event_id, "upload_id": upload_id, "invitation_id": invitation_id,
           "user_id": member_id}  # fmt: skip
    campaign_ids = {**ids, "video_id": campaign_video_id}

    # Every route with an id in its path, walked with the intruder's key (keys: its login;
    # dashboard pages: its browser session, with its own valid CSRF token).
    routes = every_route(stack.app)
    assert ("GET", "/api/v1/batches/{batch_id}") in routes  # the walk sees included routers' routes
    csrf = csrf_token_of(intruder)
    walked = set()
    # Bodies that pass validation, so the lookup itself answers.
    valid_bodies = {("POST", "/api/v1/batches/{batch_id}/reject"): {"reason": "walk"},
                    ("PATCH", "/api/accounts/members/{user_id}"): {"role": "admin"}}  # fmt: skip
    capabilities = {("GET", "/api/dev/preview/{clip_id}"), ("PUT", "/api/v1/blobs/uploads/{token}"),
                    ("GET", "/api/v1/blobs/downloads/{token}")}  # signed URLs: checked below
    for method, path in sorted(routes):
        if "{" not in path or (method, path) in capabilities:
            continue
        values = campaign_ids if path.startswith(("/api/v1/campaigns", "/dashboard/campaigns")) else ids
        url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
        if path.startswith("/dashboard"):
            response = intruder.request(method, url, headers={"X-CSRF-Token": csrf},
                                        data={"csrf_token": csrf} if method in ("POST", "PUT") else None)  # fmt: skip
        else:
            caller = intruder if path.startswith(("/api/keys", "/api/accounts")) else b  # login-only routes
            body = valid_bodies.get((method, path), {}) if method in ("POST", "PUT", "PATCH") else None
            response = caller.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.status_code, response.text[:500])
        assert owner_key["key"] not in response.text and job not in response.text.replace(url, "")
        walked.add((method, path))
    assert walked == {(m, p) for m, p in routes if "{" in p} - capabilities
    assert b.get("/api/v1/blobs/downloads/not-a-token").status_code in (400, 403, 404)
    assert b.put("/api/v1/blobs/uploads/not-a-token", content=b"x").status_code in (400, 403, 404)

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
    # The walk changed nobody's role and removed nobody from the owner's workspace.
    roles = {m["email"]: m["role"] for m in owner.get("/api/accounts/members").json()}
    assert roles == {"owner@example.com": "owner", "colleague@example.com": "member"}
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
