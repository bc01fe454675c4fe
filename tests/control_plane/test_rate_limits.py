"""Rate limits on /api/v1 (control_plane/limits/): both layers on both backends (in-process and a
real redis-server), the stricter wins, the 429/503 answers and their headers, trusted proxies,
plan headers, a Redis outage answered 503 in bounded time, and two apps sharing one Redis.

Apps here run on SQLite in the test's folder; the key lookup is also run on PostgreSQL
(test_key_lookup_is_cached_*, on the shared `settings` fixture). Low per-account limits
come from an operator's plans file (REELFARM_PLANS_FILE), a real setting.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
import redis
from api_fixtures import stand_in_node
from fastapi.testclient import TestClient

from control_plane.accounts import service as accounts
from control_plane.limits.middleware import client_ip, parse_networks
from control_plane.limits.windows import SLIDING_WINDOW_LUA, Layer, MemoryWindow, RedisWindow, WindowUnavailable
from control_plane.main import create_app
from harness import local_redis
from reelfarm.database import make_engine, make_session_factory, session_scope
from reelfarm.migrate import upgrade
from reelfarm.settings import Settings

BACKENDS = ["memory", "redis"]
PLANS_TOML = """
[plans.tiny]
api_rate_per_minute = 3
languages_per_campaign = 1
api_keys = 5
api_access = true

[plans.roomy]
name = "Roomy"
api_rate_per_minute = 200
languages_per_campaign = 1
api_keys = 5
api_access = true
"""


@pytest.fixture(scope="session")
def redis_server():
    reason = local_redis.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = local_redis.LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture
def make_app(tmp_path, request):
    """make_app(backend, **settings) -> (app, TestClient factory). Redis is flushed first."""
    engines = []
    plans_file = tmp_path / "plans.toml"
    plans_file.write_text(PLANS_TOML)

    def make(backend: str, redis_url: str | None = None, **overrides):
        if backend == "redis" and redis_url is None:
            server = request.getfixturevalue("redis_server")
            redis_url = server.url
            with redis.Redis.from_url(redis_url) as r:
                r.flushall()
        settings = Settings(environment="test", data_dir=tmp_path / f"data{len(engines)}", plans_file=plans_file,
                            redis_url=redis_url if backend == "redis" else None, **overrides)  # fmt: skip
        engine = make_engine(settings.resolved_database_url)
        engines.append(engine)
        upgrade(engine)
        sessions = make_session_factory(engine)
        stand_in_node(sessions)  # so POST /api/v1/jobs gets as far as looking for the video
        return create_app(settings, session_factory=sessions)

    yield make
    for engine in engines:
        engine.dispose()


def new_key(app, account: str = "acme", plan: str | None = None) -> str:
    with session_scope(app.state.session_factory) as session:
        owner = accounts.get_or_create_account(session=session, name=account,
                                               plan=plan or app.state.settings.default_plan)  # fmt: skip
        return accounts.create_api_key(session=session, account=owner)


def assert_429(response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"success": False, "error": "Too many requests"}
    h = response.headers
    assert int(h["x-ratelimit-limit"]) == limit
    assert h["x-ratelimit-remaining"] == "0"
    reset_ms, retry_after = int(h["x-ratelimit-reset"]), int(h["retry-after"])
    now_ms = time.time() * 1000
    assert now_ms < reset_ms <= now_ms + 60_000 + 1000  # unix ms, within the next window
    assert 1 <= retry_after <= 60
    assert abs(retry_after - math.ceil((reset_ms - now_ms) / 1000)) <= 1  # the same instant, in seconds


# ------------------------------------------------------------------ the layers, through the API


@pytest.mark.parametrize("backend", BACKENDS)
def test_ip_layer_without_key_allows_ten_a_minute(make_app, backend):
    app = make_app(backend)
    with TestClient(app) as client:
        answers = [client.get("/api/v1/jobs/job_x").status_code for _ in range(10)]
        assert answers == [401] * 10  # counted, then answered by the route
        assert_429(client.get("/api/v1/jobs/job_x"), limit=10)
        assert_429(client.post("/api/v1/jobs", json={}), limit=10)  # every /api/v1 request, any method
        # Other clients, and paths outside /api/v1, are not limited by this client's count.
        with TestClient(app, client=("198.51.100.7", 1)) as other:
            assert other.get("/api/v1/jobs/job_x").status_code == 401
        assert all(client.get("/healthz").status_code == 200 for _ in range(15))
        assert client.get("/api/jobs/job_x").status_code == 401


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_blob_urls_and_browser_sessions_get_the_credentialed_ip_limit(make_app, backend):
    app = make_app(backend)
    with TestClient(app) as client:
        # A presigned blob URL carries its credential in the path: a page of previews
        # (here, bad signatures that the route refuses) is held to 120, not 10.
        answers = {client.get(f"/api/v1/blobs/downloads/tok{i}").status_code for i in range(30)}
        assert 429 not in answers and answers <= {400, 403, 404}, answers
    with TestClient(app, client=("198.51.100.8", 1)) as browser:
        browser.cookies.set("reels_session", "not-a-real-session")
        answers = {browser.get("/api/v1/jobs/job_x").status_code for _ in range(30)}
        assert answers == {401}, answers  # counted under 120/min; the route refuses the cookie
    with TestClient(app, client=("198.51.100.9", 1)) as anonymous:
        assert [anonymous.get("/api/v1/blobs").status_code for _ in range(11)][-1] == 429


@pytest.mark.parametrize("backend", BACKENDS)
def test_account_layer_is_stricter_on_creating_routes(make_app, backend):
    app = make_app(backend, default_plan="tiny")  # 3 req/min per account
    key, second_key = new_key(app), new_key(app)
    with TestClient(app) as client:
        creating = [client.post("/api/v1/jobs", json={"video_id": "vid_x"}, headers={"X-API-Key": key})
                    for _ in range(3)]  # fmt: skip
        assert [r.status_code for r in creating] == [404] * 3  # passed the limiter; no such video
        assert_429(client.post("/api/v1/jobs", json={"video_id": "vid_x"}, headers={"X-API-Key": key}), limit=3)
        # Per account: the account's other key, and another creating route, share the count.
        bearer = {"Authorization": f"Bearer {second_key}"}
        assert_429(client.post("/api/v1/batches", json={}, headers=bearer), limit=3)
        # Reads are not creating requests: only the IP layer (120/min with a key) applies.
        reads = [client.get("/api/v1/blobs", headers={"X-API-Key": key}) for _ in range(5)]
        assert [r.status_code for r in reads] == [200] * 5
        # Another account on the same IP is not held back by acme's plan.
        other = new_key(app, account="globex")
        assert client.post("/api/v1/jobs", json={"video_id": "vid_x"}, headers={"X-API-Key": other}).status_code == 404


@pytest.mark.parametrize("backend", BACKENDS)
def test_ip_layer_is_stricter_than_a_generous_plan(make_app, backend):
    app = make_app(backend, default_plan="roomy")  # 200 req/min per account, above the IP layer's 120
    key = new_key(app)
    with TestClient(app) as client:
        statuses = [client.post("/api/v1/jobs", json={"video_id": "v"}, headers={"X-API-Key": key}).status_code
                    for _ in range(120)]  # fmt: skip
        assert statuses == [404] * 120
        assert_429(client.post("/api/v1/jobs", json={"video_id": "v"}, headers={"X-API-Key": key}), limit=120)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_key_gets_only_the_ip_layer(make_app, backend):
    app = make_app(backend, default_plan="tiny")
    with TestClient(app) as client:
        answers = [client.post("/api/v1/jobs", json={}, headers={"X-API-Key": "rf_nope"}) for _ in range(12)]
        # Past the tiny plan's 3 and the keyless 10: a key header (even a wrong one) is the 120/min layer.
        assert [r.status_code for r in answers] == [401] * 12
        assert all("x-ratelimit-plan" not in r.headers for r in answers)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_headers_on_successful_and_plan_gated_responses(make_app, backend):
    app = make_app(backend)  # default plan: Business, 90 req/min
    key = new_key(app)
    free_key = new_key(app, account="freeloader", plan="free")
    with TestClient(app) as client:
        ok = client.get("/api/v1/blobs", headers={"X-API-Key": key})
        assert ok.status_code == 200
        assert ok.headers["x-ratelimit-plan"] == "Business" and ok.headers["x-ratelimit-limit"] == "90"
        missing = client.get("/api/v1/jobs/job_missing", headers={"X-API-Key": key})
        assert missing.status_code == 404 and "x-ratelimit-plan" not in missing.headers
        gated = client.get("/api/v1/blobs", headers={"Authorization": f"Bearer {free_key}"})
        assert gated.status_code == 403, gated.text
        assert gated.headers["x-ratelimit-plan"] == "Free" and gated.headers["x-ratelimit-limit"] == "0"
        # A plan without API access is refused by the route (403), never by a zero rate (429).
        posted = client.post("/api/v1/jobs", json={"video_id": "v"}, headers={"X-API-Key": free_key})
        assert posted.status_code == 403 and posted.headers["x-ratelimit-plan"] == "Free"


@pytest.mark.parametrize("backend", BACKENDS)
def test_forwarded_for_counts_only_from_trusted_proxies(make_app, backend):
    app = make_app(backend, trusted_proxies=["10.0.0.0/8"])
    with TestClient(app) as _:
        via_proxy = TestClient(app, client=("10.1.2.3", 4000))
        for _ in range(10):
            # A client-supplied left part is ignored: the right-most untrusted hop is the client.
            headers = {"X-Forwarded-For": f"6.6.6.{_}, 203.0.113.5, 10.9.9.9"}
            assert via_proxy.get("/api/v1/jobs/j", headers=headers).status_code == 401
        assert_429(via_proxy.get("/api/v1/jobs/j", headers={"X-Forwarded-For": "203.0.113.5"}), limit=10)
        assert via_proxy.get("/api/v1/jobs/j", headers={"X-Forwarded-For": "203.0.113.6"}).status_code == 401
        # An untrusted peer's X-Forwarded-For is ignored: rotating it does not escape its own count.
        direct = TestClient(app, client=("192.0.2.44", 4000))
        answers = [direct.get("/api/v1/jobs/j", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                   for i in range(11)]  # fmt: skip
        assert answers == [401] * 10 + [429]


def test_client_ip_rules():
    trusted = parse_networks(["10.0.0.0/8", "2001:db8::/32"])

    def scope(peer, *xff):
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", v.encode()) for v in xff]}

    assert client_ip(scope("192.0.2.1", "1.2.3.4"), trusted) == "192.0.2.1"
    assert client_ip(scope("10.0.0.1", "1.2.3.4"), trusted) == "1.2.3.4"
    assert client_ip(scope("10.0.0.1", "9.9.9.9, 1.2.3.4, 10.0.0.2"), trusted) == "1.2.3.4"
    assert client_ip(scope("10.0.0.1", "9.9.9.9", "1.2.3.4"), trusted) == "1.2.3.4"  # repeated headers, in order
    assert client_ip(scope("2001:db8::1", "2001:db8::2, 1.2.3.4"), trusted) == "1.2.3.4"
    assert client_ip(scope("10.0.0.1"), trusted) == "10.0.0.1"  # a trusted peer that forwards nothing
    assert client_ip(scope("10.0.0.1", "10.0.0.3, 10.0.0.2"), trusted) == "10.0.0.3"
    assert client_ip(scope("10.0.0.1", "1.2.3.4"), ()) == "10.0.0.1"  # no trusted proxies configured


# ------------------------------------------------------------------ Redis: shared, and failing closed


def test_two_apps_on_one_redis_share_the_count(make_app, redis_server):
    first, second = make_app("redis"), make_app("redis", redis_url=redis_server.url)
    with TestClient(first) as a, TestClient(second) as b:
        assert [a.get("/api/v1/jobs/j").status_code for _ in range(6)] == [401] * 6
        assert [b.get("/api/v1/jobs/j").status_code for _ in range(4)] == [401] * 4
        assert_429(b.get("/api/v1/jobs/j"), limit=10)
        assert_429(a.get("/api/v1/jobs/j"), limit=10)


def test_a_dead_redis_answers_503_quickly(make_app):
    server = local_redis.LocalRedis().start()
    try:
        app = make_app("redis", redis_url=server.url)
        with TestClient(app) as client:
            assert client.get("/api/v1/jobs/j").status_code == 401  # Redis up: limited and passed on
            server.kill()
            for _ in range(3):
                started = time.monotonic()
                response = client.get("/api/v1/jobs/j")
                elapsed = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.json() == {"success": False, "error": "Rate limiting unavailable"}
                assert elapsed < 2.0, elapsed
            # Outside /api/v1 the API does not need Redis.
            assert client.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_an_unanswering_redis_answers_503_within_the_timeout(make_app):
    """A peer that accepts connections and never answers (a hung Redis): the read timeout ends the wait."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        app = make_app("redis", redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_seconds=0.2)
        with TestClient(app) as client:
            started = time.monotonic()
            response = client.post("/api/v1/jobs", json={})
            assert response.status_code == 503 and time.monotonic() - started < 2.0


# ------------------------------------------------------------------ the backends: sliding windows


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_memory_window_slides_and_retry_after_is_honoured():
    clock = FakeClock()
    start = clock.now
    window = MemoryWindow(clock=clock)
    layer = [Layer("ip", "ip:a:1.2.3.4", 2)]
    assert window.hit_now(layer).remaining == 1
    clock.now = start + 10
    second = window.hit_now(layer)
    assert second.allowed and second.remaining == 0 and second.reset_ms == (start + 60) * 1000
    clock.now = start + 20
    refused = window.hit_now(layer)
    assert not refused.allowed and refused.retry_after_s == 40 and refused.reset_ms == (start + 60) * 1000
    clock.now = start + 59.9
    assert not window.hit_now(layer).allowed  # refusals are not counted, and the window has not moved yet
    clock.now = start + 60  # Retry-After later: the first request has left the window
    again = window.hit_now(layer)
    assert again.allowed and again.remaining == 0
    clock.now = start + 60.5
    refused = window.hit_now(layer)
    assert not refused.allowed and refused.reset_ms == (start + 70) * 1000  # the 10 s request leaves next


def test_memory_window_stricter_layer_and_refusal_counts_nowhere():
    clock = FakeClock()
    window = MemoryWindow(clock=clock)
    ip, account = Layer("ip", "ip:k:a", 5), Layer("account", "acct:x", 2)
    decisions = [window.hit_now([ip, account]) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[1].layer == "account" and decisions[1].limit == 2 and decisions[1].remaining == 0
    assert decisions[2].layer == "account"
    # The refused request was not counted on the IP layer: 3 left of 5 after two passes.
    assert window.hit_now([ip]).remaining == 2


def test_memory_window_forgets_idle_keys():
    clock = FakeClock()
    window = MemoryWindow(clock=clock, sweep_every=100)
    for i in range(100):
        window.hit_now([Layer("ip", f"ip:a:{i}", 10)])
    assert len(window) == 100
    clock.now += 61
    for _ in range(100):
        window.hit_now([Layer("ip", "ip:a:busy", 1000)])
    assert len(window) == 1


def test_lua_result_fields_follow_redis_time(redis_server):
    r = redis.Redis.from_url(redis_server.url)
    r.flushall()
    script = r.register_script(SLIDING_WINDOW_LUA)
    window_us = 60_000_000

    def redis_ms() -> int:
        seconds, micros = r.time()
        return seconds * 1000 + micros // 1000

    before = redis_ms()
    allowed, index, limit, remaining, reset_ms, now_ms = script(keys=["t:ip", "t:acct"], args=[window_us, "m1", 5, 1])
    after = redis_ms()
    assert (allowed, index, limit, remaining) == (1, 2, 1, 0)  # the account layer binds: none left
    assert before <= now_ms <= after + 1  # rounded up to the ms
    assert now_ms + 60_000 <= reset_ms <= now_ms + 60_001  # the request just counted leaves in 60 s
    denied = script(keys=["t:ip", "t:acct"], args=[window_us, "m2", 5, 1])
    assert denied[:4] == [0, 2, 1, 0] and denied[4] == reset_ms and denied[5] >= now_ms
    assert r.zcard("t:ip") == 1 and r.zcard("t:acct") == 1  # the refusal was counted by neither layer
    assert 59_000 < r.pttl("t:acct") <= 60_000  # the log expires with its window
    r.close()


def test_redis_window_slides_on_redis_time(redis_server):
    """The backend on a 1-second window (a constructor parameter of the backend): after the
    refusal's reset, the next request passes."""

    async def scenario() -> None:
        window = RedisWindow(redis_server.url, timeout_seconds=0.5, window_seconds=1.0)
        layer = [Layer("ip", f"slide:{time.time_ns()}", 1)]
        try:
            assert (await window.hit(layer)).allowed
            refused = await window.hit(layer)
            assert not refused.allowed and 0 < refused.reset_ms - refused.now_ms <= 1000
            assert refused.retry_after_s == 1
            await asyncio.sleep((refused.reset_ms - refused.now_ms) / 1000 + 0.02)
            assert (await window.hit(layer)).allowed
        finally:
            await window.close()

    asyncio.run(scenario())


def test_redis_window_raises_unavailable_when_nothing_listens():
    from harness.local_postgres import free_port

    async def scenario() -> float:
        window = RedisWindow(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.3)
        started = time.monotonic()
        with pytest.raises(WindowUnavailable):
            await window.hit([Layer("ip", "x", 1)])
        await window.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.5


# ------------------------------------------------------------------ the key lookup (both databases)


def test_key_lookup_is_cached(settings):
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    app = create_app(settings, session_factory=make_session_factory(engine))
    try:
        key = new_key(app)
        with TestClient(app) as client:
            answers = [client.get("/api/v1/blobs", headers={"X-API-Key": key}) for _ in range(20)]
            assert all(r.status_code == 200 and r.headers["x-ratelimit-plan"] == "Business" for r in answers)
            assert app.state.rate_limits.keys.lookups == 1  # one read for 20 requests
    finally:
        engine.dispose()
