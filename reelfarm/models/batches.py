"""Batch manifests: items with metadata and per-platform assets, reviewed as a unit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("account_id", "batch_ref"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("bat_"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    batch_ref: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the canonical manifest JSON: the same ref with other content is a conflict.
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending_review", index=True)
    review_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # user id
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    distributed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class BatchItem(Base):
    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("batch_id", "item_ref"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("itm_"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_ref: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    usage_rights: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Moves with its batch: pending_review -> approved | rejected; approved -> distributed.
    status: Mapped[str] = mapped_column(String(20), default="pending_review", index=True)


class ItemTag(Base):
    """One row per (item, tag), so listings filter by tag in SQL on every database."""

    __tablename__ = "batch_item_tags"

    item_id: Mapped[str] = mapped_column(ForeignKey("batch_items.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class PlatformVariant(Base):
    """What an item publishes on one platform: its blobs (by hash) and copy.

    The manifest calls these `platform_assets` (the documents' name, kept on the wire and
    as the table's); in the code "asset" means only an account's access to a blob.
    """

    __tablename__ = "platform_assets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pla_"))
    item_id: Mapped[str] = mapped_column(ForeignKey("batch_items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    platform: Mapped[str] = mapped_column(String(50), index=True)
    video_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    audio_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    hook: Mapped[str | None] = mapped_column(Text, nullable=True)
