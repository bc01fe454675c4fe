from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, new_id


class Clip(Base):
    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("job_id", "clip_index"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("clip_"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    clip_index: Mapped[int] = mapped_column(Integer)
    start_seconds: Mapped[float] = mapped_column(Float)
    end_seconds: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float)
    aspect_ratio: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    encoder: Mapped[str] = mapped_column(String(40))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    transcript: Mapped[str] = mapped_column(Text, default="")
    clip_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    # Everything else the node reported (crop, timings...).
    render_info: Mapped[dict] = mapped_column(JSON, default=dict)


class Artifact(Base):
    """A file a job produced; bytes live in storage under their SHA-256."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "filename"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("art_"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    clip_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    filename: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(100))
