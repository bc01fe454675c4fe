"""Accounts, users, logins and API keys. Views translate HTTP; everything else is here."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from control_plane.billing.plans import PlanBook
from control_plane.errors import ApiError
from reelfarm.database import utcnow
from reelfarm.models.accounts import Account, ApiKey, Invitation, Membership, User, UserSession

KEY_PREFIX = "rf_live_"
ROLES = ("owner", "admin", "member")
# What a key may do; every key gets all of them unless it is created with fewer.
SCOPES = ("uploads:write", "jobs:read", "jobs:write", "clips:read", "assets:read", "assets:write", "campaigns:create")
SESSION_LIFETIME = timedelta(days=14)
# ApiKey.last_used_at is written at most this often per key: a key's every request reads it, few write.
KEY_USE_RESOLUTION = timedelta(seconds=60)
INVALID_KEY = "invalid or revoked API key"
NO_API_ACCESS = "Your plan does not include API access"
MIN_PASSWORD_LENGTH = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# argon2id with the library's defaults (RFC 9106 low-memory profile).
_hasher = PasswordHasher()
T = TypeVar("T")
log = logging.getLogger(__name__)
# key id -> time.monotonic() of this process's last note of its use (see _note_key_use)
_noted: dict[str, float] = {}
_noted_lock = threading.Lock()


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both cases take the same time
    (made on first use: hashing is deliberately slow, and most processes never log anyone in)."""
    return _hasher.hash("not a real password")


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account, through a key (with scopes) or a user's login."""

    account: Account
    via: str  # "key" | "session"
    user: User | None = None
    role: str | None = None
    scopes: tuple[str, ...] = field(default=SCOPES)


# ------------------------------------------------------------------ accounts and users


def get_or_create_account(*, session: Session, name: str, plan: str) -> Account:
    """The account named `name`; made on `plan` (REELFARM_DEFAULT_PLAN's) when there is none."""
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        account = Account(name=name, plan=plan)
        session.add(account)
        session.flush()
    return account


def _unique_account_name(session: Session, wanted: str) -> str:
    name, n = wanted, 1
    while session.scalar(select(Account.id).where(Account.name == name)) is not None:
        n += 1
        name = f"{wanted} ({n})"
    return name


def sign_up(*, session: Session, email: str, password: str, plan: str,
            account_name: str | None = None) -> tuple[User, Account]:  # fmt: skip
    """A new user who owns a new workspace, on `plan` (the default plan)."""
    email = email.strip().lower()
    if not is_email(email):
        raise ApiError(400, "a valid email is required")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(400, f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ApiError(409, "email exists")
    user = User(email=email, password_hash=_hasher.hash(password))
    account = Account(name=_unique_account_name(session, (account_name or email.split("@")[0]).strip()[:150]),
                      plan=plan)
    session.add_all([user, account])
    session.flush()
    session.add(Membership(account_id=account.id, user_id=user.id, role="owner"))
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same email
        raise ApiError(409, "email exists") from exc
    accept_invitations(session=session, user=user)
    return user, account


def is_email(email: str) -> bool:
    """Shaped like an address: every user's email is (sign_up and make_owner check)."""
    return len(email) <= 320 and _EMAIL.match(email.strip()) is not None


def verify_login(*, session: Session, email: str, password: str) -> User:
    if not is_email(email):  # no user has it: nothing to hash against (and no login attempt to count)
        raise ApiError(401, "wrong email or password")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise ApiError(401, "wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    accept_invitations(session=session, user=user)
    return user


def role_in(*, session: Session, user: User, account_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(Membership.user_id == user.id, Membership.account_id == account_id)
    )


def start_session(*, session: Session, user: User, account_id: str | None = None) -> str:
    """A login: returns the cookie's token (only its hash is stored)."""
    if account_id is None:
        account_id = session.scalar(
            select(Membership.account_id).where(Membership.user_id == user.id).order_by(Membership.created_at)
        )
    if account_id is None or role_in(session=session, user=user, account_id=account_id) is None:
        raise ApiError(404, "account not found")
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=hash_key(token), user_id=user.id, account_id=account_id,
                            expires_at=utcnow() + SESSION_LIFETIME))  # fmt: skip
    session.flush()
    return token


def end_session(*, session: Session, token: str) -> None:
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_key(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def add_member(*, session: Session, principal: Principal, email: str, role: str) -> Membership | Invitation:
    """Add `email` to the workspace with `role` (owners and admins; only an owner adds an owner).

    A user with that address becomes a member now (a Membership); an address with no user yet
    gets a pending Invitation, accepted when someone signs up or logs in with it."""
    require_role(principal, "owner", "admin")
    if role not in ROLES:
        raise ApiError(400, f"role must be one of {', '.join(ROLES)}")
    if role == "owner" and principal.role != "owner":
        raise ApiError(403, "only an owner can add an owner")
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        return _invite(session=session, principal=principal, email=email, role=role)
    if role_in(session=session, user=user, account_id=principal.account.id) is not None:
        raise ApiError(409, "already a member")
    membership = Membership(account_id=principal.account.id, user_id=user.id, role=role)
    session.add(membership)
    session.flush()
    return membership


def _invite(*, session: Session, principal: Principal, email: str, role: str) -> Invitation:
    if not is_email(email):
        raise ApiError(400, "a valid email is required")
    pending = session.scalar(select(Invitation.id).where(Invitation.account_id == principal.account.id,
                                                         Invitation.email == email,
                                                         Invitation.accepted_at.is_(None)))  # fmt: skip
    if pending is not None:
        raise ApiError(409, "already invited")
    invitation = Invitation(account_id=principal.account.id, email=email, role=role,
                            invited_by=principal.user.id if principal.user else None)  # fmt: skip
    session.add(invitation)
    session.flush()
    return invitation


def list_invitations(*, session: Session, account: Account) -> list[Invitation]:
    """The workspace's pending invitations, oldest first."""
    return list(session.scalars(
        select(Invitation).where(Invitation.account_id == account.id, Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at)
    ))  # fmt: skip


def revoke_invitation(*, session: Session, principal: Principal, invitation_id: str) -> None:
    """Withdraw a pending invitation (owners and admins); another workspace's answers 404."""
    require_role(principal, "owner", "admin")
    invitation = owned(session, Invitation, invitation_id, principal.account, "invitation")
    if invitation.accepted_at is not None:
        raise ApiError(409, "the invitation was accepted already: remove the member instead")
    session.delete(invitation)
    session.flush()


def accept_invitations(*, session: Session, user: User) -> None:
    """Join `user` to every workspace that invited their address.
    Called at sign-up and at every login (so an invitation made after sign-up is taken up too)."""
    invitations = session.scalars(
        select(Invitation).where(Invitation.email == user.email, Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at)
    ).all()  # fmt: skip
    for invitation in invitations:
        if role_in(session=session, user=user, account_id=invitation.account_id) is None:
            session.add(Membership(account_id=invitation.account_id, user_id=user.id, role=invitation.role))
        invitation.accepted_at = utcnow()
    if invitations:
        session.flush()


def list_members(*, session: Session, account: Account) -> list[tuple[Membership, User]]:
    rows = session.execute(
        select(Membership, User).join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account.id).order_by(Membership.created_at)
    )  # fmt: skip
    return [(m, u) for m, u in rows]


LAST_OWNER = "a workspace needs at least one owner: make someone else an owner first"


def _member_of(session: Session, principal: Principal, user_id: str) -> tuple[Membership, User]:
    """The workspace's membership of `user_id`, locked; anyone else (another workspace's member
    included) answers 404, as a missing one does. Takes the account's row lock first, so two
    changes of the workspace's owners are made one after the other (the last-owner rule holds)."""
    session.scalar(select(Account.id).where(Account.id == principal.account.id).with_for_update())
    row = session.execute(
        select(Membership, User).join(User, User.id == Membership.user_id)
        .where(Membership.account_id == principal.account.id, Membership.user_id == user_id)
    ).first()  # fmt: skip
    if row is None:
        raise ApiError(404, "member not found")
    return row[0], row[1]


def _other_owners(session: Session, membership: Membership) -> int:
    return session.scalar(
        select(func.count()).select_from(Membership)
        .where(Membership.account_id == membership.account_id, Membership.role == "owner",
               Membership.id != membership.id)
    )  # fmt: skip


def change_role(*, session: Session, principal: Principal, user_id: str, role: str) -> tuple[Membership, User]:
    """Give a member another role (owners and admins; only an owner makes an owner or changes an
    owner's role); demoting the workspace's last owner is a 409. Not a member here: 404."""
    require_role(principal, "owner", "admin")
    membership, user = _member_of(session, principal, user_id)
    if role not in ROLES:
        raise ApiError(400, f"role must be one of {', '.join(ROLES)}")
    if "owner" in (role, membership.role) and principal.role != "owner":
        raise ApiError(403, "only an owner can make an owner or change an owner's role")
    if membership.role == "owner" and role != "owner" and _other_owners(session, membership) == 0:
        raise ApiError(409, LAST_OWNER)
    membership.role = role
    session.flush()
    return membership, user


def remove_member(*, session: Session, principal: Principal, user_id: str) -> None:
    """Take a member out of the workspace (owners and admins; only an owner removes an owner;
    anyone of them may remove themselves) and end their logins in it at once. The last owner
    cannot be removed (409). Not a member here: 404."""
    require_role(principal, "owner", "admin")
    membership, _ = _member_of(session, principal, user_id)
    if membership.role == "owner" and principal.role != "owner":
        raise ApiError(403, "only an owner can remove an owner")
    if membership.role == "owner" and _other_owners(session, membership) == 0:
        raise ApiError(409, LAST_OWNER)
    session.execute(update(UserSession).where(UserSession.account_id == membership.account_id,
                                              UserSession.user_id == membership.user_id,
                                              UserSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))  # fmt: skip
    session.delete(membership)
    session.flush()


# ------------------------------------------------------------------ authentication


def principal_for_key(*, session: Session, plaintext: str) -> Principal | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None)))
    if key is None:
        return None
    _note_key_use(session, key)
    account = session.get(Account, key.account_id)
    return Principal(account=account, via="key", scopes=tuple(key.scopes or SCOPES)) if account else None


def _note_key_use(session: Session, key: ApiKey) -> None:
    """Record that `key` was used, when its last_used_at is older than KEY_USE_RESOLUTION.

    Most requests write nothing: the stored time is recent, or this process noted the key within
    the resolution already (so a burst of requests on one key makes one write, not one each).
    The write is a conditional UPDATE committed at once in the caller's session, which at
    authentication holds nothing else (a GET view never commits; another connection from the
    same pool could run it dry under a burst). A failure only loses the note.

    GET /api/v1/jobs/{id} polled with a key on PostgreSQL reads its key in
    control_plane/jobs/status_reads.py and does not come here: those polls leave last_used_at
    as it is."""
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < KEY_USE_RESOLUTION:
        return
    clock = time.monotonic()
    with _noted_lock:
        if clock - _noted.get(key.id, -math.inf) < KEY_USE_RESOLUTION.total_seconds():
            return
        if len(_noted) >= 10_000:
            _noted.clear()
        _noted[key.id] = clock
    try:
        session.execute(update(ApiKey).where(ApiKey.id == key.id, or_(ApiKey.last_used_at.is_(None),
                                                                    ApiKey.last_used_at < now - KEY_USE_RESOLUTION))
                        .values(last_used_at=now).execution_options(synchronize_session=False))  # fmt: skip
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("could not record the use of API key %s: %r", key.id, exc)


def require_api_access(principal: Principal, plans: PlanBook) -> None:
    """403 for a key whose account's plan has no API access (signed-in users are never refused)."""
    if principal.via == "key" and not plans.of(principal.account.plan).api_access:
        raise ApiError(403, NO_API_ACCESS)


def find_account(*, session: Session, id_or_name: str) -> Account:
    """An account by its id or its name (the CLI's ACCOUNT); 404 when neither matches."""
    account = session.get(Account, id_or_name) or session.scalar(select(Account).where(Account.name == id_or_name))
    if account is None:
        raise ApiError(404, f"no account with id or name {id_or_name!r}")
    return account


def has_owner(*, session: Session, account: Account) -> bool:
    return session.scalar(select(Membership.id).where(Membership.account_id == account.id,
                                                      Membership.role == "owner").limit(1)) is not None  # fmt: skip


def make_owner(*, session: Session, account: Account, email: str, password: str | None = None) -> str | None:
    """Make `email` an owner of `account` (an operator's act: the CLI), so someone can sign in to
    review its batches. A new user gets `password`, or a generated one, which is returned
    (None for an existing user, whose password is left alone)."""
    email = email.strip().lower()
    if not is_email(email):
        raise ApiError(400, f"{email!r} is not an email address")
    user = session.scalar(select(User).where(User.email == email))
    created = None
    if user is None:
        created = password or secrets.token_urlsafe(12)
        if len(created) < MIN_PASSWORD_LENGTH:
            raise ApiError(400, f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        user = User(email=email, password_hash=_hasher.hash(created))
        session.add(user)
        session.flush()
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                         Membership.account_id == account.id))  # fmt: skip
    if membership is None:
        session.add(Membership(account_id=account.id, user_id=user.id, role="owner"))
    else:
        membership.role = "owner"
    session.flush()
    return created


def change_plan(*, session: Session, account: Account, plan_id: str, plans: PlanBook) -> Account:
    """Move the account to another plan (an operator's act: the CLI); 400 for an unknown plan."""
    if plans.get(plan_id) is None:
        raise ApiError(400, f"unknown plan {plan_id!r}; plans: {', '.join(plans.plans)}")
    account.plan = plan_id
    session.flush()
    return account


def principal_for_session(*, session: Session, token: str) -> Principal | None:
    row = session.scalar(select(UserSession).where(UserSession.token_hash == hash_key(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    role = role_in(session=session, user=user, account_id=row.account_id) if user else None
    if role is None:  # removed from the workspace since logging in
        return None
    return Principal(account=session.get(Account, row.account_id), via="session", user=user, role=role)


def owned(session: Session, model: type[T], object_id: str, account: Account, what: str) -> T:
    """The account's `model` row with this id; another account's answers exactly like a missing one."""
    row = session.get(model, object_id)
    if row is None or row.account_id != account.id:
        raise ApiError(404, f"{what} not found")
    return row


def require_role(principal: Principal, *roles: str) -> None:
    if principal.via != "session":
        raise ApiError(403, "API keys cannot manage keys, members or billing: sign in")
    if principal.role not in roles:
        raise ApiError(403, f"needs the {' or '.join(roles)} role")


def missing_scope(scope: str) -> str:
    return f"this API key lacks the {scope} scope"


def require_scope(principal: Principal, scope: str) -> None:
    if principal.via == "key" and scope not in principal.scopes:
        raise ApiError(403, missing_scope(scope))


# ------------------------------------------------------------------ API keys


def create_api_key(*, session: Session, account: Account, name: str = "", scopes: list[str] | None = None) -> str:
    """Create a key and return its plaintext: the only time it exists outside the caller."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness
    session.add(ApiKey(account_id=account.id, key_hash=hash_key(plaintext), prefix=plaintext[:12], name=name,
                       scopes=list(scopes) if scopes else list(SCOPES)))  # fmt: skip
    session.flush()
    return plaintext


def issue_account_key(*, session: Session, account: Account, name: str, scopes: list[str] | None,
                      plans: PlanBook) -> tuple[ApiKey, str]:
    """A key for `account` within its plan: API access and the plan's number of active keys.

    Every key a person asks for is made here (the /keys page, `reelfarm keys create`);
    `create_api_key` alone is for keys the software makes for itself."""
    unknown = sorted(set(scopes or ()) - set(SCOPES))
    if unknown:
        raise ApiError(400, f"unknown scopes {unknown}; known: {list(SCOPES)}")
    plan = plans.of(account.plan)
    if not plan.api_access:
        raise ApiError(403, f"the {plan.name} plan does not include API access")
    # Serialise key creation per account so two requests cannot both pass the limit.
    session.scalar(select(Account.id).where(Account.id == account.id).with_for_update())
    active = session.scalar(
        select(func.count()).select_from(ApiKey)
        .where(ApiKey.account_id == account.id, ApiKey.revoked_at.is_(None))
    )  # fmt: skip
    if active >= plan.api_keys:
        raise ApiError(409, f"key limit reached: the {plan.name} plan allows {plan.api_keys} active keys")
    plaintext = create_api_key(session=session, account=account, name=name, scopes=scopes)
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext)))
    return key, plaintext


def issue_api_key(*, session: Session, principal: Principal, name: str, scopes: list[str] | None,
                  plans: PlanBook) -> tuple[ApiKey, str]:
    """A key made from the /keys page: owners and admins, within the plan's limits."""
    require_role(principal, "owner", "admin")
    return issue_account_key(session=session, account=principal.account, name=name, scopes=scopes, plans=plans)


def list_api_keys(*, session: Session, principal: Principal) -> list[ApiKey]:
    require_role(principal, "owner", "admin", "member")
    return list(session.scalars(
        select(ApiKey).where(ApiKey.account_id == principal.account.id).order_by(ApiKey.created_at.desc())
    ))  # fmt: skip


def revoke_api_key(*, session: Session, principal: Principal, key_id: str) -> ApiKey:
    require_role(principal, "owner", "admin")
    key = owned(session, ApiKey, key_id, principal.account, "key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
