"""Delivering the outbox (reelfarm/outbox.py): claim, render, sign, POST, record, retry.

Every API process runs `DeliveryWorkers` (threads started by the app's lifespan). A worker
polls for due events (every POLL_SECONDS, and at once when this process commits one) and
claims each with a conditional UPDATE of `locked_until`: only the worker whose update
matched the row (rowcount 1) sends it, so API processes sharing a database never both
send an attempt, on PostgreSQL and SQLite alike. A worker that dies mid-attempt leaves the
lease to run out, and the event is then claimed again.

An event recorded without a body (job events from the scheduler) gets it at its first
claim, rendered here and stored: retries and replays send the same bytes.

Attempts: len(webhook_retry_delays_seconds) + 1 in all, the pauses jittered by +-20% and
stretched to the receiver's `Retry-After` when that is longer (at most an hour). A 2xx
within webhook_timeout_seconds delivers it; 410 Gone stops it (status gone); anything else
(another status, a timeout, a refused address, a redirect, which is never followed) is a
failed attempt. Every attempt is a `webhook_deliveries` row.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from reelfarm.address_guard import AddressPolicy, describe, guarded_client
from control_plane.v1 import results
from control_plane.webhooks import service
from reelfarm import outbox
from reelfarm.database import iso_z, utcnow
from reelfarm.models.jobs import Job
from reelfarm.models.webhooks import WebhookDelivery, WebhookEvent
from reelfarm.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BATCH = 20
LEASE_MARGIN_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 3600.0
JITTER = 0.2
ERROR_MAX_CHARS = 1000


# ------------------------------------------------------------------ bodies


def render_job_body(session: Session, event: WebhookEvent, settings: Settings) -> str | None:
    """`{event, job_id, status, data, timestamp}`; data is the job's result document."""
    job = session.get(Job, event.subject_id)
    if job is None:
        return None
    data = results.job_result(session=session, job=job, base_url=settings.public_url)
    return json.dumps({"event": event.event, "job_id": job.id, "status": job.status, "data": data,
                       "timestamp": iso_z(event.created_at)}, separators=(",", ":"))  # fmt: skip


def render_campaign_body(session: Session, event: WebhookEvent, settings: Settings) -> str | None:
    """seeds/004: `{event, campaign_id, status, videos, timestamp}`, videos as GET shows them."""
    from control_plane.campaigns.service import campaign_document
    from reelfarm.models.campaigns import Campaign

    campaign = session.get(Campaign, event.subject_id)
    if campaign is None:
        return None
    document = campaign_document(session=session, campaign=campaign, base_url=settings.public_url)
    body = {"event": event.event, "campaign_id": campaign.id, "status": campaign.status,
            "videos": document["videos"], "timestamp": iso_z(event.created_at)}  # fmt: skip
    if campaign.error:
        body["error"] = campaign.error
    return json.dumps(body, separators=(",", ":"))


# Event name prefix -> renderer, for events recorded without a body.
RENDERERS: dict[str, Callable[[Session, WebhookEvent, Settings], str | None]] = {
    "job.": render_job_body, "campaign.": render_campaign_body}


def render_body(session: Session, event: WebhookEvent, settings: Settings) -> str | None:
    for prefix, render in RENDERERS.items():
        if event.event.startswith(prefix):
            return render(session, event, settings)
    return None


# ------------------------------------------------------------------ claiming


def _due(now: datetime):
    return (
        WebhookEvent.status == "pending",
        WebhookEvent.next_attempt_at <= now,
        or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < now),
    )


def due_event_ids(session: Session, *, now: datetime | None = None, limit: int = BATCH) -> list[str]:
    now = now or utcnow()
    return list(session.scalars(select(WebhookEvent.id).where(*_due(now))
                                .order_by(WebhookEvent.next_attempt_at).limit(limit)))  # fmt: skip


def claim(session: Session, event_id: str, *, lease_seconds: float, now: datetime | None = None) -> bool:
    """Lease the event to this worker; True only for the one worker whose update matched it."""
    now = now or utcnow()
    result = session.execute(
        update(WebhookEvent).where(WebhookEvent.id == event_id, *_due(now))
        .values(locked_until=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    session.commit()
    return result.rowcount == 1


# ------------------------------------------------------------------ one attempt


@dataclass
class Attempt:
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())


def post(client: httpx.Client, *, url: str, body: str, headers: dict[str, str]) -> Attempt:
    """POST once through the guarded client (no redirects); never raises."""
    started = time.monotonic()
    attempt = Attempt()
    try:
        response = client.send(client.build_request("POST", url, content=body.encode(), headers=headers), stream=True)
        try:
            attempt.status_code = response.status_code
            if response.is_redirect:
                attempt.error = f"HTTP {response.status_code}: redirects are not followed"
            elif not attempt.delivered:
                attempt.error = f"HTTP {response.status_code}"
                attempt.retry_after = parse_retry_after(response.headers.get("retry-after"))
        finally:
            response.close()
    except Exception as exc:  # noqa: BLE001 -- refused address, timeout, connection error...
        attempt.error = describe(exc)[:ERROR_MAX_CHARS]
    attempt.duration_ms = int((time.monotonic() - started) * 1000)
    return attempt


def next_delay(settings: Settings, attempts_made: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `attempts_made` failed ones; None when none is left."""
    delays = settings.webhook_retry_delays_seconds
    if attempts_made > len(delays):
        return None
    delay = delays[attempts_made - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def _record(session: Session, event: WebhookEvent, attempt: Attempt, settings: Settings) -> str:
    number = event.attempts + 1
    session.add(WebhookDelivery(event_id=event.id, account_id=event.account_id, attempt=number,
                                status_code=attempt.status_code, duration_ms=attempt.duration_ms,
                                error=attempt.error))  # fmt: skip
    event.attempts = number
    event.locked_until = None
    now = utcnow()
    if attempt.delivered:
        event.status, event.delivered_at = "delivered", now
    elif attempt.status_code == 410:
        event.status = "gone"
    else:
        delay = next_delay(settings, number, attempt.retry_after)
        if delay is None:
            event.status = "failed"
        else:
            event.next_attempt_at = now + timedelta(seconds=delay)
    session.commit()
    return event.status


def deliver(event_id: str, *, sessions: sessionmaker[Session], settings: Settings, client: httpx.Client) -> str | None:
    """Claim the event and make one attempt; its status afterwards, or None when another
    worker holds it (or it is not due)."""
    with sessions() as session:
        if not claim(session, event_id, lease_seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS):
            return None
        event = session.get(WebhookEvent, event_id, populate_existing=True)
        if event.body is None:
            body = render_body(session, event, settings)
            if body is None:
                return _record(session, event, Attempt(error=f"cannot render {event.event}: "
                                                             f"{event.subject_id} not found"), settings)  # fmt: skip
            event.body = body
        secret = service.account_secret(session=session, account_id=event.account_id)
        session.commit()  # the body is fixed from now on; no transaction is held while sending
        headers = service.signed_headers(secret, event_id=event.id, body=event.body, timestamp=int(time.time()))
        attempt = post(client, url=event.url, body=event.body, headers=headers)
        status = _record(session, event, attempt, settings)
        log.info("webhook %s %s -> %s (attempt %d: %s)", event.id, event.event, event.url, event.attempts,
                 attempt.status_code or attempt.error)  # fmt: skip
        return status


def make_client(settings: Settings) -> httpx.Client:
    return guarded_client(AddressPolicy.from_settings(settings),
                          timeout=httpx.Timeout(settings.webhook_timeout_seconds))  # fmt: skip


# ------------------------------------------------------------------ the workers


class DeliveryWorkers:
    """`threads` delivery threads of this API process; start() and shutdown() are idempotent."""

    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], threads: int = 2) -> None:
        self.settings = settings
        self.sessions = sessions
        self.thread_count = threads
        self._threads: list[threading.Thread] = []
        self._wakes: list[threading.Event] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> DeliveryWorkers:
        with self._lock:
            if self._threads:
                return self
            self._stop.clear()
            for index in range(self.thread_count):
                wake = threading.Event()
                thread = threading.Thread(target=self._run, args=(wake,), name=f"webhooks-{index}", daemon=True)
                self._wakes.append(wake)
                self._threads.append(thread)
            outbox.on_recorded(self.wake)
            for thread in self._threads:
                thread.start()
        return self

    def wake(self) -> None:
        for wake in list(self._wakes):
            wake.set()

    def shutdown(self) -> None:
        with self._lock:
            outbox.remove_recorded_listener(self.wake)
            self._stop.set()
            self.wake()
            for thread in self._threads:
                thread.join(timeout=self.settings.webhook_timeout_seconds + 5)
            self._threads, self._wakes = [], []

    def run_once(self, client: httpx.Client) -> int:
        """Attempt every due event this worker can claim; how many it attempted."""
        with self.sessions() as session:
            due = due_event_ids(session)
        random.shuffle(due)  # workers polling together start on different events
        done = 0
        for event_id in due:
            if self._stop.is_set():
                break
            if deliver(event_id, sessions=self.sessions, settings=self.settings, client=client) is not None:
                done += 1
        return done

    def _run(self, wake: threading.Event) -> None:
        with make_client(self.settings) as client:
            while not self._stop.is_set():
                wake.clear()
                try:
                    self.run_once(client)
                except Exception:
                    log.exception("webhook delivery pass failed")
                wake.wait(POLL_SECONDS)
