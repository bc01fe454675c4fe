"""Dashboard pages: the workspace's settings (API keys, members, webhooks, usage).

Every page is read by any member; changes are for owners and admins (the services check the
role, a member's POST is the 403 page), except replaying a webhook event, which any member may
do, as with the API. After a change the page is reached again by a 303 with `?done=...`, one
of DONE's fixed messages. A new API key is the exception: it is shown once, in the response
to its POST (no-store), never again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.service import Principal
from control_plane.billing import quotas
from control_plane.billing.plans import PlanBook
from control_plane.dashboard.web import PREFIX, CsrfChecked, Flash, PagePrincipal, redirect, render
from control_plane.deps import SESSION_COOKIE, PlansDep, SessionDep
from control_plane.errors import ApiError
from control_plane.limits.middleware import IP_LIMIT_WITH_KEY, IP_LIMIT_WITHOUT_KEY
from control_plane.webhooks import service as webhooks
from reelfarm.models.accounts import ApiKey, Invitation

router = APIRouter(prefix=f"{PREFIX}/settings", include_in_schema=False)

MANAGERS = ("owner", "admin")
DELIVERIES_SHOWN = 50
DONE = {
    "key-revoked": "The key was revoked: requests with it are refused from now on.",
    "member-added": "Added to the workspace.",
    "invited": "Invitation saved: they join the workspace when they sign up or log in with that address.",
    "invite-revoked": "The invitation was withdrawn.",
    "role-changed": "The member's role was changed.",
    "member-removed": "Removed from the workspace: their logins in it have ended.",
    "rotated": "New signing secret: deliveries from now on are signed with it; update your receivers.",
    "replayed": "The event was queued for delivery again.",
}


def _flashes(done: str | None) -> list[Flash]:
    return [Flash("ok", DONE[done])] if done in DONE else []


def _can_manage(principal: Principal) -> bool:
    return principal.role in MANAGERS  # pages are signed in by the cookie only


@router.get("")
def settings_home():
    return redirect(f"{PREFIX}/settings/keys")


# ------------------------------------------------------------------ API keys


def _keys_page(request: Request, session: Session, principal: Principal, plans: PlanBook, *, status_code: int = 200,
               new_key: str | None = None, new_key_id: str | None = None, name: str = "",
               chosen: list[str] | None = None, error: str | None = None, done: str | None = None):  # fmt: skip
    keys = accounts.list_api_keys(session=session, principal=principal)
    flashes = _flashes(done) + ([Flash("error", error)] if error else [])
    return render(request, "settings_keys.html", session=session, principal=principal, status_code=status_code,
                  no_store=new_key is not None, flashes=flashes, tab="keys", keys=keys,
                  active=sum(1 for k in keys if k.revoked_at is None), plan=plans.of(principal.account.plan),
                  scopes=accounts.SCOPES, can_manage=_can_manage(principal), new_key=new_key, new_key_id=new_key_id,
                  name=name, chosen=chosen or [])  # fmt: skip


@router.get("/keys")
def keys_page(request: Request, principal: PagePrincipal, session: SessionDep, plans: PlansDep,
              done: str | None = None):  # fmt: skip
    return _keys_page(request, session, principal, plans, done=done)


@router.post("/keys", dependencies=[CsrfChecked])
def create_key(request: Request, principal: PagePrincipal, session: SessionDep, plans: PlansDep,
               name: Annotated[str, Form(max_length=200)] = "",
               scopes: Annotated[list[str], Form()] = []):  # noqa: B006 (FastAPI copies defaults)  # fmt: skip
    """A new key, shown once in this response (no-store); none ticked gives every scope."""
    accounts.require_role(principal, *MANAGERS)
    name = name.strip()
    if not name:
        return _keys_page(request, session, principal, plans, status_code=400, chosen=scopes,
                          error="Give the key a name, e.g. where it is used.")  # fmt: skip
    try:
        key, plaintext = accounts.issue_api_key(session=session, principal=principal, name=name, scopes=scopes or None,
                                                plans=plans)  # fmt: skip
    except ApiError as exc:
        if exc.status_code not in (400, 409):
            raise
        session.rollback()
        return _keys_page(request, session, principal, plans, status_code=exc.status_code, name=name,
                          chosen=scopes, error=exc.message)  # fmt: skip
    session.commit()
    return _keys_page(request, session, principal, plans, new_key=plaintext, new_key_id=key.id)


@router.post("/keys/{key_id}/revoke", dependencies=[CsrfChecked])
def revoke_key(key_id: str, principal: PagePrincipal, session: SessionDep):
    accounts.revoke_api_key(session=session, principal=principal, key_id=key_id)
    session.commit()
    return redirect(f"{PREFIX}/settings/keys?done=key-revoked")


# ------------------------------------------------------------------ members and invitations


def _members_page(request: Request, session: Session, principal: Principal, *, status_code: int = 200,
                  email: str = "", role: str = "member", error: str | None = None, done: str | None = None):  # fmt: skip
    flashes = _flashes(done) + ([Flash("error", error)] if error else [])
    roles = accounts.ROLES if principal.role == "owner" else tuple(r for r in accounts.ROLES if r != "owner")
    return render(request, "settings_members.html", session=session, principal=principal, status_code=status_code,
                  flashes=flashes, tab="members", members=accounts.list_members(session=session,
                                                                                account=principal.account),
                  invitations=accounts.list_invitations(session=session, account=principal.account),
                  can_manage=_can_manage(principal), roles=roles, email=email, role=role)  # fmt: skip


@router.get("/members")
def members_page(request: Request, principal: PagePrincipal, session: SessionDep, done: str | None = None):
    return _members_page(request, session, principal, done=done)


@router.post("/members", dependencies=[CsrfChecked])
def add_member(request: Request, principal: PagePrincipal, session: SessionDep,
               email: Annotated[str, Form(max_length=320)] = "", role: Annotated[str, Form(max_length=16)] = "member"):  # fmt: skip
    """Add a user by email, or invite an address that has no user yet (owners and admins)."""
    try:
        added = accounts.add_member(session=session, principal=principal, email=email, role=role)
    except ApiError as exc:
        if exc.status_code not in (400, 409):
            raise
        session.rollback()
        return _members_page(request, session, principal, status_code=exc.status_code, email=email, role=role,
                             error=exc.message)  # fmt: skip
    session.commit()
    done = "invited" if isinstance(added, Invitation) else "member-added"
    return redirect(f"{PREFIX}/settings/members?done={done}")


@router.post("/members/{user_id}/role", dependencies=[CsrfChecked])
def change_member_role(user_id: str, request: Request, principal: PagePrincipal, session: SessionDep,
                       role: Annotated[str, Form(max_length=16)] = ""):  # fmt: skip
    """Another role for a member (owners and admins; the service checks who may make or change
    an owner). Someone not in this workspace is the 404 page, whatever the role sent."""
    try:
        accounts.change_role(session=session, principal=principal, user_id=user_id, role=role)
    except ApiError as exc:
        if exc.status_code not in (400, 409):
            raise
        session.rollback()
        return _members_page(request, session, principal, status_code=exc.status_code, error=exc.message)
    session.commit()
    return redirect(f"{PREFIX}/settings/members?done=role-changed")


@router.post("/members/{user_id}/remove", dependencies=[CsrfChecked])
def remove_member(user_id: str, request: Request, principal: PagePrincipal, session: SessionDep):
    """Take a member out of the workspace and end their logins in it. Removing oneself ends this
    login too: back to the login page (the user may belong to other workspaces)."""
    try:
        accounts.remove_member(session=session, principal=principal, user_id=user_id)
    except ApiError as exc:
        if exc.status_code != 409:
            raise
        session.rollback()
        return _members_page(request, session, principal, status_code=exc.status_code, error=exc.message)
    session.commit()
    if principal.user is not None and principal.user.id == user_id:
        response = redirect(f"{PREFIX}/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return redirect(f"{PREFIX}/settings/members?done=member-removed")


@router.post("/members/invites/{invitation_id}/revoke", dependencies=[CsrfChecked])
def revoke_invitation(invitation_id: str, principal: PagePrincipal, session: SessionDep):
    accounts.revoke_invitation(session=session, principal=principal, invitation_id=invitation_id)
    session.commit()
    return redirect(f"{PREFIX}/settings/members?done=invite-revoked")


# ------------------------------------------------------------------ webhooks


@router.get("/webhooks")
def webhooks_page(request: Request, principal: PagePrincipal, session: SessionDep, done: str | None = None):
    """The signing secret (owners and admins; masked until revealed; the page is no-store) and the
    deliveries log, newest first, with a replay button for each event."""
    secret = None
    if _can_manage(principal):
        secret = webhooks.get_secret(session=session, principal=principal)
        session.commit()  # made on first need
    deliveries = webhooks.list_deliveries(session=session, account=principal.account, limit=DELIVERIES_SHOWN)
    seen: set[str] = set()
    for delivery in deliveries:  # the replay button goes on each event's newest attempt
        delivery["replayable"] = delivery["event_id"] not in seen
        seen.add(delivery["event_id"])
    return render(request, "settings_webhooks.html", session=session, principal=principal, no_store=True,
                  flashes=_flashes(done), tab="webhooks", secret=secret, deliveries=deliveries,
                  shown=DELIVERIES_SHOWN, can_manage=_can_manage(principal))  # fmt: skip


@router.post("/webhooks/rotate", dependencies=[CsrfChecked])
def rotate_secret(principal: PagePrincipal, session: SessionDep):
    webhooks.rotate_secret(session=session, principal=principal)
    session.commit()
    return redirect(f"{PREFIX}/settings/webhooks?done=rotated")


@router.post("/webhooks/events/{event_id}/replay", dependencies=[CsrfChecked])
def replay_event(event_id: str, request: Request, principal: PagePrincipal, session: SessionDep):
    webhooks.replay_event(session=session, account=principal.account, event_id=event_id)
    session.commit()
    request.app.state.webhooks.wake()
    return redirect(f"{PREFIX}/settings/webhooks?done=replayed")


# ------------------------------------------------------------------ usage


@router.get("/usage")
def usage_page(request: Request, principal: PagePrincipal, session: SessionDep, plans: PlansDep):
    """This month's videos against the plan's quota, and the plan's limits."""
    used = quotas.usage(session, principal.account, plans)
    active_keys = session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.account_id == principal.account.id, ApiKey.revoked_at.is_(None)))  # fmt: skip
    limit = used["videos_per_month"]
    percent = None if limit is None else 100 if limit == 0 else min(100, round(100 * used["videos_used"] / limit))
    return render(request, "settings_usage.html", session=session, principal=principal, tab="usage", usage=used,
                  plan=plans.of(principal.account.plan), percent=percent, active_keys=active_keys,
                  ip_limit_with_key=IP_LIMIT_WITH_KEY, ip_limit_without_key=IP_LIMIT_WITHOUT_KEY)  # fmt: skip
