"""The monthly video quota's counter: charged when a job is made, given back when it fails.

One `quota_usage` row per (account, calendar month in UTC). A charge raises the row with
one conditional UPDATE in the caller's transaction, so concurrent submissions can never
pass the limit together: on PostgreSQL the second UPDATE waits for the first's row lock
and re-checks its condition against the committed value; SQLite runs one writer at a
time. The control plane reads the limit from the account's plan
(control_plane/billing/quotas.py); the scheduler gives videos back through
reelfarm.job_lifecycle.finish_job, which is why this lives on the ground floor.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from reelfarm.database import conflict_insert, utcnow
from reelfarm.models.billing import QuotaUsage
from reelfarm.models.jobs import Job
from reelfarm.options import ProcessOptions


def month_of(when: datetime | None = None) -> str:
    """The quota month ("YYYY-MM", UTC) of `when` (now by default)."""
    return (when or utcnow()).strftime("%Y-%m")


def videos_for(options: ProcessOptions) -> int:
    """The most videos (clips) a job with these options produces: what it is charged.

    mode "none" renders one clip over the whole trimmed source; otherwise numClips is
    the most the selection picks (fewer when the source cannot hold that many)."""
    return 1 if options.mode == "none" else options.numClips


def charge(session: Session, *, account_id: str, videos: int, limit: int | None,
           month: str | None = None) -> int | None:  # fmt: skip
    """Add `videos` to the account's count for `month` (this month by default), in the
    caller's transaction; the new count, or None (nothing changed) when it would pass
    `limit`. `limit` None: no limit, still counted."""
    month = month or month_of()
    session.execute(
        conflict_insert(session, QuotaUsage).values(account_id=account_id, month=month, videos_used=0)
        .on_conflict_do_nothing(index_elements=["account_id", "month"])
    )  # fmt: skip
    raise_count = (
        update(QuotaUsage)
        .where(QuotaUsage.account_id == account_id, QuotaUsage.month == month)
        .values(videos_used=QuotaUsage.videos_used + videos)
        .returning(QuotaUsage.videos_used)
        .execution_options(synchronize_session=False)
    )
    if limit is not None:
        raise_count = raise_count.where(QuotaUsage.videos_used + videos <= limit)
    return session.execute(raise_count).scalar_one_or_none()


def used(session: Session, *, account_id: str, month: str | None = None) -> int:
    """Videos the account has used in `month` (this month by default)."""
    count = session.scalar(select(QuotaUsage.videos_used).where(QuotaUsage.account_id == account_id,
                                                                QuotaUsage.month == (month or month_of())))  # fmt: skip
    return count or 0


def give_back(session: Session, job: Job) -> int:
    """Return the job's charged videos to its month's count (never below 0), in the
    caller's transaction; the number returned. Idempotent: the job's charge is zeroed."""
    videos = job.quota_videos or 0
    if videos <= 0 or not job.quota_month:
        return 0
    session.execute(
        update(QuotaUsage)
        .where(QuotaUsage.account_id == job.account_id, QuotaUsage.month == job.quota_month)
        .values(videos_used=case((QuotaUsage.videos_used > videos, QuotaUsage.videos_used - videos), else_=0))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    job.quota_videos = 0
    return videos
