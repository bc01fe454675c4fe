from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow
from reelfarm.states import CampaignStatus


class Campaign(Base):
    """A web page made into short vertical videos, one per language (seeds/004).

    Its work runs as the tasks of one job (api "campaign", no video): capture, script, then a
    campaign_video task per language (scheduler/campaigns.py plans them). The job holds the
    tasks, progress and the quota charge (one video per language); the campaign holds what
    004 shows. Status moves by reelfarm/states.py CAMPAIGN_MACHINE only (reelfarm/campaigns.py).
    """

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(500))
    languages: Mapped[list] = mapped_column(JSON, default=list)
    # The page's own language, once captured (what needs no translation).
    page_language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.collecting.value)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CampaignVideo(Base):
    """One language's video of a campaign, listed for one platform (platforms share the file)."""

    __tablename__ = "campaign_videos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cv_"))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str] = mapped_column(String(32))  # youtube_shorts, tiktok, instagram_reels
    status: Mapped[str] = mapped_column(String(20), default="ready")
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64), default="")
    poster_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    size_bytes: Mapped[int] = mapped_column(default=0)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    engine: Mapped[str | None] = mapped_column(String(32), nullable=True)  # which voice spoke it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
