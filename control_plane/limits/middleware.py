"""The /api/v1 rate limits, as plain ASGI middleware (no extra task or body buffering).

Two layers, 60-second sliding windows, the stricter wins:

- per client IP, on every /api/v1 request: 120/min when the request carries an API key
  (X-API-Key or Authorization: Bearer, valid or not), 10/min without. A signed-in browser
  (the session cookie) and a presigned blob URL (the signature is its credential: a page
  of clip previews must not run out at ten) count as carrying one;
- per account, on every creating request (POST under /api/v1, whatever the route, so new
  families plug in): the plan's `api_rate_per_minute`. Plans without API access are left
  to the route, which answers 403.

A refused request gets 429 `{"success": false, "error": "Too many requests"}` with
X-RateLimit-Limit/-Remaining/-Reset (unix ms) and Retry-After (seconds). With Redis
configured and unreachable, 503 `{"success": false, "error": "Rate limiting unavailable"}`.
Responses to a known key that succeed, or that its plan refuses (403), carry
X-RateLimit-Plan and X-RateLimit-Limit (the plan's name and req/min).

The client IP is the socket peer, or, when the peer is one of REELFARM_TRUSTED_PROXIES, the
right-most X-Forwarded-For address that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from control_plane.accounts.service import hash_key
from control_plane.billing.plans import Plan, PlanBook
from control_plane.deps import SESSION_COOKIE, api_key_from
from control_plane.limits.windows import Decision, Layer, WindowUnavailable
from reelfarm.models.accounts import Account, ApiKey

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
IP_LIMIT_WITH_KEY = 120
IP_LIMIT_WITHOUT_KEY = 10
CREATING_METHODS = frozenset({"POST"})
# Presigned blob URLs (control_plane/blobs/views.py): their signature is the credential.
SIGNED_PATHS = (PREFIX + "/blobs/uploads/", PREFIX + "/blobs/downloads/")
SESSION_COOKIE_PREFIX = (SESSION_COOKIE + "=").encode()

TOO_MANY = json.dumps({"success": False, "error": "Too many requests"}).encode()
UNAVAILABLE = json.dumps({"success": False, "error": "Rate limiting unavailable"}).encode()


@dataclass(frozen=True)
class KeyOwner:
    account_id: str
    plan_id: str


class KeyCache:
    """key hash -> KeyOwner (or None: unknown or revoked), for a few seconds, bounded in size.

    A revoked key or a plan change takes effect within `ttl` seconds here (the route itself
    checks the key on every request).
    """

    _MISS = object()

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, KeyOwner | None]] = OrderedDict()
        self.lookups = 0  # database lookups made (cache misses)

    def get(self, key_hash: str):
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] <= self._clock():
            return self._MISS
        return entry[1]

    def put(self, key_hash: str, owner: KeyOwner | None) -> None:
        self._entries[key_hash] = (self._clock() + self.ttl, owner)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def is_miss(self, value) -> bool:
        return value is self._MISS


def lookup_key_owner(session_factory, key_hash: str) -> KeyOwner | None:
    """One indexed read (api_keys.key_hash is unique); run in a worker thread."""
    with session_factory() as session:
        row = session.execute(
            select(ApiKey.account_id, Account.plan)
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        ).first()
    return KeyOwner(row[0], row[1]) if row else None


def parse_networks(cidrs: list[str]) -> tuple:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def client_ip(scope, trusted: tuple) -> str:
    """The socket peer; behind a trusted proxy, the right-most forwarded address that is not one."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _in(peer, trusted):
        return peer
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer  # every hop is a trusted proxy: the first one asked


def _in(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _limit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(decision.reset_ms).encode()),
        (b"retry-after", str(decision.retry_after_s).encode()),
    ]


async def _answer(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class RateLimits:
    """What the middleware needs: the window backend, the plans, the key cache (app.state.rate_limits)."""

    def __init__(self, window, *, plans: PlanBook, session_factory, trusted_proxies: list[str],
                 key_cache: KeyCache | None = None) -> None:  # fmt: skip
        self.window = window
        self.plans = plans
        self.session_factory = session_factory
        self.trusted = parse_networks(trusted_proxies)
        self.keys = key_cache or KeyCache()

    async def owner_of(self, plaintext: str) -> KeyOwner | None:
        key_hash = hash_key(plaintext)
        owner = self.keys.get(key_hash)
        if self.keys.is_miss(owner):
            self.keys.lookups += 1
            owner = await run_in_threadpool(lookup_key_owner, self.session_factory, key_hash)
            self.keys.put(key_hash, owner)
        return owner

    async def close(self) -> None:
        await self.window.close()


class RateLimitMiddleware:
    def __init__(self, app, *, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        limits = self.limits
        plaintext = _key_of(scope)
        ip = client_ip(scope, limits.trusted)
        if plaintext is None:
            credentialed = path.startswith(SIGNED_PATHS) or _has_session_cookie(scope)
            layers = [Layer("ip", "ip:k:" + ip, IP_LIMIT_WITH_KEY) if credentialed
                      else Layer("ip", "ip:a:" + ip, IP_LIMIT_WITHOUT_KEY)]  # fmt: skip
            plan = None
        else:
            layers = [Layer("ip", "ip:k:" + ip, IP_LIMIT_WITH_KEY)]
            try:
                owner = await limits.owner_of(plaintext)
            except Exception:  # the database is down: the route will fail the same way
                log.exception("API key lookup for rate limiting failed")
                owner = None
            plan: Plan | None = limits.plans.of(owner.plan_id) if owner else None
            if plan is not None and plan.api_access and scope["method"] in CREATING_METHODS:
                layers.append(Layer("account", "acct:" + owner.account_id, plan.api_rate_per_minute))
        try:
            decision = await limits.window.hit(layers)
        except WindowUnavailable as exc:
            log.warning("%s: answering 503", exc)
            await _answer(send, 503, UNAVAILABLE, [(b"retry-after", b"1")])
            return
        if not decision.allowed:
            await _answer(send, 429, TOO_MANY, _limit_headers(decision))
            return
        if plan is None:
            await self.app(scope, receive, send)
            return
        plan_headers = [(b"x-ratelimit-plan", plan.name.encode()),
                        (b"x-ratelimit-limit", str(plan.api_rate_per_minute).encode())]  # fmt: skip

        async def send_with_plan(message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if status < 400 or status == 403:
                    message["headers"] = [*message.get("headers", []), *plan_headers]
            await send(message)

        await self.app(scope, receive, send_with_plan)


class _Headers:
    """Just enough of a Request for deps.api_key_from (no Request object per call)."""

    __slots__ = ("headers",)

    def __init__(self, scope) -> None:
        self.headers = _HeaderMap(scope.get("headers", ()))


class _HeaderMap:
    __slots__ = ("_raw",)

    def __init__(self, raw) -> None:
        self._raw = raw

    def get(self, name: str, default=None):
        wanted = name.encode()
        for key, value in self._raw:
            if key == wanted:
                return value.decode("latin-1")
        return default


def _has_session_cookie(scope) -> bool:
    return any(k == b"cookie" and SESSION_COOKIE_PREFIX in v for k, v in scope.get("headers", ()))


def _key_of(scope) -> str | None:
    return api_key_from(_Headers(scope)) or None
