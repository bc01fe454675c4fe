from __future__ import annotations

from fastapi import APIRouter

from control_plane.billing import quotas
from control_plane.deps import CurrentPrincipal, PlansDep, SessionDep

router = APIRouter(prefix="/api/billing", tags=["billing"])


@router.get("/plans", summary="The plans in force and their limits (public)")
def plans(plans: PlansDep):
    return {"plans": plans.public(), "default_plan": plans.default_plan}


@router.get("/usage", summary="The account's plan and its monthly video quota: used and left this month")
def usage(principal: CurrentPrincipal, session: SessionDep, plans: PlansDep):
    return quotas.usage(session, principal.account, plans)
