"""Webhook HTTP endpoints: the signing secret (session only), the deliveries log and replay (v1)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from control_plane import envelope
from control_plane.deps import CurrentPrincipal, JobsReadAccount, JobsWriteAccount, SessionDep
from control_plane.webhooks import service

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
v1_router = APIRouter(prefix="/api/v1/webhooks", tags=["v1"])


@router.get("/secret", summary="The workspace's webhook signing secret (owners and admins, signed in)")
def get_secret(principal: CurrentPrincipal, session: SessionDep):
    secret = service.get_secret(session=session, principal=principal)
    session.commit()  # made on first need
    return {"secret": secret}


@router.post("/secret/rotate", summary="Replace the webhook signing secret; deliveries are signed with the new one")
def rotate_secret(principal: CurrentPrincipal, session: SessionDep):
    secret = service.rotate_secret(session=session, principal=principal)
    session.commit()
    return {"secret": secret}


@v1_router.get("/deliveries", summary="Webhook delivery attempts, newest first")
def list_deliveries(account: JobsReadAccount, session: SessionDep, limit: int = Query(50, ge=1, le=200),
                    offset: int = Query(0, ge=0, le=service.MAX_OFFSET), event_id: str | None = None):
    deliveries = service.list_deliveries(session=session, account=account, limit=limit, offset=offset,
                                         event_id=event_id)  # fmt: skip
    return envelope.ok("Webhook deliveries retrieved", {"deliveries": deliveries, "limit": limit, "offset": offset})


@v1_router.post("/events/{event_id}/replay", summary="Send an event again (same id and body, fresh attempts)")
def replay_event(event_id: str, request: Request, account: JobsWriteAccount, session: SessionDep):
    event = service.replay_event(session=session, account=account, event_id=event_id)
    session.commit()
    request.app.state.webhooks.wake()
    return envelope.ok("Webhook event queued for delivery",
                       {"event_id": event.id, "event": event.event, "status": event.status})  # fmt: skip
