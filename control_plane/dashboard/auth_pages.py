"""Dashboard pages: sign up, log in, log out and the workspace switcher.

The login cookie is the API's (reels_session, set by accounts.views.set_session_cookie), so a
browser signed in here is signed in to the API too, and the other way round. Logins are rate
limited exactly as the API's (control_plane/accounts/login_limits.py). Signing up takes up
the address's pending invitations (the new user joins those workspaces too) and, as the API's
sign-up does, makes the user a workspace of their own, which the session starts in; the
switcher in the header reaches the others.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from control_plane.accounts import service as accounts
from control_plane.accounts.login_limits import check_login_rate, check_signup_rate
from control_plane.accounts.views import set_session_cookie
from control_plane.dashboard.web import (
    PREFIX,
    CsrfChecked,
    PagePrincipal,
    is_https,
    redirect,
    render,
    safe_next,
    session_principal,
)
from control_plane.deps import SESSION_COOKIE, PlansDep, SessionDep
from control_plane.errors import ApiError

router = APIRouter(prefix=PREFIX, include_in_schema=False)

HOME = f"{PREFIX}/jobs"
EmailField = Annotated[str, Form(max_length=320)]
PasswordField = Annotated[str, Form(max_length=1000)]


@router.get("")
def dashboard_home(request: Request, session: SessionDep):
    """The dashboard's front door: the jobs when signed in, else the login form."""
    return redirect(HOME if session_principal(request, session) else f"{PREFIX}/login")


# ------------------------------------------------------------------ sign up


@router.get("/signup")
def signup_form(request: Request):
    return render(request, "auth_signup.html", email="", account_name="", errors={})


@router.post("/signup", dependencies=[CsrfChecked])
async def signup(request: Request, session: SessionDep, plans: PlansDep, email: EmailField = "",
                 password: PasswordField = "", account_name: Annotated[str, Form(max_length=150)] = ""):  # fmt: skip
    await check_signup_rate(request, email)  # 429 (the error page, with Retry-After) when over the limit
    try:
        token = await run_in_threadpool(_sign_up, session, plans, email, password, account_name)
    except ApiError as exc:
        if exc.status_code not in (400, 409):
            raise
        session.rollback()
        field = "password" if "password" in exc.message else "email"
        message = "an account with this email exists already: log in instead" if exc.status_code == 409 else exc.message
        return render(request, "auth_signup.html", status_code=400, email=email, account_name=account_name,
                      errors={field: message})  # fmt: skip
    response = redirect(HOME)
    set_session_cookie(response, token, secure=is_https(request))
    return response


def _sign_up(session: Session, plans, email: str, password: str, account_name: str) -> str:
    user, account = accounts.sign_up(session=session, email=email, password=password, plan=plans.default_plan,
                                     account_name=account_name.strip() or None)  # fmt: skip
    token = accounts.start_session(session=session, user=user, account_id=account.id)
    session.commit()
    return token


# ------------------------------------------------------------------ log in and out


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = ""):
    if session_principal(request, session):
        return redirect(safe_next(next))
    return render(request, "auth_login.html", email="", next=next, error=None)


def _log_in(session: Session, email: str, password: str) -> str:
    user = accounts.verify_login(session=session, email=email, password=password)
    token = accounts.start_session(session=session, user=user)
    session.commit()
    return token


@router.post("/login", dependencies=[CsrfChecked])
async def login(request: Request, session: SessionDep, email: EmailField = "", password: PasswordField = "",
                next: Annotated[str, Form(max_length=2000)] = ""):  # fmt: skip
    if not email.strip() or not password:
        return render(request, "auth_login.html", status_code=400, email=email, next=next,
                      error="enter your email and password")  # fmt: skip
    await check_login_rate(request, email)  # 429 (the error page, with Retry-After) when over the limit
    try:
        token = await run_in_threadpool(_log_in, session, email, password)  # argon2: off the event loop
    except ApiError as exc:
        if exc.status_code != 401:
            raise
        return render(request, "auth_login.html", status_code=401, email=email, next=next, error=exc.message)
    response = redirect(safe_next(next))
    set_session_cookie(response, token, secure=is_https(request))
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, session: SessionDep):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts.end_session(session=session, token=token)
        session.commit()
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------ workspace switcher


def _back_to(request: Request) -> str:
    """The page the switch was asked from, cut to its section (an object of the workspace left
    behind would be a 404 in the new one): /dashboard/jobs/job_1 -> /dashboard/jobs."""
    path = urlsplit(request.headers.get("referer", "")).path
    parts = safe_next(path).split("/")  # ["", "dashboard", section, ...]
    keep = 4 if len(parts) > 2 and parts[2] == "settings" else 3
    return "/".join(parts[:keep])


@router.post("/workspaces/switch", dependencies=[CsrfChecked])
def switch_workspace(request: Request, principal: PagePrincipal, session: SessionDep,
                     account_id: Annotated[str, Form(max_length=64)]):  # fmt: skip
    """Continue in another workspace of the signed-in user (404 unless they belong to it)."""
    assert principal.user is not None  # pages are signed in with the cookie
    if accounts.role_in(session=session, user=principal.user, account_id=account_id) is None:
        raise ApiError(404, "workspace not found")
    token = accounts.start_session(session=session, user=principal.user, account_id=account_id)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        accounts.end_session(session=session, token=old)
    session.commit()
    response = redirect(_back_to(request))
    set_session_cookie(response, token, secure=is_https(request))
    return response
