"""The Python client (reelfarm/client): its coverage of the OpenAPI schema, its models against the
schema's components, its retries against a scripted HTTP server on loopback, and every endpoint
family against a real API served on a socket (no scheduler: jobs stay queued unless cancelled).

Clients here are made with strict=True: every answer is validated refusing fields the client's
models do not know, so a server that drifts from the models fails these tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import make_video

from control_plane.health import router as health_router
from control_plane.main import create_app
from harness.polling import serving
from reelfarm.client import (
    OUTSIDE_SCHEMA,
    ApiFailure,
    AsyncReelFarm,
    ReelFarm,
    ReelFarmClient,
    ReelFarmError,
    client_routes,
    validate_strict,
)
from reelfarm.client import models as m
from reelfarm.client.core import Call, RetryPolicy, multipart_body, parse_retry_after, status_retry_delay
from reelfarm.settings import Settings

# --- the schema -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    return create_app(Settings(environment="test", data_dir=tmp_path_factory.mktemp("schema"))).openapi()


def _schema_routes(schema: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}


def test_the_client_calls_every_route_of_the_schema_and_no_other(schema):
    routes = client_routes()
    assert _schema_routes(schema) - set(routes) == set(), "routes no client method calls"
    assert set(routes) - _schema_routes(schema) - OUTSIDE_SCHEMA == set(), "client routes the API does not have"
    # The probes left out of the schema (include_in_schema=False) are served all the same (and
    # test_reels_dev_campaigns_and_health_families calls them).
    assert OUTSIDE_SCHEMA <= {(method, route.path) for route in health_router.routes for method in route.methods}
    # Each route is called by a method of its family (jobs.get, keys.revoke, ...).
    assert "jobs.get" in routes[("GET", "/api/jobs/{job_id}")]
    assert "blobs.upload" in routes[("PUT", "/api/v1/blobs/uploads/{token}")]


def _plain(node: dict, components: dict) -> object:
    """A JSON-schema type without titles, descriptions, defaults and constraints; $refs resolved."""
    if "$ref" in node:
        return _plain(components[node["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in node:
        return {"anyOf": sorted((_plain(n, components) for n in node["anyOf"]), key=json.dumps)}
    out: dict = {}
    if "type" in node:
        out["type"] = node["type"]
    if "format" in node:
        out["format"] = node["format"]
    if "items" in node:
        out["items"] = _plain(node["items"], components)
    if node.get("type") == "object" and "properties" in node:
        out["properties"] = {k: _plain(v, components) for k, v in node["properties"].items()}
        out["required"] = sorted(node.get("required", []))
    return out


def _declared_response_models(schema: dict) -> set[str]:
    names = set()
    for ops in schema["paths"].values():
        for op in ops.values():
            for status, answer in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                node = answer.get("content", {}).get("application/json", {}).get("schema", {})
                node = node.get("items", node)
                if "$ref" in node:
                    names.add(node["$ref"].rsplit("/", 1)[1])
    return names


def test_models_match_the_response_models_the_schema_declares(schema):
    declared = _declared_response_models(schema)
    assert {"Me", "KeyOut", "CreatedKey", "MemberOut", "UrlUploadAccepted"} <= declared
    components = schema["components"]["schemas"]
    for name in sorted(declared):
        model = getattr(m, name, None)
        assert model is not None, f"the client has no model for the schema's {name}"
        ours = model.model_json_schema(by_alias=True)
        theirs = components[name]
        assert _plain(ours, ours.get("$defs", {})) == _plain(theirs, components), name


# --- retries, against a scripted server on loopback ----------------------------------------------


class ScriptedServer:
    """Answers each (METHOD, path) from its script in order (the last answer repeats), and
    records each request: method, path, body size, arrival time."""

    def __init__(self, script: dict[tuple[str, str], list[tuple[int, dict, object]]]) -> None:
        self.script = {key: list(answers) for key, answers in script.items()}
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                owner.requests.append({"method": self.command, "path": path, "size": len(body), "body": body,
                                       "at": time.monotonic(), "headers": dict(self.headers)})  # fmt: skip
                answers = owner.script.get((self.command, path)) or [(404, {}, {"error": "not scripted"})]
                status, headers, payload = answers.pop(0) if len(answers) > 1 else answers[0]
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(data)))
                else:  # a body cut short: the connection closes after what there is
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]


@pytest.fixture
def scripted():
    servers = []

    def make(script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


JOB = {"id": "j1", "jobId": "j1", "originalName": "a.mp4", "status": "queued", "stage": None, "progress_percent": 0.0,
       "error": None, "createdAt": 1, "updatedAt": 1, "clipCount": 0, "posterUrl": None, "options": {}}  # fmt: skip
UPLOADED = {"jobId": "j1", "originalName": "a.mp4", "sizeBytes": 10, "wsUrl": "/ws?jobId=j1", "options": {}}


def test_a_429_is_retried_after_its_retry_after(scripted):
    server = scripted({("GET", "/api/jobs/j1"): [(429, {"Retry-After": "1"}, {"error": "slow down"}),
                                                 (200, {}, JOB)]})  # fmt: skip
    with ReelFarm(server.url, "k", backoff=0.01) as rf:
        job = rf.jobs.get("j1")
    assert job.job_id == "j1" and job.status == "queued"
    first, second = server.hits("GET", "/api/jobs/j1")
    assert second["at"] - first["at"] >= 0.95  # the server's Retry-After, not the 0.01 s backoff
    assert first["headers"]["X-API-Key"] == "k"


def test_503s_are_retried_until_an_answer(scripted):
    server = scripted({("GET", "/api/jobs/j1"): [(503, {}, {"error": "unavailable"}),
                                                 (503, {}, {"error": "unavailable"}), (200, {}, JOB)]})  # fmt: skip
    with ReelFarm(server.url, "k", backoff=0.01) as rf:
        assert rf.jobs.get("j1").id == "j1"
    assert len(server.hits("GET", "/api/jobs/j1")) == 3


def test_retries_give_up_after_max_retries_with_the_last_error(scripted):
    server = scripted({("GET", "/api/jobs/j1"): [(429, {"Retry-After": "0"}, {"error": "rate limit exceeded"})]})
    with ReelFarm(server.url, "k", max_retries=2, backoff=0.01) as rf, pytest.raises(ReelFarmError) as failed:
        rf.jobs.get("j1")
    assert failed.value.status == 429 and failed.value.message == "rate limit exceeded"
    assert failed.value.retry_after == 0.0 and str(failed.value) == "429: rate limit exceeded"
    assert len(server.hits("GET", "/api/jobs/j1")) == 3  # the first try and two retries


def test_an_upload_is_not_sent_again_after_a_500_but_is_after_a_503(scripted, tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x" * (3 << 20) + b"tail")
    server = scripted({("POST", "/api/upload"): [(500, {}, {"error": "internal server error"})]})
    with ReelFarm(server.url, "k", backoff=0.01) as rf, pytest.raises(ApiFailure) as failed:
        rf.uploads.upload(video, {"mode": "none"})
    assert failed.value.status == 500 and len(server.hits("POST", "/api/upload")) == 1

    server = scripted({("POST", "/api/upload"): [(503, {"Retry-After": "0"}, {"error": "no render nodes"}),
                                                 (200, {}, UPLOADED)]})  # fmt: skip
    seen: list[tuple[int, int]] = []
    with ReelFarm(server.url, "k", backoff=0.01) as rf:
        result = rf.uploads.upload(video, {"mode": "none"}, on_progress=lambda sent, total: seen.append((sent, total)))
    assert result.job_id == "j1"
    sent = server.hits("POST", "/api/upload")
    assert len(sent) == 2 and sent[0]["size"] == sent[1]["size"]  # the whole body again, from the file
    assert b'name="options"\r\n\r\n{"mode": "none"}' in sent[1]["body"] and sent[1]["body"].count(b"x") >= 3 << 20
    assert sent[1]["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    # Progress only moves forward, over the file's bytes, and ends at its size.
    assert [s for s, _ in seen] == sorted({s for s, _ in seen}) and seen[-1] == (video.stat().st_size,) * 2


def test_a_gateway_error_is_retried_only_for_a_request_safe_to_repeat(scripted):
    created = {"success": True, "message": "Job created", "data": {
        "job_id": "j1", "video_id": "v1", "status": "queued", "progress_percent": 0, "current_stage": None,
        "error": None, "cancel_requested": False, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z"}}  # fmt: skip
    server = scripted({("POST", "/api/v1/jobs"): [(502, {}, b"bad gateway"), (200, {}, created)],
                       ("GET", "/api/v1/jobs/j1"): [(502, {}, b"bad gateway"), (200, {}, created)]})  # fmt: skip
    with ReelFarm(server.url, "k", backoff=0.01) as rf:
        with pytest.raises(ReelFarmError) as failed:
            rf.jobs.create("v1")  # the job may have been made: not sent twice
        assert failed.value.status == 502 and failed.value.message == "bad gateway"
        assert rf.jobs.get_v1("j1").job_id == "j1"  # a GET is
    assert len(server.hits("POST", "/api/v1/jobs")) == 1 and len(server.hits("GET", "/api/v1/jobs/j1")) == 2


def test_an_answer_that_breaks_off_is_asked_again_only_if_safe(scripted):
    cut = (200, {"Content-Type": "video/mp4", "Content-Length": "2000"}, b"v" * 1000)
    server = scripted({("GET", "/api/clips/j1/clip_01.mp4"): [cut, (200, {"Content-Type": "video/mp4"}, b"v" * 1000)],
                       ("POST", "/api/v1/jobs"): [cut]})  # fmt: skip
    with ReelFarm(server.url, "k", backoff=0.01) as rf:
        assert rf.clips.artifact("j1", "clip_01.mp4") == b"v" * 1000
        with pytest.raises(ReelFarmError) as broke:
            rf.jobs.create("v1")
        assert broke.value.status is None and "RemoteProtocolError" in broke.value.message
    assert len(server.hits("GET", "/api/clips/j1/clip_01.mp4")) == 2 and len(server.hits("POST", "/api/v1/jobs")) == 1


def test_a_refused_connection_is_a_network_error():
    with ReelFarm("http://127.0.0.1:9", "k", max_retries=1, backoff=0.01) as rf, pytest.raises(ReelFarmError) as e:
        rf.jobs.get("j1")
    assert e.value.status is None and "ConnectError" in e.value.message


def test_the_async_client_retries_the_same_way(scripted):
    server = scripted({("GET", "/api/jobs/j1"): [(503, {"Retry-After": "0"}, {"error": "unavailable"}),
                                                 (200, {}, JOB)],
                       ("GET", "/api/jobs/j2"): [(404, {}, {"error": "job not found"})]})  # fmt: skip

    async def main():
        async with AsyncReelFarm(server.url, "k", backoff=0.01) as rf:
            job = await rf.jobs.get("j1")
            with pytest.raises(ReelFarmError) as failed:
                await rf.jobs.get("j2")
            return job, failed.value

    job, error = asyncio.run(main())
    assert job.job_id == "j1" and len(server.hits("GET", "/api/jobs/j1")) == 2
    assert str(error) == "404: job not found" and error.body == {"error": "job not found"}


def test_retry_after_may_be_an_http_date_and_a_long_one_is_not_waited_for():
    assert parse_retry_after("3") == 3.0 and parse_retry_after("garbage") is None
    soon = parse_retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30)))
    assert soon is not None and 20 < soon <= 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past
    policy = RetryPolicy(max_retries=3, backoff=1.0, max_backoff=4.0, max_retry_after=60)
    answer = httpx.Response(429, headers={"Retry-After": "7"})
    assert status_retry_delay(Call("POST", "/api/v1/jobs"), answer, 0, policy) == 7.0
    assert (
        status_retry_delay(Call("GET", "/x"), httpx.Response(429, headers={"Retry-After": "3600"}), 0, policy) is None
    )
    assert status_retry_delay(Call("GET", "/x"), answer, 3, policy) is None  # out of retries
    assert status_retry_delay(Call("POST", "/x"), httpx.Response(504), 0, policy) is None
    assert all(2.0 <= policy.delay(2) <= 4.0 for _ in range(50))  # backoff * 2**2 = 4, drawn from its upper half


def test_a_multipart_body_names_its_length_and_streams_the_file(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(bytes(range(256)) * 8192)
    body = multipart_body({"options": "{}"}, "video", path, content_type="video/mp4")
    data = b"".join(body)
    assert int(body.headers["Content-Length"]) == len(data)
    assert bytes(range(256)) * 8192 in data and body.started


# --- every family, against a real API on a socket ---------------------------------------------------


@pytest.fixture
def api_url(api_app):
    with serving(api_app) as url:
        yield url


@pytest.fixture
def owner(api_url):
    """An owner signed in through the client (POST /api/auth/signup), and an API key they made."""
    rf = ReelFarm(api_url, strict=True)
    me = rf.auth.signup("owner@example.com", "correct horse battery", account_name="Acme")
    assert me.role == "owner" and me.via == "session" and rf.session_token
    yield rf
    rf.close()


def test_sign_up_log_in_and_manage_keys_with_a_session(owner, api_url):
    key = owner.keys.create(name="ci", scopes=["jobs:read", "assets:read"])
    assert isinstance(key, m.CreatedKey) and key.key and key.revoked_at is None
    assert [k.id for k in owner.keys.list()] == [key.id]
    assert owner.members.list()[0].email == "owner@example.com"
    assert owner.webhooks.secret().secret == owner.webhooks.secret().secret != owner.webhooks.rotate_secret().secret
    assert owner.billing.usage().plan == owner.auth.me().plan
    assert "business" in {p.id for p in owner.billing.plans().plans}

    with ReelFarm.login(api_url, "owner@example.com", "correct horse battery", strict=True) as again:
        assert again.session_token and again.session_token != owner.session_token
        assert again.auth.me().email == "owner@example.com"
        again.auth.logout()
        assert again.session_token is None
        with pytest.raises(ReelFarmError) as refused:
            again.auth.me()
        assert refused.value.status == 401

    with ReelFarm(api_url, key.key, strict=True) as by_key:
        assert by_key.auth.me().via == "key"
        with pytest.raises(ReelFarmError) as denied:
            by_key.keys.create()  # keys are for signed-in users
        assert denied.value.status in (401, 403)
        revoked = owner.keys.revoke(key.id)
        assert revoked.id == key.id and revoked.revoked_at is not None
        with pytest.raises(ReelFarmError) as gone:
            by_key.jobs.list()
        assert gone.value.status == 401


def test_members_roles_are_changed_and_members_removed(owner, api_url):
    with ReelFarm(api_url, strict=True) as helper:
        helper_id = helper.auth.signup("helper@example.com", "correct horse battery").user_id
    added = owner.members.add("helper@example.com", role="member")
    assert added.user_id == helper_id and added.status == "active"
    changed = owner.members.change_role(helper_id, "admin")
    assert isinstance(changed, m.MemberOut) and changed.role == "admin" and changed.email == "helper@example.com"
    with pytest.raises(ReelFarmError) as last:
        owner.members.change_role(owner.auth.me().user_id, "member")  # the workspace's last owner
    assert last.value.status == 409
    assert owner.members.remove(helper_id) is None
    assert [x.email for x in owner.members.list()] == ["owner@example.com"]
    with pytest.raises(ReelFarmError) as gone:
        owner.members.remove(helper_id)
    assert gone.value.status == 404


def test_content_addressed_blobs_are_sent_once_and_batched(owner, api_url, tmp_path):
    key = owner.keys.create(name="ingest").key
    video = make_video(tmp_path / "clip.mp4")
    seen: list[tuple[int, int]] = []
    with ReelFarm(api_url, key, strict=True) as rf:
        first = rf.blobs.upload(video, on_progress=lambda sent, total: seen.append((sent, total)))
        second = rf.blobs.upload(video)
        sha = hashlib.sha256(video.read_bytes()).hexdigest()
        assert (first.sha256, first.uploaded, second.uploaded) == (sha, True, False)  # no PUT the second time
        assert first.asset_id == second.asset_id and first.content_type == "video/mp4"
        assert seen[-1] == (video.stat().st_size,) * 2 and [s for s, _ in seen] == sorted(s for s, _ in seen)
        assert [b.sha256 for b in rf.blobs.list()] == [sha]
        got = rf.blobs.download(rf.blobs.get(sha).download_url, tmp_path / "back.mp4")
        assert got.sha256 == sha and got.path.read_bytes() == video.read_bytes()

        manifest = {"batch_ref": "b1", "items": [{"item_ref": "i1", "tags": ["promo"],
                                                  "platform_assets": [{"platform": "tiktok", "video_sha256": sha,
                                                                       "caption": "hi"}]}]}  # fmt: skip
        batch = rf.batches.submit(manifest)
        assert batch.status == "pending_review" and batch.item_count == 1
        assert rf.batches.submit(manifest).batch_id == batch.batch_id  # idempotent per batch_ref
        assert [b.batch_id for b in rf.batches.list(status="pending_review")] == [batch.batch_id]
        item = rf.batches.get(batch.batch_id).items[0]
        assert item.platform_assets[0].video.sha256 == sha
        with pytest.raises(ReelFarmError) as by_key:
            rf.batches.approve(batch.batch_id)
        assert by_key.value.status == 403 and "signed-in" in by_key.value.message
    assert owner.batches.approve(batch.batch_id, reason="fine").status == "approved"
    assert owner.batches.distribute(batch.batch_id).status == "distributed"
    assert [i.item_ref for i in owner.assets.list(tag="promo")] == ["i1"]
    assert owner.assets.get(item.item_id).platform_assets[0].video.download_url
    with pytest.raises(ReelFarmError) as no_reason:
        owner.batches.reject(batch.batch_id)
    assert no_reason.value.status == 400 and "reason" in no_reason.value.message


def test_v1_videos_jobs_wait_cancel_and_timeout(owner, api_url, tmp_path):
    key = owner.keys.create(name="v1").key
    video = make_video(tmp_path / "talk.mp4")
    with ReelFarm(api_url, key, strict=True) as rf:
        uploaded = rf.videos.upload(video)
        assert uploaded.metadata.width == 320 and uploaded.file_size_bytes == video.stat().st_size
        assert rf.videos.file(uploaded.video_id, tmp_path / "orig.mp4").sha256 == hashlib.sha256(
            video.read_bytes()).hexdigest()  # fmt: skip
        job = rf.jobs.create(uploaded.video_id, {"mode": "none", "quality": "low"})
        assert job.status == "queued" and rf.jobs.get(job.job_id).job_id == job.job_id
        assert job.job_id in [j.id for j in rf.jobs.list()]
        # No scheduler runs here: the job stays queued, and wait gives up when told to.
        events: list[m.JobEvent] = []
        with pytest.raises(TimeoutError, match="still queued"):
            rf.jobs.wait(job.job_id, timeout=1.0, on_progress=events.append)
        assert events and events[0].status == "queued"
        with pytest.raises(ReelFarmError) as early:
            rf.jobs.result(job.job_id)
        assert early.value.status == 409
        assert rf.jobs.cancel(job.job_id).cancel_requested  # (the scheduler would stop it)
        with pytest.raises(ReelFarmError) as missing:
            rf.jobs.wait("no-such-job", timeout=5)
        assert str(missing.value) == "404: job not found"
        assert rf.webhooks.deliveries() == []
        with pytest.raises(ReelFarmError) as no_event:
            rf.webhooks.replay("nope")
        assert no_event.value.status == 404


def test_reels_dev_campaigns_and_health_families(owner, api_url, tmp_path):
    key = owner.keys.create(name="all").key
    video = make_video(tmp_path / "talk.mp4")
    with ReelFarm(api_url, key, strict=True) as rf:
        assert rf.health().status == "ok" and rf.ready().status == "ready"
        created = rf.uploads.upload(video, {"mode": "none"})
        assert created.size_bytes == video.stat().st_size and rf.jobs.get(created.job_id).status == "queued"
        with pytest.raises(ReelFarmError) as not_ready:
            rf.clips.manifest(created.job_id)
        assert not_ready.value.status == 404 and "not ready" in not_ready.value.message
        with pytest.raises(ReelFarmError) as bad_url:
            rf.uploads.from_url("ftp://example.invalid/a.mp4")
        assert bad_url.value.status == 400

        project = rf.dev.create_project("Launch")
        dev_video = rf.dev.upload_video(video, project.id)
        assert dev_video.project_id == project.id
        call = rf.dev.submit(dev_video.id, max_clips=1, min_duration=1, max_duration=3)
        assert rf.dev.result(call.call_id).status == "running"
        assert rf.dev.clips(dev_video.id) == []
        assert rf.dev.summary(dev_video.id).counts.total == 0

        assert rf.campaigns.list() == []
        with pytest.raises(ReelFarmError) as no_campaign:
            rf.campaigns.get("nope")
        assert no_campaign.value.status == 404 and no_campaign.value.message == "campaign not found"


def test_the_first_clients_names_still_work(owner, api_url, tmp_path):
    key = owner.keys.create(name="compat").key
    client = ReelFarmClient(api_url, key)
    try:
        job_id = client.upload(make_video(tmp_path / "a.mp4"), {"mode": "none"})["jobId"]
        assert client.job(job_id)["status"] == "queued" and client.http.headers["x-api-key"] == key
        with pytest.raises(TimeoutError):
            client.wait(job_id, timeout=0.5, poll=0.1)
        with pytest.raises(ApiFailure, match="^404: job not found$"):
            client.job("nope")
    finally:
        client.close()


def _v1_job(status: str) -> dict:
    return {"success": True, "message": "Job retrieved", "data": {
        "job_id": "j1", "video_id": "v1", "status": status, "progress_percent": 100 if status == "completed" else 40,
        "current_stage": None, "error": None, "cancel_requested": False, "created_at": None, "updated_at": None}}  # fmt: skip


def _sse(*statuses: str) -> bytes:
    return "".join(": keep-alive\n\nevent: job\ndata: " + json.dumps({
        "job_id": "j1", "status": s, "current_stage": None, "progress_percent": 0, "error": None}) + "\n\n"
        for s in statuses).encode()  # fmt: skip


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_wait_polls_and_reconnects_when_the_stream_drops(scripted, flavour):
    stream = {"Content-Type": "text/event-stream"}
    server = scripted({
        # A stream that ends before the job does, then one that fails: wait polls after each.
        ("GET", "/api/v1/jobs/j1/events"): [(200, stream, _sse("queued")), (500, {}, {"error": "boom"})],
        ("GET", "/api/v1/jobs/j1"): [(200, {}, _v1_job("running")), (200, {}, _v1_job("completed"))],
    })  # fmt: skip
    seen: list[str] = []

    def on_progress(event: m.JobEvent) -> None:
        seen.append(event.status)

    if flavour == "sync":
        with ReelFarm(server.url, "k", strict=True) as rf:
            done = rf.jobs.wait("j1", timeout=60, on_progress=on_progress, poll_interval=0.01)
    else:

        async def main():
            async with AsyncReelFarm(server.url, "k", strict=True) as rf:
                return await rf.jobs.wait("j1", timeout=60, on_progress=on_progress, poll_interval=0.01)

        done = asyncio.run(main())
    assert done.status == "completed" and seen == ["queued", "running", "completed"]
    assert len(server.hits("GET", "/api/v1/jobs/j1/events")) == 2 and len(server.hits("GET", "/api/v1/jobs/j1")) == 2


def test_async_wait_times_out_and_events_iterate(owner, api_url, tmp_path):
    key = owner.keys.create(name="async").key

    async def main():
        async with AsyncReelFarm(api_url, key, strict=True) as rf:
            created = await rf.uploads.upload(make_video(tmp_path / "a.mp4"), {"mode": "none"})
            seen: list[m.JobEvent] = []
            with pytest.raises(TimeoutError, match="still queued"):
                await rf.jobs.wait(created.job_id, timeout=0.5, on_progress=seen.append)
            first = None
            async for event in rf.jobs.events(created.job_id):
                first = event
                break  # leaving early closes the stream
            return seen, first, await rf.auth.me()

    seen, first, me = asyncio.run(main())
    assert [e.status for e in seen] == ["queued"] and first.status == "queued" and me.via == "key"


def test_validate_strict_refuses_unknown_fields_at_any_depth():
    job = dict(JOB, tasks=[{"kind": "render", "index": 0, "state": "queued", "stage": None, "progress_percent": 0,
                            "attempts": 0, "error": None}])  # fmt: skip
    assert m.Job.model_validate(dict(job, newField=1)).model_extra == {"newField": 1}  # lenient by default
    assert validate_strict(m.Job, job).tasks[0].kind == "render"
    with pytest.raises(ValueError, match="surprise"):
        validate_strict(m.Job, dict(job, tasks=[dict(job["tasks"][0], surprise=True)]))
    with pytest.raises(ValueError):
        validate_strict(m.Job, {k: v for k, v in job.items() if k != "clipCount"})  # a field gone


def test_downloads_refuse_names_that_leave_the_folder(scripted, tmp_path):
    manifest = {"jobId": "j1", "clips": [{"files": [{"filename": "../evil.mp4", "sha256": "0" * 64, "size_bytes": 1}]}]}
    server = scripted({("GET", "/api/clips/j1"): [(200, {}, manifest)]})
    with ReelFarm(server.url, "k") as rf, pytest.raises(ReelFarmError, match="not a plain file name"):
        rf.clips.download("j1", tmp_path / "out")
    assert not (tmp_path / "evil.mp4").exists()


def test_credentials_are_not_sent_to_another_origin(scripted, tmp_path):
    store = scripted({("PUT", "/bucket/blob"): [(200, {}, b"")]})
    sha = hashlib.sha256(b"abc").hexdigest()
    api = scripted({
        ("POST", "/api/v1/blobs/upload_urls"): [(200, {}, {"success": True, "message": "1 to upload", "data": {
            "blobs": [{"sha256": sha, "asset_id": "ast_1", "status": "upload_required",
                       "upload_url": store.url.replace("127.0.0.1", "localhost") + "/bucket/blob",
                       "upload_method": "PUT", "upload_headers": {"Content-Type": "image/png"},
                       "expires_at": "2030-01-01T00:00:00Z"}]}})],
        ("GET", f"/api/v1/blobs/{sha}"): [(200, {}, {"success": True, "message": "blob", "data": {
            "asset_id": "ast_1", "sha256": sha, "size_bytes": 3, "kind": "image", "format": "png",
            "content_type": "image/png", "metadata": {}, "created_at": "2030-01-01T00:00:00Z"}})],
    })  # fmt: skip
    path = tmp_path / "a.png"
    path.write_bytes(b"abc")
    with ReelFarm(api.url, "secret-key", session_token="cookie") as rf:
        blob = rf.blobs.upload(path)
    assert blob.uploaded and blob.sha256 == sha
    (put,) = store.hits("PUT", "/bucket/blob")
    assert put["body"] == b"abc" and put["headers"]["Content-Type"] == "image/png"
    assert "X-API-Key" not in put["headers"] and "Cookie" not in put["headers"]
    assert api.hits("POST", "/api/v1/blobs/upload_urls")[0]["headers"]["Cookie"] == "reels_session=cookie"
