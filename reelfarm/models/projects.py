from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime, new_id, utcnow


class Project(Base):
    """A folder of videos in a workspace; its slug is unique per account."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("account_id", "slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("proj_"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
