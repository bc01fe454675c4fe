"""The monthly video quota, as the API enforces and reports it.

Everything that makes work charges it with one call before its commit, in its own
transaction (`charge_videos`): a job (control_plane/jobs/service.py) charges the clips it
will produce. Over quota is a 429 with the current count, and the caller's transaction
is not committed, so nothing of the refused work is kept. The counter itself, and the
giving back of a failed job's videos, is reelfarm/quotas.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from reelfarm import quotas
from reelfarm.models.accounts import Account

QUOTA_EXCEEDED = "Monthly video quota exceeded: {used} of {limit} videos used this month"


@dataclass(frozen=True)
class Charge:
    """What a charge took: record it on the work (Job.quota_month, Job.quota_videos)."""

    month: str
    videos: int


def charge_videos(*, session: Session, account: Account, videos: int, plans: PlanBook) -> Charge:
    """Take `videos` from the account's monthly quota in the caller's transaction; 429 when
    they do not fit (the caller must not commit then; nothing was counted)."""
    limit = plans.of(account.plan).videos_per_month
    month = quotas.month_of()
    if quotas.charge(session, account_id=account.id, videos=videos, limit=limit, month=month) is None:
        used = quotas.used(session, account_id=account.id, month=month)
        raise ApiError(429, QUOTA_EXCEEDED.format(used=used, limit=limit),
                       extra={"videos_used": used, "videos_per_month": limit})  # fmt: skip
    return Charge(month=month, videos=videos)


def usage(session: Session, account: Account, plans: PlanBook) -> dict:
    """The account's quota this month: its plan, the limit (None: no limit), used and left."""
    plan = plans.of(account.plan)
    month = quotas.month_of()
    used = quotas.used(session, account_id=account.id, month=month)
    limit = plan.videos_per_month
    return {"plan": plan.id, "month": month, "videos_per_month": limit, "videos_used": used,
            "videos_left": None if limit is None else max(0, limit - used)}  # fmt: skip
