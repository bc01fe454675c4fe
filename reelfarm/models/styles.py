from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, utcnow
from reelfarm.states import StyleExtractionState


class SourceStyle(Base):
    """A source's Style DNA (reelfarm/style_dna.py), by the SHA-256 of its bytes.

    Extracted once per source whatever the account or video row: a template used by a hundred
    jobs, or the same file uploaded twice, is analysed once. Written by the scheduler when a
    `style` task completes."""

    __tablename__ = "source_styles"

    source_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    dna: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StyleExtraction(Base):
    """A request for a source's Style DNA that no job made: `GET /api/v1/videos/{id}/style` on a
    video whose DNA is not kept yet. One per SHA-256, whoever asks and however often.

    The API writes it; the scheduler gives it a style task (its own, with no job, or the one a
    job already runs for the same source), follows that task, and deletes the row once the DNA
    is in `source_styles`. States: reelfarm/states.py (StyleExtractionState)."""

    __tablename__ = "style_extractions"

    source_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The video whose bytes are read (any upload of the source will do; the first asker's).
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=StyleExtractionState.requested.value)
    # The style task followed (no foreign key: a job's task may go with its job).
    task_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Why the extraction failed (the task's error), while state is failed.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
