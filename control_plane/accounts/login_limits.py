"""Login attempts and sign-ups, rate limited: the API's POST /api/auth/login and /api/auth/signup
and the dashboard's forms for both.

Two layers on the app's sliding-window limiter (app.state.rate_limits.window: in-process, or
shared on Redis): LOGIN_PER_IP attempts a minute from one client IP (the address the /api/v1
limits use, so behind a trusted proxy the forwarded one), and LOGIN_PER_EMAIL a minute at one
address, whoever tries it (so password guessing spread over many IPs is slowed too). Every
attempt counts, right or wrong; a refused one counts against neither. An "address" that is not
shaped like one is not counted: no user has it, and verify_login refuses it without hashing.
The address is hashed in the counter's key (Redis holds no e-mail addresses).

Sign-ups: SIGNUP_PER_IP a minute from one client IP (each one hashes a password and makes a
workspace), counted only for a well-formed address (anything else is refused before any work).

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
SIGNUP_PER_IP = 10
TOO_MANY_LOGINS = "too many login attempts: try again in {seconds} seconds"
TOO_MANY_SIGNUPS = "too many sign-ups from this address: try again in {seconds} seconds"
log = logging.getLogger(__name__)


def login_layers(ip: str, email: str) -> list[Layer]:
    address = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return [Layer("ip", "login:ip:" + ip, LOGIN_PER_IP), Layer("email", "login:email:" + address, LOGIN_PER_EMAIL)]


async def check_login_rate(request: Request, email: str) -> None:
    """Count one login attempt for `email` from this request's client; 429 when over either limit."""
    if not is_email(email):
        return
    limits = request.app.state.rate_limits
    await _hit(request, login_layers(client_ip(request.scope, limits.trusted), email), TOO_MANY_LOGINS)


async def check_signup_rate(request: Request, email: str) -> None:
    """Count one sign-up from this request's client; 429 when over SIGNUP_PER_IP a minute."""
    if not is_email(email):
        return
    limits = request.app.state.rate_limits
    ip = client_ip(request.scope, limits.trusted)
    await _hit(request, [Layer("ip", "signup:ip:" + ip, SIGNUP_PER_IP)], TOO_MANY_SIGNUPS)


async def _hit(request: Request, layers: list[Layer], refusal: str) -> None:
    try:
        decision = await request.app.state.rate_limits.window.hit(layers)
    except WindowUnavailable as exc:
        log.warning("%s: refusing the request with 503", exc)
        raise ApiError(503, "Rate limiting unavailable", headers={"Retry-After": "1"}) from None
    if not decision.allowed:
        seconds = decision.retry_after_s
        raise ApiError(429, refusal.format(seconds=seconds), headers={"Retry-After": str(seconds)})
