"""Sliding-window rate limits: one interface, `await window.hit(layers) -> Decision`.

A request is checked against several layers at once (its client IP, its account); the
stricter wins. A request that any layer refuses is counted by none, so a refused client
does not push its own window further out. Each layer keeps a log of the instants it let
requests through; a request passes when fewer than `limit` of them lie in the last
`window_seconds`.

- `MemoryWindow`: in this process (the embedded default); a deque of instants per key, an
  injectable clock. (The `limits` library's MemoryStorage reads `time.time()` itself and
  runs a timer thread; this is the same moving window in a few lines, ~20x cheaper.)
- `RedisWindow`: shared by every API process on one Redis: ONE Lua script checks and
  counts every layer in one round trip on Redis's own clock (`TIME`), a sorted set per
  key that expires with its window. Unreachable Redis raises `WindowUnavailable` within
  bounded time (connect/read timeouts, a blocking pool with a timeout, one quick retry).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WINDOW_SECONDS = 60
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layer:
    name: str  # "ip" or "account": which layer decided (logs, tests)
    key: str  # the counted thing, e.g. "ip:k:203.0.113.9" or "acct:acc_123"
    limit: int  # requests per window


@dataclass(frozen=True)
class Decision:
    """The outcome for the binding layer: the refusing one (latest reset), else the one with
    the fewest requests left."""

    allowed: bool
    layer: str
    limit: int
    remaining: int
    reset_ms: int  # unix ms: when the binding layer lets one more request through
    now_ms: int  # the limiter's clock at the decision (Redis's TIME for RedisWindow)

    @property
    def retry_after_s(self) -> int:
        """Whole seconds to wait (>= 1): what a refused client is told."""
        return max(1, math.ceil((self.reset_ms - self.now_ms) / 1000))


class WindowUnavailable(RuntimeError):
    """The shared counter could not be reached in time: the API fails closed (503)."""


class MemoryWindow:
    """The moving window in this process. Not shared between processes."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, *, clock: Callable[[], float] = time.time,
                 sweep_every: int = 4096) -> None:  # fmt: skip
        self.window = float(window_seconds)
        self._clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._sweep_every = sweep_every
        self._hits = 0

    def __len__(self) -> int:
        """Keys held (idle keys are dropped every `sweep_every` hits)."""
        return len(self._logs)

    async def hit(self, layers: Sequence[Layer]) -> Decision:
        return self.hit_now(layers)

    def hit_now(self, layers: Sequence[Layer]) -> Decision:
        """Synchronous: no await between check and count, so concurrent requests cannot over-admit."""
        now = self._clock()
        horizon = now - self.window
        counted = []
        refusal: tuple[float, Layer] | None = None
        for layer in layers:
            log = self._logs.get(layer.key)
            if log is not None:
                while log and log[0] <= horizon:
                    log.popleft()
            count = len(log) if log else 0
            counted.append((layer, count))
            if count >= layer.limit:
                # One more passes when the (count - limit + 1)-th oldest instant leaves the window.
                reset = log[count - layer.limit] + self.window if layer.limit > 0 else now + self.window
                if refusal is None or reset > refusal[0]:
                    refusal = (reset, layer)
        now_ms = math.ceil(now * 1000)  # rounded like reset_ms, so their difference is exact
        if refusal is not None:
            reset, layer = refusal
            return Decision(False, layer.name, layer.limit, 0, math.ceil(reset * 1000), now_ms)
        best: tuple[int, float, Layer] | None = None
        for layer, count in counted:
            log = self._logs.get(layer.key)
            if log is None:
                log = self._logs[layer.key] = deque()
            log.append(now)
            remaining, reset = layer.limit - count - 1, log[0] + self.window
            if best is None or (remaining, -reset) < (best[0], -best[1]):
                best = (remaining, reset, layer)
        self._hits += 1
        if self._hits % self._sweep_every == 0:
            self._sweep(horizon)
        if best is None:  # no layers: nothing limits this request
            return Decision(True, "", 0, 0, now_ms, now_ms)
        remaining, reset, layer = best
        return Decision(True, layer.name, layer.limit, remaining, math.ceil(reset * 1000), now_ms)

    def _sweep(self, horizon: float) -> None:
        for key in [k for k, log in self._logs.items() if not log or log[-1] <= horizon]:
            del self._logs[key]

    async def close(self) -> None:
        pass  # nothing held outside this object


# KEYS: one sorted set per layer. ARGV[1]: window (microseconds); ARGV[2]: a member unique
# to this request; ARGV[3..]: each layer's limit. Scores are Redis TIME in microseconds.
# Returns {allowed (0|1), binding layer (1-based), limit, remaining, reset_ms, now_ms}; both
# instants rounded up to the millisecond, so reset_ms - now_ms is exact.
SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local horizon = string.format('%.0f', now - window)
local counts = {}
local deny, deny_reset = 0, -1
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 + i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', horizon)
  local count = redis.call('ZCARD', KEYS[i])
  counts[i] = count
  if count >= limit then
    local reset = now + window
    if limit > 0 then
      local e = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
      reset = tonumber(e[2]) + window
    end
    if reset > deny_reset then
      deny, deny_reset = i, reset
    end
  end
end
if deny > 0 then
  return {0, deny, tonumber(ARGV[2 + deny]), 0, math.ceil(deny_reset / 1000), math.ceil(now / 1000)}
end
local best, best_remaining, best_reset = 0, 0, 0
local score = string.format('%.0f', now)
local ttl = string.format('%.0f', math.ceil(window / 1000))
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], score, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ttl)
  local remaining = tonumber(ARGV[2 + i]) - counts[i] - 1
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  local reset = tonumber(oldest[2]) + window
  if best == 0 or remaining < best_remaining or (remaining == best_remaining and reset > best_reset) then
    best, best_remaining, best_reset = i, remaining, reset
  end
end
if best == 0 then
  return {1, 0, 0, 0, math.ceil(now / 1000), math.ceil(now / 1000)}
end
return {1, best, tonumber(ARGV[2 + best]), best_remaining, math.ceil(best_reset / 1000), math.ceil(now / 1000)}
"""

KEY_PREFIX = "reelfarm:rl:"


class RedisWindow:
    """The moving window on Redis (redis.asyncio), shared by every process that uses the same Redis.

    One client per event loop: a connection belongs to the loop that opened it (tests run
    several loops in turn; a server runs one).
    """

    def __init__(self, url: str, *, timeout_seconds: float, window_seconds: float = WINDOW_SECONDS,
                 max_connections: int = 64) -> None:  # fmt: skip
        self.url = url
        self.timeout = timeout_seconds
        self.window = window_seconds
        self.max_connections = max_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = None
        self._script = None
        # Members must be unique per request: this process's random prefix and a counter.
        self._tokens = (f"{os.urandom(6).hex()}:{n}" for n in itertools.count())

    def _connect(self) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=self.timeout,
            socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),  # one immediate retry: a pooled connection Redis closed
        )  # fmt: skip
        self._client = Redis(connection_pool=pool)
        self._script = self._client.register_script(SLIDING_WINDOW_LUA)
        self._loop = asyncio.get_running_loop()

    async def hit(self, layers: Sequence[Layer]) -> Decision:
        from redis.exceptions import RedisError

        if self._loop is not asyncio.get_running_loop():
            self._connect()
        keys = [KEY_PREFIX + layer.key for layer in layers]
        args = [int(self.window * 1_000_000), next(self._tokens), *(layer.limit for layer in layers)]
        try:
            # The pool and socket timeouts bound each step; this bounds their sum (and a retry).
            async with asyncio.timeout(self.timeout * 4):
                allowed, index, limit, remaining, reset_ms, now_ms = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise WindowUnavailable(f"rate limiter Redis unavailable: {exc!r}") from exc
        layer = layers[index - 1].name if index else ""
        return Decision(bool(allowed), layer, int(limit), int(remaining), int(reset_ms), int(now_ms))

    async def close(self) -> None:
        client, self._client, self._script, self._loop = self._client, None, None, None
        if client is not None:
            try:
                await client.aclose()
                await client.connection_pool.disconnect()
            except Exception as exc:  # noqa: BLE001 (closing a client whose loop or server is gone)
                log.debug("closing the rate limiter's Redis client: %r", exc)
