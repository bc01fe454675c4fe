"""Signed, expiring capability tokens (HMAC-SHA256 over the settings' secret key).

A token carries its claims (URL-safe base64 JSON) and the purpose it was made for, so a
token minted for one use (an upload) is refused for another (a download).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


class BadToken(Exception):
    """Malformed, forged, for another purpose, or expired: the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest())


def sign(*, secret: str, purpose: str, claims: dict, expires_at: int) -> str:
    body = _b64(json.dumps({**claims, "exp": expires_at}, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(secret, purpose, body)}"


def verify(*, secret: str, purpose: str, token: str, now: float | None = None) -> dict:
    body, _, mac = token.partition(".")
    if not body or not mac or not token.isascii():
        raise BadToken("malformed token")
    if not hmac.compare_digest(_mac(secret, purpose, body), mac):
        raise BadToken("invalid signature")
    try:
        claims = json.loads(_unb64(body))
    except ValueError as exc:
        raise BadToken("malformed token") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise BadToken("malformed token")
    if claims["exp"] < (time.time() if now is None else now):
        raise BadToken("expired")
    return claims
