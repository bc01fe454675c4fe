"""The agent (MCP) server, driven by the official SDK's own client over stdio and over
streamable HTTP (a real socket), on both databases.

Rows are made with the ORM (two accounts; approved, distributed, pending and rejected
batches) and the blobs' bytes are real files in the app's storage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import select

from control_plane.accounts import service as accounts
from control_plane.agents.mcp_server import MISSING_KEY, NOT_FOUND
from control_plane.blobs import service as blobs
from control_plane.main import create_app
from harness.polling import serving
from reelfarm.database import (
    make_engine,
    make_session_factory,
    session_scope,
    utcnow,
)
from reelfarm.migrate import upgrade
from reelfarm.models.accounts import ApiKey
from reelfarm.models.batches import Batch, BatchItem, ItemTag, PlatformVariant
from reelfarm.models.blobs import Asset, Blob
from reelfarm.settings import Settings
from reelfarm.storage import open_storage

PUBLIC_URL = "http://agents.example.test:8123"
CALL_TIMEOUT = 60


@dataclass
class World:
    settings: Settings
    session_factory: object
    storage: object
    keys: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # item_ref -> item_id
    files: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes
    storage_keys: dict[str, str] = field(default_factory=dict)  # sha256 -> storage key
    sha: dict[str, str] = field(default_factory=dict)  # file label -> sha256


def _store(world: World, tmp: Path, label: str, data: bytes) -> str:
    path = tmp / label
    path.write_bytes(data)
    stored = world.storage.put_file(path)
    world.files[stored.sha256] = data
    world.storage_keys[stored.sha256] = stored.key
    world.sha[label] = stored.sha256
    return stored.sha256


def _blob(session, world: World, label: str, *, kind: str, fmt: str, content_type: str, media: dict,
          preview: str | None = None) -> None:  # fmt: skip
    sha = world.sha[label]
    session.add(Blob(sha256=sha, size_bytes=len(world.files[sha]), format=fmt, kind=kind, content_type=content_type,
                     media=media, storage_key=world.storage_keys[sha],
                     preview_key=world.storage_keys[world.sha[preview]] if preview else None,
                     preview_content_type="image/jpeg" if preview else None))  # fmt: skip


def _asset(session, account, sha: str, content_type: str) -> None:
    session.add(Asset(id=blobs.asset_id_for(account.id, sha), account_id=account.id, sha256=sha,
                      declared_content_type=content_type))  # fmt: skip


def _batch(session, world: World, account, ref: str, status: str, items: list[dict]) -> None:
    batch = Batch(account_id=account.id, batch_ref=ref, manifest_sha256="0" * 64, manifest={"batch_ref": ref},
                  status=status)  # fmt: skip
    session.add(batch)
    session.flush()
    for position, spec in enumerate(items):
        item = BatchItem(batch_id=batch.id, account_id=account.id, position=position, item_ref=spec["ref"],
                         category=spec.get("category"), tags=spec.get("tags", []),
                         usage_rights=spec.get("usage_rights"), status=status)  # fmt: skip
        session.add(item)
        session.flush()
        world.items[spec["ref"]] = item.id
        session.add_all(ItemTag(item_id=item.id, tag=t) for t in spec.get("tags", []))
        session.add_all(PlatformVariant(item_id=item.id, position=i, **pa) for i, pa in enumerate(spec["assets"]))


@pytest.fixture
def world(settings, tmp_path):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    world = World(settings=settings, session_factory=make_session_factory(engine), storage=open_storage(settings))
    files = tmp_path / "files"
    files.mkdir()
    for label, data in {"cat.mp4": b"\x00\x00\x00\x18ftypmp42 cat video bytes", "cat.jpg": b"\xff\xd8\xff cat preview",
                        "dog.png": b"\x89PNG\r\n\x1a\n dog image", "pasta.mp4": b"\x00\x00\x00\x18ftypisom pasta",
                        "pending.mp4": b"\x00\x00\x00\x18ftypisom pending", "b-cat.mp4": b"\x00\x00\x00\x18ftyp B cat"
                        }.items():  # fmt: skip
        _store(world, files, label, data)
    video = {"kind": "video", "fmt": "mp4", "content_type": "video/mp4",
             "media": {"width": 1080, "height": 1920, "duration_seconds": 3.5}}  # fmt: skip
    with session_scope(world.session_factory) as session:
        a = accounts.get_or_create_account(session=session, name="acme", plan="business")
        b = accounts.get_or_create_account(session=session, name="globex", plan="business")
        world.keys["a"] = accounts.create_api_key(session=session, account=a, name="agent")
        world.keys["a2"] = accounts.create_api_key(session=session, account=a, name="revoked later")
        world.keys["b"] = accounts.create_api_key(session=session, account=b, name="agent")
        world.keys["a_no_read"] = accounts.create_api_key(session=session, account=a, scopes=["jobs:read"])
        world.keys["a_revoked"] = accounts.create_api_key(session=session, account=a)
        session.scalar(select(ApiKey).where(ApiKey.key_hash == accounts.hash_key(world.keys["a_revoked"]))
                       ).revoked_at = utcnow()  # fmt: skip
        _blob(session, world, "cat.mp4", preview="cat.jpg", **video)
        _blob(session, world, "dog.png", kind="image", fmt="png", content_type="image/png",
              media={"width": 1080, "height": 1080})  # fmt: skip
        for label in ("pasta.mp4", "pending.mp4", "b-cat.mp4"):
            _blob(session, world, label, **video)
        session.flush()
        for label, content_type in (("cat.mp4", "video/mp4"), ("dog.png", "image/png"), ("pasta.mp4", "video/mp4"),
                                    ("pending.mp4", "video/mp4")):  # fmt: skip
            _asset(session, a, world.sha[label], content_type)
        _asset(session, b, world.sha["b-cat.mp4"], "video/mp4")
        session.flush()
        _batch(session, world, a, "a-approved", "approved", [
            {"ref": "a-cat", "category": "pets", "tags": ["cats", "funny"], "usage_rights": {"license": "owned"},
             "assets": [{"platform": "tiktok", "caption": "A cat jumps over a fence", "hook": "wait for it",
                         "video_sha256": world.sha["cat.mp4"]}]},
            {"ref": "a-dog", "category": "pets", "tags": ["dogs"],
             "assets": [{"platform": "youtube", "caption": "Dog runs", "hook": "good boy",
                         "image_sha256": world.sha["dog.png"]}]},
        ])  # fmt: skip
        _batch(session, world, a, "a-distributed", "distributed", [
            {"ref": "a-pasta", "category": "food", "tags": ["funny"],
             "assets": [{"platform": "instagram", "caption": "Pasta in five minutes",
                         "video_sha256": world.sha["pasta.mp4"]}]},
        ])  # fmt: skip
        _batch(session, world, a, "a-pending", "pending_review", [
            {"ref": "a-pending-cat", "category": "pets", "tags": ["cats", "funny"],
             "assets": [{"platform": "tiktok", "caption": "A cat that nobody approved",
                         "video_sha256": world.sha["pending.mp4"]}]},
        ])  # fmt: skip
        _batch(session, world, a, "a-rejected", "rejected", [
            {"ref": "a-rejected-cat", "category": "pets", "tags": ["cats"],
             "assets": [{"platform": "tiktok", "caption": "A rejected cat", "video_sha256": world.sha["cat.mp4"]}]},
        ])  # fmt: skip
        _batch(session, world, b, "b-approved", "approved", [
            {"ref": "b-cat", "category": "pets", "tags": ["cats", "funny"],
             "assets": [{"platform": "tiktok", "caption": "A cat from another account",
                         "video_sha256": world.sha["b-cat.mp4"]}]},
        ])  # fmt: skip
    yield world
    engine.dispose()


def _revoke(world: World, key: str) -> None:
    with session_scope(world.session_factory) as session:
        session.scalar(select(ApiKey).where(ApiKey.key_hash == accounts.hash_key(key))).revoked_at = utcnow()


# ------------------------------------------------------------------ helpers on a ClientSession


async def _call(session: ClientSession, tool: str, **arguments) -> dict:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    # The text content is the same JSON as the structured content.
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def _refs(session: ClientSession, **filters) -> set[str]:
    return {item["item_ref"] for item in (await _call(session, "search_assets", **filters))["items"]}


async def _error(session: ClientSession, tool: str, **arguments) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def _check_listing_and_search(session: ClientSession, world: World) -> None:
    """Account A's view: only its approved and distributed items, whatever the filter."""
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == {"search_assets", "get_asset"}
    assert tools["get_asset"].annotations.read_only_hint is True
    assert "approved" in tools["search_assets"].description
    assert "\n " not in tools["search_assets"].description + tools["get_asset"].description  # dedented
    assert tools["get_asset"].input_schema["required"] == ["item_id"]

    assert await _refs(session) == {"a-cat", "a-dog", "a-pasta"}
    assert await _refs(session, tag="cats") == {"a-cat"}
    assert await _refs(session, tag="FUNNY") == {"a-cat", "a-pasta"}  # a distributed item stays visible
    assert await _refs(session, category="pets") == {"a-cat", "a-dog"}
    assert await _refs(session, platform="tiktok") == {"a-cat"}
    assert await _refs(session, platform="youtube") == {"a-dog"}
    assert await _refs(session, query="cat") == {"a-cat"}
    assert await _refs(session, query="good boy") == {"a-dog"}
    assert await _refs(session, query="pending-cat") == set()
    assert await _refs(session, tag="cats", platform="youtube") == set()
    assert await _refs(session, category="nothing-here") == set()

    page1 = await _call(session, "search_assets", limit=2)
    page2 = await _call(session, "search_assets", limit=2, offset=page1["next_offset"])
    assert (page1["count"], page1["next_offset"], page2["count"], page2["next_offset"]) == (2, 2, 1, None)
    assert {i["item_ref"] for i in page1["items"] + page2["items"]} == {"a-cat", "a-dog", "a-pasta"}

    [cat] = (await _call(session, "search_assets", tag="cats"))["items"]
    assert cat["item_id"] == world.items["a-cat"] and cat["status"] == "approved"
    assert (cat["category"], cat["tags"], cat["usage_rights"]) == ("pets", ["cats", "funny"], {"license": "owned"})
    [tiktok] = cat["platform_assets"]
    assert (tiktok["platform"], tiktok["hook"]) == ("tiktok", "wait for it")
    assert tiktok["video"]["sha256"] == world.sha["cat.mp4"]
    assert tiktok["video"]["metadata"]["height"] == 1920
    assert "download_url" not in json.dumps(cat)  # listings are compact: URLs come from get_asset

    assert "less than or equal to 100" in await _error(session, "search_assets", limit=500)
    assert "less than or equal to 1000000" in await _error(session, "search_assets", offset=2**63)  # not a database error


async def _check_not_found(session: ClientSession, world: World, other_account_ref: str) -> None:
    """Unknown, unapproved and another account's ids all answer the same."""
    messages = {await _error(session, "get_asset", item_id=world.items[other_account_ref]),
                await _error(session, "get_asset", item_id=world.items["a-pending-cat"]),
                await _error(session, "get_asset", item_id=world.items["a-rejected-cat"]),
                await _error(session, "get_asset", item_id="itm_doesnotexist")}  # fmt: skip
    assert len(messages) == 1, messages
    assert NOT_FOUND in messages.pop()


def _get_cat(view: dict, world: World) -> tuple[str, str]:
    assert view["item_ref"] == "a-cat" and view["batch_ref"] == "a-approved"
    assert view["download_urls_valid_seconds"] == blobs.DOWNLOAD_URL_SECONDS
    video = view["platform_assets"][0]["video"]
    assert (video["sha256"], video["kind"], video["content_type"]) == (world.sha["cat.mp4"], "video", "video/mp4")
    assert video["size_bytes"] == len(world.files[world.sha["cat.mp4"]])
    assert video["metadata"] == {"width": 1080, "height": 1920, "duration_seconds": 3.5}
    return video["download_url"], video["preview_url"]


# ------------------------------------------------------------------ streamable HTTP


@pytest.fixture
def http_base(world):
    """The control plane with /mcp routed as main.py is told to, under uvicorn on a real
    socket; lifespan off, as the embedded stack runs it (/mcp must not need one)."""
    app = create_app(world.settings, session_factory=world.session_factory, storage=world.storage)
    with serving(app, lifespan="off") as base_url:
        yield base_url


@asynccontextmanager
async def _http_session(url: str, headers: dict[str, str], *, discover: bool = False):
    """An initialized SDK ClientSession over streamable HTTP, sending `headers` each time."""
    async with (httpx2.AsyncClient(headers=headers) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session):  # fmt: skip
        if discover:
            await session.discover()  # the 2026-07-28 single-exchange protocol
        else:
            await session.initialize()  # the handshake protocol
        yield session


def test_tools_over_streamable_http(world, http_base):
    mcp_url = f"{http_base}/mcp"

    async def main():
        with anyio.fail_after(CALL_TIMEOUT):
            async with _http_session(mcp_url, {"Authorization": f"Bearer {world.keys['a']}"}) as a:
                await _check_listing_and_search(a, world)
                await _check_not_found(a, world, "b-cat")

                view = await _call(a, "get_asset", item_id=world.items["a-cat"])
                download_url, preview_url = _get_cat(view, world)
                assert download_url.startswith(f"{http_base}/api/v1/blobs/downloads/")
                async with httpx.AsyncClient() as http:  # no key: the URL is the credential
                    got = await http.get(download_url)
                    assert got.status_code == 200 and got.content == world.files[world.sha["cat.mp4"]]
                    assert got.headers["content-type"] == "video/mp4"
                    got = await http.get(preview_url)
                    assert got.status_code == 200 and got.content == world.files[world.sha["cat.jpg"]]
                    [dog] = (await _call(a, "get_asset", item_id=world.items["a-dog"]))["platform_assets"]
                    got = await http.get(dog["image"]["download_url"])
                    assert got.content == world.files[world.sha["dog.png"]] and dog["image"]["preview_url"] is None

                # The resource template gives the same view.
                [template] = (await a.list_resource_templates()).resource_templates
                assert template.uri_template == "asset://{item_id}"
                [contents] = (await a.read_resource(f"asset://{world.items['a-cat']}")).contents
                assert json.loads(contents.text)["platform_assets"][0]["video"]["sha256"] == world.sha["cat.mp4"]
                with pytest.raises(Exception, match=NOT_FOUND):
                    await a.read_resource(f"asset://{world.items['b-cat']}")

            async with _http_session(mcp_url, {"X-API-Key": world.keys["b"]}, discover=True) as b:
                assert await _refs(b) == {"b-cat"}
                assert await _refs(b, tag="cats") == {"b-cat"}
                [b_cat] = (await _call(b, "get_asset", item_id=world.items["b-cat"]))["platform_assets"]
                assert b_cat["video"]["sha256"] == world.sha["b-cat.mp4"]
                await _check_not_found_for_b(b, world)

    anyio.run(main)


async def _check_not_found_for_b(session: ClientSession, world: World) -> None:
    messages = {await _error(session, "get_asset", item_id=world.items["a-cat"]),
                await _error(session, "get_asset", item_id="itm_doesnotexist")}  # fmt: skip
    assert messages == {f"Error executing tool get_asset: {NOT_FOUND}"}, messages


def test_concurrent_http_sessions_keep_their_accounts(world, http_base):
    """Interleaved calls with different keys, on concurrent requests, each see their own account."""
    mcp_url = f"{http_base}/mcp"
    seen: dict[str, list[set[str]]] = {"a": [], "b": []}

    async def client(name: str, headers: dict[str, str]) -> None:
        async with _http_session(mcp_url, headers) as session, anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(one, session, name)

    async def one(session: ClientSession, name: str) -> None:
        seen[name].append(await _refs(session, tag="funny"))

    async def main():
        with anyio.fail_after(CALL_TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client, "a", {"Authorization": f"Bearer {world.keys['a']}"})
                tg.start_soon(client, "b", {"X-API-Key": world.keys["b"]})

    anyio.run(main)
    assert seen["a"] == [{"a-cat", "a-pasta"}] * 12
    assert seen["b"] == [{"b-cat"}] * 12


def test_http_refuses_missing_invalid_and_unscoped_keys(world, http_base):
    mcp_url = f"{http_base}/mcp"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "test", "version": "1"}}}  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream"}

    def post(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(mcp_url, json=initialize, headers={**accept, **headers}, timeout=30)

    for headers, status, error in [
        ({}, 401, MISSING_KEY),
        ({"Authorization": "Bearer rf_live_not-a-real-key"}, 401, accounts.INVALID_KEY),
        ({"X-API-Key": world.keys["a_revoked"]}, 401, accounts.INVALID_KEY),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, MISSING_KEY),
        ({"X-API-Key": world.keys["a_no_read"]}, 403, accounts.missing_scope("assets:read")),
    ]:
        response = post(headers)
        assert (response.status_code, response.json()) == (status, {"error": error}), headers
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    assert post({"X-API-Key": world.keys["a_no_read"]}).headers["x-reelfarm-api-scopes"] == "jobs:read"

    ok = post({"X-API-Key": world.keys["a"]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "reelfarm"
    assert "assets:read" in ok.headers["x-reelfarm-api-scopes"].split()
    # A real host name is fine (no DNS-rebinding Host check: every request carries a key).
    listed = httpx.post(mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, timeout=30,
                        headers={**accept, "X-API-Key": world.keys["a"], "Host": "reelfarm.example.com"})  # fmt: skip
    assert {t["name"] for t in listed.json()["result"]["tools"]} == {"search_assets", "get_asset"}
    # Stateless: no standalone stream to GET (it would hang open) and no session to DELETE.
    for method in ("GET", "DELETE"):
        answer = httpx.request(method, mcp_url, headers={**accept, "X-API-Key": world.keys["a"]}, timeout=10)
        assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
    assert httpx.get(mcp_url, timeout=10).status_code == 401

    async def sdk_client(headers: dict[str, str]) -> None:
        async with _http_session(mcp_url, headers):
            pass

    async def revoked_mid_session() -> None:
        async with _http_session(mcp_url, {"X-API-Key": world.keys["a2"]}) as session:
            assert await _refs(session, tag="cats") == {"a-cat"}
            _revoke(world, world.keys["a2"])
            await session.call_tool("search_assets", {"tag": "cats"})

    # The SDK client reports a refused POST as a JSON-RPC error (the HTTP status is not kept).
    refused = "Server returned an error response"
    assert _mcp_errors(sdk_client, {"Authorization": "Bearer rf_live_not-a-real-key"}) == [refused]
    assert _mcp_errors(sdk_client, {}) == [refused]
    assert _mcp_errors(sdk_client, {"X-API-Key": world.keys["a_no_read"]}) == [refused]
    assert _mcp_errors(revoked_mid_session) == [refused]
    assert post({"X-API-Key": world.keys["a2"]}).status_code == 401


def _mcp_errors(fn, *args) -> list[str]:
    """Run `fn` (which must fail, within CALL_TIMEOUT): the messages of the MCPErrors it raised."""

    async def run() -> None:
        with anyio.fail_after(CALL_TIMEOUT):
            await fn(*args)

    messages: list[str] = []
    try:
        anyio.run(run)
    except* MCPError as group:  # (task groups wrap what they raise; anything else fails the test)
        messages = [e.error.message for e in _leaves(group)]
    assert messages, f"{fn.__name__} did not fail"
    return messages


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


# ------------------------------------------------------------------ stdio


def _stdio_env(world: World, key: str | None, **extra: str) -> dict[str, str]:
    env = {"REELFARM_DATA_DIR": str(world.settings.data_dir), "REELFARM_ENVIRONMENT": "test",
           "REELFARM_PUBLIC_URL": PUBLIC_URL, "REELFARM_SECRET_KEY": world.settings.secret_key}  # fmt: skip
    if world.settings.database_url:
        env["REELFARM_DATABASE_URL"] = world.settings.database_url
    if key is not None:
        env["REELFARM_API_KEY"] = key
    return {**env, **extra}


def _stdio_params(world: World, key: str | None, tmp_path: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "reelfarm.cli", "mcp"],
                                 env=_stdio_env(world, key), cwd=str(tmp_path))  # fmt: skip


def test_tools_over_stdio(world, tmp_path):
    async def main():
        with anyio.fail_after(CALL_TIMEOUT):
            async with (stdio_client(_stdio_params(world, world.keys["a"], tmp_path)) as (read, write),
                        ClientSession(read, write) as session):  # fmt: skip
                info = await session.initialize()
                assert info.server_info.name == "reelfarm"
                assert "approved" in info.instructions
                await _check_listing_and_search(session, world)
                await _check_not_found(session, world, "b-cat")
                view = await _call(session, "get_asset", item_id=world.items["a-cat"])
                # The key is checked on every call: revoked, it stops working at once.
                _revoke(world, world.keys["a"])
                assert accounts.INVALID_KEY in await _error(session, "search_assets")
                assert accounts.INVALID_KEY in await _error(session, "get_asset", item_id=world.items["a-cat"])
        return view

    view = anyio.run(main)
    download_url, preview_url = _get_cat(view, world)
    # No HTTP request to take a base URL from: REELFARM_PUBLIC_URL.
    prefix = f"{PUBLIC_URL}/api/v1/blobs/downloads/"
    assert download_url.startswith(prefix) and preview_url.startswith(prefix)
    claims = blobs.download_claims(settings=world.settings, token=download_url.removeprefix(prefix))
    assert claims["k"] == world.storage_keys[world.sha["cat.mp4"]] and claims["t"] == "video/mp4"
    # ... and the control plane serves the bytes at that path.
    app = create_app(world.settings, session_factory=world.session_factory, storage=world.storage)
    with TestClient(app) as api:
        got = api.get(urlsplit(download_url).path)
        assert got.status_code == 200 and got.content == world.files[world.sha["cat.mp4"]]
        tampered = api.get(urlsplit(download_url).path[:-3] + "AAA")
        assert tampered.status_code == 403


@pytest.mark.parametrize("case", ["missing", "invalid", "revoked", "no-scope", "no-database"])
def test_stdio_refuses_to_start(world, tmp_path, case):
    key = {"missing": None, "invalid": "rf_live_not-a-real-key", "revoked": world.keys["a_revoked"],
           "no-scope": world.keys["a_no_read"], "no-database": world.keys["a"]}[case]  # fmt: skip
    env = _stdio_env(world, key)
    if case == "no-database":
        env.pop("REELFARM_DATABASE_URL", None)
        env["REELFARM_DATA_DIR"] = str(tmp_path / "empty")
    expected = {"missing": "REELFARM_API_KEY is not set", "invalid": accounts.INVALID_KEY,
                "revoked": accounts.INVALID_KEY, "no-scope": accounts.missing_scope("assets:read"),
                "no-database": "no ReelFarm database at"}[case]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "reelfarm.cli", "mcp"], check=False, input="",
                          capture_output=True,
                          text=True, timeout=CALL_TIMEOUT, cwd=tmp_path,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("REELFARM_")}, **env})  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # stdout is the protocol's: nothing else may go there
    assert "reelfarm mcp: " in proc.stderr and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if case == "no-database":
        assert not (tmp_path / "empty" / "reelfarm.db").exists()  # a reader creates nothing


def test_stdio_sdk_client_fails_cleanly_with_a_bad_key(world, tmp_path):
    async def connect() -> None:
        async with (stdio_client(_stdio_params(world, "rf_live_not-a-real-key", tmp_path)) as (read, write),
                    ClientSession(read, write) as session):  # fmt: skip
            await session.initialize()

    # The server exits at once (status 2, message on stderr): the client sees the pipe close.
    assert _mcp_errors(connect) == ["Connection closed"]
