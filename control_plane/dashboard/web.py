"""What every dashboard page shares: templates, the login check, CSRF tokens and HTML errors.

Pages are server-rendered (Jinja2) over the same services as the API; htmx (vendored in
static/) only adds live updates and in-place swaps, so every form also works without
JavaScript. A page's view does what an API view does: it calls a service with the
signed-in principal, whose tenancy checks answer another workspace's object with a 404.

CSRF: a signed double-submit token. The browser holds a random `reels_csrf` cookie
(HttpOnly, SameSite=Strict); forms carry HMAC(secret_key, cookie) in `csrf_token` (htmx
sends it as `X-CSRF-Token`). A cross-site page can neither read the cookie nor compute the
HMAC, and a cookie planted from a sibling domain has no matching token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.service import Principal
from control_plane.deps import SESSION_COOKIE, SessionDep
from control_plane.errors import ApiError
from reelfarm.models.accounts import Account, Membership

PREFIX = "/dashboard"
CSRF_COOKIE = "reels_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def is_https(request: Request) -> bool:
    """Cookies are Secure when the page came over https (uvicorn applies X-Forwarded-Proto from
    trusted proxies) or the deployment says it is production."""
    return request.url.scheme == "https" or request.app.state.settings.environment == "prod"


def _csrf_token_for(request: Request, cookie_value: str) -> str:
    secret = request.app.state.settings.secret_key.encode()
    return hmac.new(secret, b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()


def csrf_cookie_value(request: Request) -> str:
    """The request's CSRF cookie, or a new one (set on the response by `render`)."""
    value = request.cookies.get(CSRF_COOKIE)
    if not value:
        value = getattr(request.state, "new_csrf_cookie", None) or secrets.token_urlsafe(24)
        request.state.new_csrf_cookie = value
    return value


def csrf_token(request: Request) -> str:
    return _csrf_token_for(request, csrf_cookie_value(request))


async def check_csrf(request: Request) -> None:
    """Dependency of every state-changing dashboard route: 403 unless the form field (or the
    htmx header) carries the token of this browser's CSRF cookie."""
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)  # starlette caches the parsed form for Form() params
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, _csrf_token_for(request, cookie)):
        raise ApiError(403, "the form has expired or did not come from this site: reload the page and try again")


CsrfChecked = Depends(check_csrf)


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def session_principal(request: Request, session: Session) -> Principal | None:
    """The browser's login (the reels_session cookie, as the API reads it), if any. API keys are
    not accepted on pages."""
    token = request.cookies.get(SESSION_COOKIE)
    return accounts.principal_for_session(session=session, token=token) if token else None


def signed_in(request: Request, session: SessionDep) -> Principal:
    """The browser's login; none redirects to the login page."""
    principal = session_principal(request, session)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return principal


PagePrincipal = Annotated[Principal, Depends(signed_in)]


def safe_next(value: str | None) -> str:
    """Where to go after logging in: only a path on this site (no open redirect)."""
    if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/login?next={quote(next_path, safe='/')}", status_code=303)


def workspaces_of(session: Session, principal: Principal) -> list[tuple[Account, str]]:
    """(account, role) of every workspace the signed-in user belongs to, for the switcher."""
    if principal.user is None:
        return []
    rows = session.execute(
        select(Account, Membership.role)
        .join(Membership, Membership.account_id == Account.id)
        .where(Membership.user_id == principal.user.id)
        .order_by(Account.name)
    ).all()
    return [(account, role) for account, role in rows]


@dataclass
class Flash:
    kind: str  # "ok" | "error"
    text: str


def render(request: Request, template: str, *, session: Session | None = None, principal: Principal | None = None,
           status_code: int = 200, no_store: bool = False, flashes: list[Flash] | None = None,
           **context) -> HTMLResponse:  # fmt: skip
    """A page (or, for htmx, a fragment) with the shared context: the CSRF token, who is signed
    in and their workspaces. `no_store` for pages that show a secret."""
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "csrf_token": csrf_token(request),
            "csrf_field": CSRF_FIELD,
            "principal": principal,
            "workspaces": workspaces_of(session, principal) if (session is not None and principal) else [],
            "flashes": flashes or [],
            "prefix": PREFIX,
            **context,
        },
        status_code=status_code,
    )
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    new_cookie = getattr(request.state, "new_csrf_cookie", None)
    if new_cookie:
        response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="strict", secure=is_https(request),
                            path="/")  # fmt: skip
    return response


def redirect(path: str) -> RedirectResponse:
    """After a successful POST: see-other, so a reload does not post again."""
    return RedirectResponse(path, status_code=303)
