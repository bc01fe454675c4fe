"""Content-addressed ingest on a served API, local storage and real S3 (SeaweedFS).

The document's flow is run verbatim: `sha256sum`, POST upload_urls, `curl -X PUT` with
only a Content-Type header, POST the manifest; then every step again.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from control_plane.main import create_app
from harness.local_s3 import LocalS3, LocalS3Error
from harness.polling import serving
from reelfarm.migrate import open_database
from reelfarm.models.batches import Batch, BatchItem, PlatformVariant
from reelfarm.models.blobs import Asset, Blob
from reelfarm.samples import make_sample_video

BUCKET = "reelfarm-test"


@pytest.fixture(scope="module")
def seaweed():
    try:
        with LocalS3(buckets=(BUCKET,)) as s3:
            yield s3
    except LocalS3Error as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["local", "s3"])
def backend_settings(request, settings, monkeypatch):
    if request.param == "local":
        return settings
    s3 = request.getfixturevalue("seaweed")
    for name, value in s3.environ().items():
        monkeypatch.setenv(name, value)
    return settings.model_copy(update={"storage_url": f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}",
                                       "s3_endpoint_url": s3.endpoint_url})  # fmt: skip


class Served:
    """The control plane on a real socket (uvicorn in a thread), for curl and httpx."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.engine, self.sessions = open_database(settings)
        self.app = create_app(settings, session_factory=self.sessions)
        self._running = contextlib.ExitStack()
        self.base_url = self._running.enter_context(serving(self.app))

    def browser(self, email: str) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, timeout=60)
        response = client.post("/api/auth/signup", json={"email": email, "password": "correct horse battery"})
        assert response.status_code == 201, response.text
        return client

    def key_client(self, browser: httpx.Client, scopes: list[str] | None = None) -> httpx.Client:
        key = browser.post("/api/keys", json={"scopes": scopes} if scopes else {}).json()["key"]
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": key}, timeout=60)

    def count(self, model) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(model))

    def stop(self) -> None:
        self._running.close()
        self.engine.dispose()


@pytest.fixture
def served(backend_settings):
    server = Served(backend_settings)
    yield server
    server.stop()


def sha256sum(path: Path) -> str:
    """Step 0 of the document: the hash, as a shell would compute it."""
    return subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]


def curl_put(url: str, content_type: str, path: Path) -> tuple[int, str]:
    """Step 2 verbatim: curl -X PUT "{upload_url}" -H "Content-Type: ..." --data-binary @file."""
    out = subprocess.run(["curl", "-sS", "-X", "PUT", url, "-H", f"Content-Type: {content_type}",
                          "--data-binary", f"@{path}", "-w", "\n%{http_code}"],
                         check=True, capture_output=True, text=True)  # fmt: skip
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def manifest_for(sha: str, ref: str = "campaign-q3-hero-001") -> dict:
    return {"manifest": {"batch_ref": ref, "items": [{
        "item_ref": "hero-video-16x9", "category": "brand", "tags": ["summer", "Hero"],
        "usage_rights": {"license": "owned", "territories": ["worldwide"]},
        "platform_assets": [{"platform": "youtube", "video_sha256": sha,
                             "caption": "Q3 Brand Campaign — Summer 2025",
                             "hook": "The creative workspace built for AI-era teams."}]}]}}  # fmt: skip


@pytest.fixture
def hero(tmp_path) -> Path:
    return make_sample_video(tmp_path / "hero-q3.mp4", seconds=2.0)


def request_url(client: httpx.Client, sha: str, size: int, content_type: str = "video/mp4") -> dict:
    response = client.post("/api/v1/blobs/upload_urls",
                           json={"blobs": [{"sha256": sha, "content_type": content_type, "size_bytes": size}]})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]["blobs"][0]


def test_the_documented_flow_verbatim_and_every_retry(served, hero):
    owner = served.browser("owner@example.com")
    api = served.key_client(owner)
    sha = sha256sum(hero)
    size = hero.stat().st_size

    first = request_url(api, sha, size)
    assert first["status"] == "upload_required" and first["upload_method"] == "PUT"
    assert first["upload_headers"] == {"Content-Type": "video/mp4"}
    again = request_url(api, sha, size)  # asking twice is harmless: same asset id, no rows
    assert again["asset_id"] == first["asset_id"] and served.count(Asset) == 0
    # 000's idempotent retry: the same SHA gets the same presigned URL (until it nears expiry).
    assert (again["upload_url"], again["expires_at"]) == (first["upload_url"], first["expires_at"])
    other_size = request_url(api, sha, size + 1)  # a different declaration is a different URL
    assert other_size["upload_url"] != first["upload_url"]
    assert request_url(api, sha, size + 1)["upload_url"] == other_size["upload_url"]

    code, body = curl_put(first["upload_url"], "video/mp4", hero)
    assert code == 200, body
    batch = api.post("/api/v1/batches", json=manifest_for(sha))
    assert batch.status_code == 201, batch.text
    data = batch.json()["data"]
    assert data["status"] == "pending_review" and data["item_count"] == 1 and data["batch_id"].startswith("bat_")

    # Every step again: same ids, no duplicate rows, the content stored once.
    assert request_url(api, sha, size) == {"sha256": sha, "asset_id": first["asset_id"], "status": "exists",
                                           "upload_url": None}  # fmt: skip
    code, body = curl_put(again["upload_url"], "video/mp4", hero)
    assert code == 200, body
    retry = api.post("/api/v1/batches", json=manifest_for(sha))
    assert retry.status_code == 200 and retry.json()["data"]["batch_id"] == data["batch_id"]
    assert (served.count(Blob), served.count(Asset), served.count(Batch), served.count(BatchItem),
            served.count(PlatformVariant)) == (1, 1, 1, 1, 1)  # fmt: skip

    blob = api.get(f"/api/v1/blobs/{sha}").json()["data"]
    assert blob["asset_id"] == first["asset_id"] and blob["kind"] == "video" and blob["format"] == "mp4"
    assert blob["size_bytes"] == size and blob["metadata"]["width"] > 0
    download = httpx.get(blob["download_url"], timeout=60)
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == sha
    poster = httpx.get(blob["preview_url"], timeout=60)
    assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"  # a JPEG poster

    # A different manifest under the same ref is a conflict; nothing changes.
    other = manifest_for(sha)
    other["manifest"]["items"][0]["category"] = "product"
    conflict = api.post("/api/v1/batches", json=other)
    assert conflict.status_code == 409 and conflict.json()["success"] is False
    assert served.count(Batch) == 1


def test_a_flipped_byte_or_a_wrong_size_is_rejected_and_nothing_is_recorded(served, hero, tmp_path):
    api = served.key_client(served.browser("owner@example.com"))
    sha, size = sha256sum(hero), hero.stat().st_size
    url = request_url(api, sha, size)["upload_url"]
    flipped = tmp_path / "flipped.mp4"
    data = bytearray(hero.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    code, body = curl_put(url, "video/mp4", flipped)
    assert code == 400, body  # local: SHA-256 mismatch; S3: BadDigest
    short = tmp_path / "short.mp4"
    short.write_bytes(hero.read_bytes()[:-100])
    code, body = curl_put(url, "video/mp4", short)
    assert code in (400, 403), body  # local: size mismatch; S3: the signed Content-Length differs
    code, body = curl_put(url, "image/png", hero)
    assert code == 403, body  # the URL was made for video/mp4
    refused = api.post("/api/v1/batches", json=manifest_for(sha))
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"item_ref": "hero-video-16x9", "platform": "youtube",
                                         "field": "video_sha256", "sha256": sha,
                                         "error": "blob not uploaded (request an upload URL and PUT the bytes first)"}]  # fmt: skip
    assert (served.count(Blob), served.count(Asset), served.count(Batch)) == (0, 0, 0)
    storage = served.app.state.storage
    assert not storage.exists(f"blobs/sha256/{sha[:2]}/{sha[2:4]}/{sha}")


def test_another_accounts_hash_is_unknown_until_uploaded_again(served, hero):
    alice = served.key_client(served.browser("alice@example.com"))
    mallory = served.key_client(served.browser("mallory@example.com"))
    sha, size = sha256sum(hero), hero.stat().st_size
    code, _ = curl_put(request_url(alice, sha, size)["upload_url"], "video/mp4", hero)
    assert code == 200
    assert alice.post("/api/v1/batches", json=manifest_for(sha)).status_code == 201

    # Knowing the hash gives Mallory nothing: not "exists", not a batch, not the blob.
    offer = request_url(mallory, sha, size)
    assert offer["status"] == "upload_required" and offer["asset_id"] != request_url(alice, sha, size)["asset_id"]
    unknown = "0" * 64
    foreign = mallory.post("/api/v1/batches", json=manifest_for(sha)).json()
    missing = mallory.post("/api/v1/batches", json=manifest_for(unknown)).json()
    assert foreign["errors"][0]["error"] == missing["errors"][0]["error"]
    assert mallory.get(f"/api/v1/blobs/{sha}").status_code == mallory.get(f"/api/v1/blobs/{unknown}").status_code == 404

    # Mallory uploads the same bytes herself: now she has them; storage still holds one copy.
    code, _ = curl_put(offer["upload_url"], "video/mp4", hero)
    assert code == 200
    assert mallory.post("/api/v1/batches", json=manifest_for(sha)).status_code == 201
    assert (served.count(Blob), served.count(Asset)) == (1, 2)


def test_content_decides_the_type_not_the_declaration(served, tmp_path):
    api = served.key_client(served.browser("owner@example.com"))
    png = tmp_path / "not-a-video.mp4"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png, format="PNG")
    sha, size = sha256sum(png), png.stat().st_size
    code, body = curl_put(request_url(api, sha, size, "video/mp4")["upload_url"], "video/mp4", png)
    batch = api.post("/api/v1/batches", json=manifest_for(sha)).json()
    if code == 200:  # S3 accepted the bytes (they match the hash); verification refuses them
        assert "PNG" in batch["errors"][0]["error"] or "png" in batch["errors"][0]["error"].lower()
    else:
        assert code == 400 and "png" in body.lower(), body
    assert served.count(Blob) == 0 and served.count(Batch) == 0

    # Declared correctly, the same bytes are a verified image with a thumbnail.
    code, body = curl_put(request_url(api, sha, size, "image/png")["upload_url"], "image/png", png)
    assert code == 200, body
    manifest = manifest_for(sha)
    pa = manifest["manifest"]["items"][0]["platform_assets"][0]
    pa["image_sha256"] = pa.pop("video_sha256")
    assert api.post("/api/v1/batches", json=manifest).status_code == 201
    blob = api.get(f"/api/v1/blobs/{sha}").json()["data"]
    assert (blob["kind"], blob["format"], blob["metadata"]["width"]) == ("image", "png", 64)


def test_review_moves_the_batch_and_filters_find_its_items(served, hero):
    owner = served.browser("owner@example.com")
    api = served.key_client(owner)
    sha, size = sha256sum(hero), hero.stat().st_size
    assert curl_put(request_url(api, sha, size)["upload_url"], "video/mp4", hero)[0] == 200
    batch_id = api.post("/api/v1/batches", json=manifest_for(sha)).json()["data"]["batch_id"]

    assert api.post(f"/api/v1/batches/{batch_id}/approve").status_code == 403  # keys do not review
    assert api.get("/api/v1/assets", params={"status": "approved"}).json()["data"]["items"] == []
    approved = owner.post(f"/api/v1/batches/{batch_id}/approve", json={"reason": "on brand"})
    assert approved.status_code == 200 and approved.json()["data"]["status"] == "approved"
    assert owner.post(f"/api/v1/batches/{batch_id}/approve").status_code == 200  # idempotent
    assert owner.post(f"/api/v1/batches/{batch_id}/reject", json={"reason": "late"}).status_code == 409

    def refs(**params) -> list[str]:
        response = api.get("/api/v1/assets", params=params)
        assert response.status_code == 200, response.text
        return [i["item_ref"] for i in response.json()["data"]["items"]]

    assert refs(status="approved") == ["hero-video-16x9"]
    assert refs(tag="hero") == refs(category="brand") == refs(platform="youtube") == refs(q="AI-era") == ["hero-video-16x9"]
    assert refs(tag="winter") == refs(category="product") == refs(platform="tiktok") == refs(q="nothing like it") == []
    assert [b["status"] for b in api.get("/api/v1/batches", params={"status": "approved"}).json()["data"]["batches"]] == ["approved"]

    item = api.get("/api/v1/assets", params={"status": "approved"}).json()["data"]["items"][0]
    full = api.get(f"/api/v1/assets/{item['item_id']}").json()["data"]
    video = full["platform_assets"][0]["video"]
    assert video["sha256"] == sha and hashlib.sha256(httpx.get(video["download_url"]).content).hexdigest() == sha
    distributed = api.post(f"/api/v1/batches/{batch_id}/distribute")
    assert distributed.status_code == 200 and distributed.json()["data"]["status"] == "distributed"
    assert refs(status="distributed") == ["hero-video-16x9"]

    # A second batch is rejected with its reason, and its items stay out of the approved set.
    other = manifest_for(sha, ref="campaign-q3-hero-002")
    other_id = api.post("/api/v1/batches", json=other).json()["data"]["batch_id"]
    assert owner.post(f"/api/v1/batches/{other_id}/reject", json={}).status_code == 400  # a reason is required
    rejected = owner.post(f"/api/v1/batches/{other_id}/reject", json={"reason": "wrong season"}).json()["data"]
    assert rejected["status"] == "rejected" and rejected["review_reason"] == "wrong season"
    assert refs(status="rejected") == ["hero-video-16x9"] and len(refs()) == 2


def test_manifests_are_validated_whole(served, hero):
    api = served.key_client(served.browser("owner@example.com"))
    sha = "a" * 64
    bad = [
        {"manifest": {"batch_ref": "x", "items": []}},
        {"manifest": {"batch_ref": "x", "items": [{"item_ref": "a", "platform_assets": [{"platform": "yt"}]}]}},
        {"manifest": {"batch_ref": "", "items": manifest_for(sha)["manifest"]["items"]}},
        {"manifest": {"batch_ref": "x", "items": manifest_for(sha)["manifest"]["items"] * 2}},  # duplicate item_ref
        {"manifest": {"batch_ref": "x", "items": manifest_for(sha)["manifest"]["items"], "surprise": 1}},
    ]
    for body in bad:
        response = api.post("/api/v1/batches", json=body)
        assert response.status_code == 400 and response.json()["success"] is False, (body, response.text)
    assert api.post("/api/v1/blobs/upload_urls", json={"blobs": [{"sha256": "xyz", "content_type": "video/mp4",
                                                                   "size_bytes": 1}]}).status_code == 400  # fmt: skip
    assert api.post("/api/v1/blobs/upload_urls", json={"blobs": [{"sha256": sha, "content_type": "video/mp4",
                                                                   "size_bytes": 6 << 30}]}).status_code == 413  # fmt: skip
    forged = request_url(api, sha, 10)["upload_url"]
    if "/api/v1/blobs/uploads/" in forged:  # the local backend's token: tampering is refused
        response = httpx.put(forged[:-3] + "AAA", content=b"0" * 10, headers={"Content-Type": "video/mp4"})
        assert response.status_code == 403 and "signature" in response.json()["error"]
    assert served.count(Batch) == 0
