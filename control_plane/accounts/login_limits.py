"""Login attempts, rate limited: the API's POST /api/auth/login and the dashboard's login form.

Two layers on the app's sliding-window limiter (app.state.rate_limits.window: in-process, or
shared on Redis): LOGIN_PER_IP attempts a minute from one client IP (the address the /api/v1
limits use, so behind a trusted proxy the forwarded one), and LOGIN_PER_EMAIL a minute at one
address, whoever tries it (so password guessing spread over many IPs is slowed too). Every
attempt counts, right or wrong; a refused one counts against neither. An "address" that is not
shaped like one is not counted: no user has it, and verify_login refuses it without hashing.
The address is hashed in the counter's key (Redis holds no e-mail addresses).

Refused: ApiError 429 with Retry-After; the API answers it as JSON, the dashboard as its
error page. A shared limiter that cannot be reached: 503, as the /api/v1 limits answer.
"""

from __future__ import annotations

import hashlib
import logging

from starlette.requests import Request

from control_plane.accounts.service import is_email
from control_plane.errors import ApiError
from control_plane.limits.middleware import client_ip
from control_plane.limits.windows import Layer, WindowUnavailable

LOGIN_PER_IP = 10
LOGIN_PER_EMAIL = 5
TOO_MANY_LOGINS = "too many login attempts: try again in {seconds} seconds"
log = logging.getLogger(__name__)


def login_layers(ip: str, email: str) -> list[Layer]:
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return [Layer("ip", "login:ip:" + ip, LOGIN_PER_IP), Layer("email", "login:email:" + address, LOGIN_PER_EMAIL)]


async def check_login_rate(request: Request, email: str) -> None:
    """Count one login attempt for `email` from this request's client; 429 when over either limit."""
    if not is_email(email):
        return
    limits = request.app.state.rate_limits
    layers = login_layers(client_ip(request.scope, limits.trusted), email)
    try:
        decision = await limits.window.hit(layers)
    except WindowUnavailable as exc:
        log.warning("%s: refusing the login with 503", exc)
        raise ApiError(503, "Rate limiting unavailable", headers={"Retry-After": "1"}) from None
    if not decision.allowed:
        seconds = decision.retry_after_s
        raise ApiError(429, TOO_MANY_LOGINS.format(seconds=seconds), headers={"Retry-After": str(seconds)})
