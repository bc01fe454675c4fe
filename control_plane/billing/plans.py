"""Plans and what they allow: the one place limits are read from (API, quotas, docs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    api_access: bool
    api_keys: int  # active keys an account may hold
    requests_per_minute: int  # API rate per account
    videos_per_month: int | None  # None: unmetered
    max_upload_bytes: int


PLANS: dict[str, Plan] = {
    plan.id: plan
    for plan in (
        Plan("free", "Free", api_access=False, api_keys=0, requests_per_minute=30, videos_per_month=5,
             max_upload_bytes=1 << 30),
        Plan("growth", "Growth", api_access=True, api_keys=2, requests_per_minute=60, videos_per_month=40,
             max_upload_bytes=1 << 30),
        Plan("business", "Business", api_access=True, api_keys=10, requests_per_minute=600,
             videos_per_month=None, max_upload_bytes=1 << 30),
        Plan("enterprise", "Enterprise", api_access=True, api_keys=50, requests_per_minute=1200,
             videos_per_month=None, max_upload_bytes=4 << 30),
    )
}  # fmt: skip
DEFAULT_PLAN = "business"


def plan_of(plan_id: str) -> Plan:
    return PLANS.get(plan_id, PLANS[DEFAULT_PLAN])


def public_plans() -> list[dict]:
    return [asdict(plan) for plan in PLANS.values()]
