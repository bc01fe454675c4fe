from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow


class Video(Base):
    """An uploaded source video; its bytes live in storage under their SHA-256."""

    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("vid_"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    original_name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(300))
    duration_seconds: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frame_rate: Mapped[float] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(50))
    has_audio: Mapped[bool] = mapped_column(default=False)
    probe: Mapped[dict] = mapped_column(JSON, default=dict)
    # Dev endpoints file videos under projects; reels uploads have none.
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"), nullable=True,
                                                   index=True)  # fmt: skip
    status: Mapped[str] = mapped_column(String(20), default="uploaded", server_default="uploaded")
    # A previously uploaded video whose Style DNA this one's jobs apply (v1 upload's template_video_id).
    template_video_id: Mapped[str | None] = mapped_column(ForeignKey("videos.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

