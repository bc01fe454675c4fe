from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow
from reelfarm.states import JobStatus


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id())
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # None while a job made from a URL is still downloading its video.
    video_id: Mapped[str | None] = mapped_column(ForeignKey("videos.id"), nullable=True)
    source_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    original_name: Mapped[str] = mapped_column(String(500))
    # Values and transitions: reelfarm/states.py (the only place that changes them).
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued.value, index=True)
    stage: Mapped[str | None] = mapped_column(String(40), nullable=True)
    progress_percent: Mapped[float] = mapped_column(Float, default=0.0)
    # ProcessOptions as the server actually used them (camelCase keys).
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    # Render settings fixed at submission (output size, encoder preference...).
    render_settings: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    planned: Mapped[bool] = mapped_column(default=False)
    # Set by the API; the scheduler cancels the job's tasks (on their nodes too).
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # The videos this job took from its account's monthly quota, and which month's; given
    # back when it fails or is cancelled before any clip is rendered.
    quota_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    quota_videos: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Which API made it ("reels", "dev", "v1"): each answers in its own shape.
    api: Mapped[str] = mapped_column(String(8), default="reels", server_default="reels")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
