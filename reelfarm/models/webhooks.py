from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow


class WebhookEvent(Base):
    """An event to deliver: the transactional outbox.

    Written in the same transaction as the state change it reports (reelfarm/job_lifecycle.py
    listeners), so a crash can neither lose nor invent one; delivery workers claim due rows
    with a conditional update of `locked_until` (control_plane/webhooks/).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_due", "status", "next_attempt_at"),
        Index("ix_webhook_events_account_created", "account_id", "created_at"),
    )

    # Stable across retries and replays: receivers deduplicate by it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("evt_"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))  # job.completed, campaign.failed, ...
    # What it is about: a job's id, or a campaign's.
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The exact bytes signed and sent (JSON). Written by the API's delivery worker at its
    # first claim when the process that recorded the event cannot render the payload (the
    # scheduler records job events in finish_job); every retry and replay sends these bytes.
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # pending -> delivered | failed (attempts used up) | gone (the receiver answered 410)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A worker holds the event until then; past it, another worker may claim it.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookDelivery(Base):
    """One attempt to deliver an event: what the receiver answered, and how fast."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whd_"))
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
