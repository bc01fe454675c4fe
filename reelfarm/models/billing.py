from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base


class QuotaUsage(Base):
    """Videos an account has committed to in one calendar month (UTC), its plan's quota.

    One row per (account, month), raised in the transaction that makes the work with a
    conditional UPDATE, so concurrent submissions can never pass the limit together
    (control_plane/billing/quotas.py).
    """

    __tablename__ = "quota_usage"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    videos_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
