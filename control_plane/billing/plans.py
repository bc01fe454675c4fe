"""Plans and what they allow: the one place limits are read from. Only limits that are
enforced are listed (rates and quotas arrive with the issue that enforces them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    api_access: bool
    api_keys: int  # active keys an account may hold (enforced by accounts.service)


PLANS: dict[str, Plan] = {
    plan.id: plan
    for plan in (
        Plan("free", "Free", api_access=False, api_keys=0),
        Plan("growth", "Growth", api_access=True, api_keys=2),
        Plan("business", "Business", api_access=True, api_keys=10),
        Plan("enterprise", "Enterprise", api_access=True, api_keys=50),
    )
}
DEFAULT_PLAN = "business"


def plan_of(plan_id: str) -> Plan:
    return PLANS.get(plan_id, PLANS[DEFAULT_PLAN])


def public_plans() -> list[dict]:
    return [asdict(plan) for plan in PLANS.values()]
