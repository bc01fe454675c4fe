from __future__ import annotations

from fastapi import APIRouter

from control_plane.deps import PlansDep

router = APIRouter(prefix="/api/billing", tags=["billing"])


@router.get("/plans", summary="The plans in force and their limits (public)")
def plans(plans: PlansDep):
    return {"plans": plans.public(), "default_plan": plans.default_plan}
