from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.accounts.models import Account, ApiKey

KEY_PREFIX = "rf_live_"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def get_or_create_account(*, session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        account = Account(name=name)
        session.add(account)
        session.flush()
    return account


def create_api_key(*, session: Session, account: Account, name: str = "") -> str:
    """Create a key and return its plaintext: the only time it exists outside the caller."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness
    session.add(ApiKey(account_id=account.id, key_hash=hash_key(plaintext), prefix=plaintext[:12], name=name))
    session.flush()
    return plaintext


def authenticate(*, session: Session, plaintext: str) -> Account | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None)))
    return session.get(Account, key.account_id) if key else None
