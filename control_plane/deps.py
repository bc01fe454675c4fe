"""FastAPI dependencies, as Annotated aliases (SessionDep, CurrentPrincipal, JobsReadAccount, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from control_plane.accounts import service as accounts
from control_plane.accounts.service import Principal
from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from reelfarm.models.accounts import Account
from reelfarm.settings import Settings
from reelfarm.storage import Storage


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def public_url(request: Request, path: str) -> str:
    """An absolute URL of `path` for the client: under REELFARM_PUBLIC_URL when it is configured
    (behind a proxy the request's own address is an inside one), else under the request's base URL."""
    settings: Settings = request.app.state.settings
    base = settings.public_url if "public_url" in settings.model_fields_set else str(request.base_url)
    return base.rstrip("/") + "/" + path.lstrip("/")


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


def get_plans(request: Request) -> PlanBook:
    return request.app.state.plans


SessionDep = Annotated[Session, Depends(get_session)]
PlansDep = Annotated[PlanBook, Depends(get_plans)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


SESSION_COOKIE = "reels_session"
SCOPES_HEADER = "X-ReelFarm-Api-Scopes"


def api_key_from(request: HTTPConnection) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def principal_from(request: HTTPConnection, session: Session) -> Principal:
    """A key wins over a cookie; a wrong or revoked key is a 401 with no fallback, a key of
    an account whose plan has no API access a 403 (cookie logins are never refused)."""
    plaintext = api_key_from(request)
    if plaintext is not None:
        principal = accounts.principal_for_key(session=session, plaintext=plaintext)
        if principal is None:
            raise ApiError(401, accounts.INVALID_KEY, headers={"WWW-Authenticate": "Bearer"})
        # Echoed on the response (see main.ScopesHeaderMiddleware), errors included.
        request.state.api_scopes = " ".join(principal.scopes)
        accounts.require_api_access(principal, request.app.state.plans)  # 403 on a plan without API access
        return principal
    token = request.cookies.get(SESSION_COOKIE)
    principal = accounts.principal_for_session(session=session, token=token) if token else None
    if principal is None:
        raise ApiError(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return principal


def get_current_principal(request: Request, session: SessionDep) -> Principal:
    return principal_from(request, session)


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


def scoped(scope: str):
    """Dependency: the caller's account, if its key (when a key is used) carries `scope`."""

    def check(principal: CurrentPrincipal) -> Account:
        accounts.require_scope(principal, scope)
        return principal.account

    return Depends(check)


UploadsAccount = Annotated[Account, scoped("uploads:write")]
JobsReadAccount = Annotated[Account, scoped("jobs:read")]
JobsWriteAccount = Annotated[Account, scoped("jobs:write")]
ClipsReadAccount = Annotated[Account, scoped("clips:read")]
AssetsReadAccount = Annotated[Account, scoped("assets:read")]
AssetsWriteAccount = Annotated[Account, scoped("assets:write")]
CampaignsAccount = Annotated[Account, scoped("campaigns:create")]
