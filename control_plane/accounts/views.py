"""Sign-up, login, members and the /keys page's API. Key management is session-only."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from control_plane.accounts import service
from control_plane.accounts.login_limits import check_login_rate, check_signup_rate
from control_plane.deps import SESSION_COOKIE, CurrentPrincipal, PlansDep, SessionDep, SettingsDep
from reelfarm.models.accounts import ApiKey, Invitation

router = APIRouter(prefix="/api", tags=["accounts"])


class SignUp(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)
    accountName: str | None = Field(default=None, max_length=150)


class Login(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)
    accountId: str | None = None


class Me(BaseModel):
    userId: str | None
    email: str | None
    accountId: str
    accountName: str
    plan: str
    role: str | None
    via: str


class NewKey(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] | None = Field(default=None, description=f"subset of {list(service.SCOPES)}; default all")


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    createdAt: datetime
    revokedAt: datetime | None
    lastUsedAt: datetime | None = Field(default=None, description="to the minute; null: never used")


class CreatedKey(KeyOut):
    key: str = Field(description="the plaintext key: shown once, store it now")


class NewMember(BaseModel):
    email: str = Field(max_length=320)
    role: str = "member"


class RoleChange(BaseModel):
    role: str = Field(max_length=16, description=f"one of {list(service.ROLES)}")


class MemberOut(BaseModel):
    userId: str | None = Field(description="null for a pending invitation")
    email: str
    role: str
    status: str = Field(default="active", description="active: a member; pending: invited, not signed up yet")
    invitationId: str | None = None


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str
    createdAt: datetime


def _key_out(key: ApiKey) -> dict:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes or service.SCOPES),
            "createdAt": key.created_at, "revokedAt": key.revoked_at, "lastUsedAt": key.last_used_at}


def set_session_cookie(response: Response, token: str, secure: bool) -> None:
    """The login cookie, as every sign-in sets it (the API's and the dashboard's)."""
    response.set_cookie(SESSION_COOKIE, token, max_age=int(service.SESSION_LIFETIME.total_seconds()),
                        httponly=True, samesite="lax", secure=secure, path="/")  # fmt: skip


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED, response_model=Me,
             summary="Create a user who owns a new workspace; signs them in",
             description="Rate limited: 10 sign-ups a minute per client IP (429 with Retry-After).")
async def sign_up(body: SignUp, request: Request, response: Response, session: SessionDep, settings: SettingsDep,
                  plans: PlansDep):  # fmt: skip
    await check_signup_rate(request, body.email)
    token, me = await run_in_threadpool(_sign_up, session, body, plans)  # argon2 and the database: off the loop
    set_session_cookie(response, token, secure=settings.environment == "prod")
    return me


def _sign_up(session: Session, body: SignUp, plans) -> tuple[str, Me]:
    user, account = service.sign_up(session=session, email=body.email, password=body.password,
                                    plan=plans.default_plan, account_name=body.accountName)  # fmt: skip
    token = service.start_session(session=session, user=user, account_id=account.id)
    session.commit()
    return token, Me(userId=user.id, email=user.email, accountId=account.id, accountName=account.name,
                     plan=account.plan, role="owner", via="session")  # fmt: skip


def _log_in(session: Session, body: Login) -> tuple[str, Me]:
    user = service.verify_login(session=session, email=body.email, password=body.password)
    token = service.start_session(session=session, user=user, account_id=body.accountId)
    principal = service.principal_for_session(session=session, token=token)
    session.commit()
    assert principal is not None
    return token, Me(userId=user.id, email=user.email, accountId=principal.account.id,
                     accountName=principal.account.name, plan=principal.account.plan, role=principal.role,
                     via="session")  # fmt: skip


@router.post("/auth/login", response_model=Me, summary="Sign in: sets the httpOnly reels_session cookie",
             description="Rate limited: 10 attempts a minute per client IP, 5 per email address (429 with "
                         "Retry-After). Accepts the caller's pending invitations.")  # fmt: skip
async def login(body: Login, request: Request, response: Response, session: SessionDep, settings: SettingsDep):
    await check_login_rate(request, body.email)
    token, me = await run_in_threadpool(_log_in, session, body)  # argon2 and the database: off the event loop
    set_session_cookie(response, token, secure=settings.environment == "prod")
    return me


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out: the cookie stops working")
def logout(request: Request, response: Response, session: SessionDep):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(session=session, token=token)
        session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/auth/me", response_model=Me, summary="Who the request is authenticated as")
def me(principal: CurrentPrincipal):
    return Me(userId=principal.user.id if principal.user else None,
              email=principal.user.email if principal.user else None, accountId=principal.account.id,
              accountName=principal.account.name, plan=principal.account.plan, role=principal.role,
              via=principal.via)  # fmt: skip


@router.get("/keys", response_model=list[KeyOut], summary="The workspace's API keys (never their plaintext)")
def list_keys(principal: CurrentPrincipal, session: SessionDep):
    return [_key_out(k) for k in service.list_api_keys(session=session, principal=principal)]


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=CreatedKey,
             summary="Create an API key (owners and admins, signed in); the plaintext is returned once")
def create_key(body: NewKey, principal: CurrentPrincipal, session: SessionDep, plans: PlansDep):
    key, plaintext = service.issue_api_key(session=session, principal=principal, name=body.name, scopes=body.scopes,
                                           plans=plans)
    session.commit()
    return {**_key_out(key), "key": plaintext}


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key: it is refused from the next request")
def revoke_key(key_id: str, principal: CurrentPrincipal, session: SessionDep):
    key = service.revoke_api_key(session=session, principal=principal, key_id=key_id)
    session.commit()
    return _key_out(key)


@router.get("/accounts/members", response_model=list[MemberOut], summary="Members of the workspace and their roles")
def list_members(principal: CurrentPrincipal, session: SessionDep):
    service.require_role(principal, "owner", "admin", "member")
    return [MemberOut(userId=u.id, email=u.email, role=m.role)
            for m, u in service.list_members(session=session, account=principal.account)]  # fmt: skip


@router.post("/accounts/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut,
             summary="Add a user to the workspace, or invite an address with no user yet (owners and admins)",
             description="An existing user becomes a member (status active); an unknown address gets a pending "
                         "invitation (status pending), taken up when it signs up or logs in.")  # fmt: skip
def add_member(body: NewMember, principal: CurrentPrincipal, session: SessionDep):
    added = service.add_member(session=session, principal=principal, email=body.email, role=body.role)
    session.commit()
    if isinstance(added, Invitation):
        return MemberOut(userId=None, email=added.email, role=added.role, status="pending", invitationId=added.id)
    return MemberOut(userId=added.user_id, email=body.email.strip().lower(), role=added.role)


@router.patch("/accounts/members/{user_id}", response_model=MemberOut,
              summary="Change a member's role (owners and admins; only an owner makes or changes an owner)",
              description="A workspace keeps at least one owner: demoting the last one is a 409. A user who is "
                          "not a member of this workspace is a 404.")  # fmt: skip
def change_member_role(user_id: str, body: RoleChange, principal: CurrentPrincipal, session: SessionDep):
    membership, user = service.change_role(session=session, principal=principal, user_id=user_id, role=body.role)
    session.commit()
    return MemberOut(userId=user.id, email=user.email, role=membership.role)


@router.delete("/accounts/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a member from the workspace and end their logins in it (owners and admins)",
               description="Only an owner removes an owner; the last owner cannot be removed (409). Removing "
                           "yourself is allowed.")  # fmt: skip
def remove_member(user_id: str, principal: CurrentPrincipal, session: SessionDep):
    service.remove_member(session=session, principal=principal, user_id=user_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/accounts/invitations", response_model=list[InvitationOut],
            summary="The workspace's pending invitations (addresses with no user yet)")
def list_invitations(principal: CurrentPrincipal, session: SessionDep):
    service.require_role(principal, "owner", "admin", "member")
    return [InvitationOut(id=i.id, email=i.email, role=i.role, createdAt=i.created_at)
            for i in service.list_invitations(session=session, account=principal.account)]  # fmt: skip


@router.delete("/accounts/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Withdraw a pending invitation (owners and admins)")
def revoke_invitation(invitation_id: str, principal: CurrentPrincipal, session: SessionDep):
    service.revoke_invitation(session=session, principal=principal, invitation_id=invitation_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
