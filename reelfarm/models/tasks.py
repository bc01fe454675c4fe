from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow
from reelfarm.states import TaskKind, TaskState


class Task(Base):
    """One unit of work for a render node: a clip to render, or a part of finding the moments.

    A task belongs to its job, except a `style` task planned for an extraction request
    (StyleExtraction, reelfarm/models/styles.py): it has no job until a job of the same source
    adopts it (scheduler/core.py)."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", "task_index"),
        Index("ix_tasks_state_ready", "state", "ready_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("task_"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True, nullable=True)
    kind: Mapped[str] = mapped_column(String(20), default=TaskKind.render.value)
    task_index: Mapped[int] = mapped_column(Integer)
    # Values and transitions: reelfarm/states.py.
    state: Mapped[str] = mapped_column(String(20), default=TaskState.pending.value)
    # The spec the node receives (RenderSpec fields) and what it reported back.
    spec: Mapped[dict] = mapped_column(JSON, default=dict)
    required_encoders: Mapped[list] = mapped_column(JSON, default=list)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # What the scheduler decided about this task beyond the node's spec: for a clip picked
    # by moment selection, its score, transcript and metadata (copied to the clip).
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Not before this time (retry backoff).
    ready_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    node_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Changes on every dispatch: an outcome carrying an older lease id is stale.
    lease_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stage: Mapped[str | None] = mapped_column(String(40), nullable=True)
    progress_percent: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
