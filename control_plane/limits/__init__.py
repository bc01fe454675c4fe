"""Rate limits on /api/v1 (middleware.py) over a sliding-window backend (windows.py).

`install(app)` picks the backend from the settings (Redis when REELFARM_REDIS_URL is set,
else in-process), adds the middleware and closes the backend when the app shuts down.
"""

from __future__ import annotations

from fastapi import FastAPI

from control_plane.lifespan import around_lifespan
from control_plane.limits.middleware import RateLimitMiddleware, RateLimits
from control_plane.limits.windows import MemoryWindow, RedisWindow


def install(app: FastAPI) -> RateLimits:
    """Call after app.state.settings, .plans and .session_factory are set."""
    settings = app.state.settings
    if settings.redis_url:
        window = RedisWindow(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    else:
        window = MemoryWindow()
    limits = RateLimits(window, plans=app.state.plans, session_factory=app.state.session_factory,
                        trusted_proxies=settings.trusted_proxies)  # fmt: skip
    app.state.rate_limits = limits
    app.add_middleware(RateLimitMiddleware, limits=limits)

    around_lifespan(app, stop=limits.close)
    return limits
