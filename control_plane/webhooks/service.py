"""Webhooks: URL checks at submission, the account's signing secret, signatures, the
deliveries log and replays. Sending is control_plane/webhooks/delivery.py.

The secret is in the Standard Webhooks format, `whsec_` + base64 of 32 random bytes, so
its client libraries take it as it is. Two signatures are sent with every delivery:

- `X-ReelFarm-Signature`: hex HMAC-SHA256 over `"{timestamp}.{event_id}.{body}"`, keyed
  with the whole secret string as UTF-8 (`whsec_...` included), with `X-ReelFarm-Timestamp`
  (unix seconds), `X-ReelFarm-Event-Id` and `X-ReelFarm-Signature-Alg: HMAC-SHA256`;
- `webhook-signature` (`v1,<base64>`), `webhook-id`, `webhook-timestamp`: Standard
  Webhooks, signed by its `standardwebhooks` package (keyed with the secret's decoded bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from control_plane.accounts import service as accounts
from control_plane.accounts.service import Principal
from control_plane.errors import ApiError
from reelfarm.address_guard import AddressPolicy, FetchRefused, check_url_syntax
from reelfarm.database import utcnow
from reelfarm.models.accounts import Account
from reelfarm.models.webhooks import WebhookDelivery, WebhookEvent
from reelfarm.settings import Settings

SECRET_PREFIX = "whsec_"
SIGNATURE_ALG = "HMAC-SHA256"
MAX_OFFSET = 10_000


# ------------------------------------------------------------------ webhook URLs


def _is_local_host(host: str, policy: AddressPolicy) -> bool:
    """True when every address of `host` is loopback or inside the allow-list."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return False
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return bool(addresses) and all(
        ip.is_loopback or any(ip.version == net.version and ip in net for net in policy.allow) for ip in addresses
    )


def check_webhook_url(url: str, *, settings: Settings) -> str:
    """The URL a job's webhooks go to, or 400 `webhook_url: ...`.

    https always (its addresses are checked again at every delivery); http only outside
    production, and only to loopback or `fetch_allow_networks` hosts (a receiver on the
    developer's machine or network).
    """
    try:
        parsed = check_url_syntax(url)
    except FetchRefused as exc:
        raise ApiError(400, f"webhook_url: {exc}") from None
    if parsed.scheme == "https":
        return url
    if settings.environment == "prod":
        raise ApiError(400, "webhook_url: must be an https URL")
    if not _is_local_host(parsed.host, AddressPolicy.from_settings(settings)):
        raise ApiError(400, "webhook_url: http is only allowed to loopback or allow-listed hosts; use https")
    return url


# ------------------------------------------------------------------ the signing secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def account_secret(*, session: Session, account_id: str) -> str:
    """The account's secret, made on first need (the caller commits).

    Two processes making it at once agree: only the first conditional update writes.
    """
    secret = session.scalar(select(Account.webhook_secret).where(Account.id == account_id))
    if secret:
        return secret
    session.execute(update(Account).where(Account.id == account_id, Account.webhook_secret.is_(None))
                    .values(webhook_secret=new_secret()).execution_options(synchronize_session=False))  # fmt: skip
    secret = session.scalar(select(Account.webhook_secret).where(Account.id == account_id)
                            .execution_options(populate_existing=True))  # fmt: skip
    if not secret:
        raise ApiError(404, "account not found")
    return secret


def get_secret(*, session: Session, principal: Principal) -> str:
    accounts.require_role(principal, "owner", "admin")
    return account_secret(session=session, account_id=principal.account.id)


def rotate_secret(*, session: Session, principal: Principal) -> str:
    """A new secret: deliveries from now on are signed with it (the old one stops at once)."""
    accounts.require_role(principal, "owner", "admin")
    secret = new_secret()
    session.execute(update(Account).where(Account.id == principal.account.id).values(webhook_secret=secret)
                    .execution_options(synchronize_session=False))  # fmt: skip
    return secret


def signature(secret: str, *, timestamp: int, event_id: str, body: str) -> str:
    """Hex HMAC-SHA256 of `"{timestamp}.{event_id}.{body}"`, keyed with the secret string."""
    message = f"{timestamp}.{event_id}.{body}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, *, event_id: str, body: str, timestamp: int) -> dict[str, str]:
    """Every header a delivery carries: ours and Standard Webhooks'."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "ReelFarm-Webhooks/1",
        "X-ReelFarm-Event-Id": event_id,
        "X-ReelFarm-Timestamp": str(timestamp),
        "X-ReelFarm-Signature": signature(secret, timestamp=timestamp, event_id=event_id, body=body),
        "X-ReelFarm-Signature-Alg": SIGNATURE_ALG,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(event_id, datetime.fromtimestamp(timestamp, UTC), body),
    }


# ------------------------------------------------------------------ deliveries log and replay


def delivery_data(delivery: WebhookDelivery, event: WebhookEvent) -> dict:
    return {
        "id": delivery.id,
        "event_id": event.id,
        "event": event.event,
        "subject_id": event.subject_id,
        "url": event.url,
        "attempt": delivery.attempt,
        "status_code": delivery.status_code,
        "duration_ms": delivery.duration_ms,
        "error": delivery.error,
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "event_status": event.status,
    }


def list_deliveries(*, session: Session, account: Account, limit: int, offset: int = 0,
                    event_id: str | None = None) -> list[dict]:
    """The account's delivery attempts, newest first."""
    query = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.account_id == account.id)
    )
    if event_id:
        query = query.where(WebhookDelivery.event_id == event_id)
    rows = session.execute(query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.attempt.desc(),
                                          WebhookDelivery.id.desc()).limit(limit).offset(offset))  # fmt: skip
    return [delivery_data(d, e) for d, e in rows]


def replay_event(*, session: Session, account: Account, event_id: str) -> WebhookEvent:
    """Send the event again, same id and same body, with a fresh budget of attempts."""
    event = session.get(WebhookEvent, event_id)
    if event is None or event.account_id != account.id:
        raise ApiError(404, "webhook event not found")
    if event.locked_until is not None and event.locked_until > utcnow():
        raise ApiError(409, "a delivery of this event is under way; replay it when it has finished")
    event.status = "pending"
    event.attempts = 0
    event.next_attempt_at = utcnow()
    event.locked_until = None
    event.delivered_at = None
    return event
