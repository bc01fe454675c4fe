"""Plans and what they allow: the one place limits are read from.

The built-in table is 004's (Growth, Scale, Business, Enterprise) plus Free and Starter,
which have no API access. Plans are data: an operator adds plans, or replaces a built-in
one by naming it, in a TOML file named by REELFARM_PLANS_FILE:

    [plans.growth]
    videos_per_month = 60
    languages_per_campaign = 5
    api_rate_per_minute = 10
    api_keys = 2
    api_access = true

`videos_per_month` may be omitted (or set to -1) for no monthly limit ("Custom").
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from reelfarm.settings import Settings


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    videos_per_month: int | None  # None: no monthly limit (Enterprise's "Custom")
    languages_per_campaign: int
    api_rate_per_minute: int  # per account, at each creating /api/v1 route
    api_keys: int  # active keys an account may hold
    api_access: bool

    def public(self) -> dict:
        return asdict(self)


# 004's table; Free and Starter (no API access) are ReelFarm's own small tiers.
BUILT_IN_PLANS: tuple[Plan, ...] = (
    Plan("free", "Free", videos_per_month=3, languages_per_campaign=1, api_rate_per_minute=0, api_keys=0,
         api_access=False),
    Plan("starter", "Starter", videos_per_month=15, languages_per_campaign=3, api_rate_per_minute=0, api_keys=0,
         api_access=False),
    Plan("growth", "Growth", videos_per_month=40, languages_per_campaign=5, api_rate_per_minute=10, api_keys=2,
         api_access=True),
    Plan("scale", "Scale", videos_per_month=100, languages_per_campaign=8, api_rate_per_minute=60, api_keys=10,
         api_access=True),
    Plan("business", "Business", videos_per_month=200, languages_per_campaign=8, api_rate_per_minute=90,
         api_keys=20, api_access=True),
    Plan("enterprise", "Enterprise", videos_per_month=None, languages_per_campaign=8, api_rate_per_minute=120,
         api_keys=50, api_access=True),
)  # fmt: skip

_FIELDS = ("videos_per_month", "languages_per_campaign", "api_rate_per_minute", "api_keys", "api_access")


class PlansFileError(ValueError):
    pass


def _plan_from_toml(plan_id: str, table: dict, path: Path) -> Plan:
    where = f"{path}: [plans.{plan_id}]"
    unknown = set(table) - {*_FIELDS, "name"}
    if unknown:
        raise PlansFileError(f"{where}: unknown fields {sorted(unknown)} (allowed: {', '.join(_FIELDS)}, name)")
    missing = [f for f in _FIELDS if f not in table and f != "videos_per_month"]
    if missing:
        raise PlansFileError(f"{where}: missing {', '.join(missing)}")
    videos = table.get("videos_per_month", -1)
    for field in ("videos_per_month", "languages_per_campaign", "api_rate_per_minute", "api_keys"):
        value = videos if field == "videos_per_month" else table[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < (-1 if field == "videos_per_month" else 0):
            raise PlansFileError(f"{where}: {field} must be a whole number >= 0")
    if not isinstance(table["api_access"], bool):
        raise PlansFileError(f"{where}: api_access must be true or false")
    return Plan(plan_id, str(table.get("name") or plan_id.replace("_", " ").title()),
                videos_per_month=None if videos == -1 else videos,
                languages_per_campaign=table["languages_per_campaign"],
                api_rate_per_minute=table["api_rate_per_minute"], api_keys=table["api_keys"],
                api_access=table["api_access"])  # fmt: skip


class PlanBook:
    """The plans in force: the built-in ones, with the operator's file over them."""

    def __init__(self, plans: dict[str, Plan], default_plan: str) -> None:
        if default_plan not in plans:
            raise PlansFileError(f"REELFARM_DEFAULT_PLAN={default_plan!r} is not a plan (plans: {', '.join(plans)})")
        self.plans = plans
        self.default_plan = default_plan

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanBook:
        plans = {plan.id: plan for plan in BUILT_IN_PLANS}
        if settings.plans_file is not None:
            path = Path(settings.plans_file)
            try:
                document = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise PlansFileError(f"REELFARM_PLANS_FILE {path}: {exc}") from None
            tables = document.get("plans")
            if not isinstance(tables, dict):
                raise PlansFileError(f"{path}: no [plans.NAME] tables")
            for plan_id, table in tables.items():
                if not isinstance(table, dict):
                    raise PlansFileError(f"{path}: plans.{plan_id} must be a table")
                plans[plan_id] = _plan_from_toml(plan_id, table, path)
        return cls(plans, settings.default_plan)

    def get(self, plan_id: str) -> Plan | None:
        return self.plans.get(plan_id)

    def of(self, plan_id: str) -> Plan:
        """An account's plan; one that is no longer offered reads as the default plan."""
        return self.plans.get(plan_id) or self.plans[self.default_plan]

    def public(self) -> list[dict]:
        return [plan.public() for plan in self.plans.values()]
