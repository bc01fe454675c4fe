"""Blobs (one row per unique content, every account) and assets (an account's access to one)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, utcnow


class Blob(Base):
    """Verified content, stored once under its SHA-256 whoever uploaded it.

    A row exists only once the bytes were checked (hash, size, format); having one says
    nothing about who may read it: that is Asset.
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(10))  # mp4, mov, ..., svg (blobs/formats.py)
    kind: Mapped[str] = mapped_column(String(10))  # video, audio, image
    content_type: Mapped[str] = mapped_column(String(100))
    media: Mapped[dict] = mapped_column(JSON, default=dict)  # width, height, duration_seconds, codec, ...
    storage_key: Mapped[str] = mapped_column(String(300))
    preview_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    preview_content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Asset(Base):
    """An account's access to a blob, made when that account's own upload verified.

    The one meaning of "asset" in the code (the blob API's `asset_id`). The documents'
    /api/v1/assets and the agents' tools call approved batch items assets too; the code
    calls those items (BatchItem), and an item's per-platform entries variants.

    Its id is derived from (account, sha256) (blobs.service.asset_id_for), so the same
    hash always names the same asset in an account, before and after the upload.
    """

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("account_id", "sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    declared_content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UploadUrl(Base):
    """The upload URL last issued for an asset that is not uploaded yet.

    000: "the same SHA returns the same presigned URL": a retry for the same hash, size and
    type gets this URL back while it has a while left to run (blobs.service.upload_urls).
    """

    __tablename__ = "upload_urls"

    asset_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # blobs.service.asset_id_for
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
