"""FastAPI dependencies, as Annotated aliases (SessionDep, CurrentAccount, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from control_plane.accounts import service as accounts
from control_plane.accounts.models import Account
from control_plane.config import Settings
from control_plane.errors import ApiError
from control_plane.storage import Storage


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def api_key_from(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def get_current_account(request: Request, session: SessionDep) -> Account:
    plaintext = api_key_from(request)
    account = accounts.authenticate(session=session, plaintext=plaintext) if plaintext else None
    if account is None:
        raise ApiError(401, "not authenticated" if plaintext is None else "invalid or revoked API key",
                       headers={"WWW-Authenticate": "Bearer"})
    return account


CurrentAccount = Annotated[Account, Depends(get_current_account)]
