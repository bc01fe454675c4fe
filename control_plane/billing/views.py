from __future__ import annotations

from fastapi import APIRouter

from control_plane.billing.plans import public_plans

router = APIRouter(prefix="/api/billing", tags=["billing"])


@router.get("/plans", summary="Plans and their limits (public)")
def plans():
    return {"plans": public_plans()}
