from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, utcnow


class SourceStyle(Base):
    """A source's Style DNA (reelfarm/style_dna.py), by the SHA-256 of its bytes.

    Extracted once per source whatever the account or video row: a template used by a hundred
    jobs, or the same file uploaded twice, is analysed once. Written by the scheduler when a
    `style` task completes."""

    __tablename__ = "source_styles"

    source_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    dna: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
