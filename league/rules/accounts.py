"""Users, their passwords, sessions and mailed links, and personal API tokens.

Passwords are stored as Werkzeug hashes (scrypt); tokens and mailed links as the SHA-256 of
a random secret that is shown (or mailed) once. Functions take a session and never commit.

Sessions. A website session stores the user's ``session_epoch`` when it logs in and counts
only while the user's epoch is unchanged (the web layer checks on every request).
:func:`end_sessions` moves the epoch on: logging out everywhere, changing the password and
resetting it all end every session made before.

Mailed links (:class:`AccountLink`). A password reset link lives :data:`RESET_LINK_TTL`, a
verification link :data:`VERIFY_LINK_TTL`; each works once. Using a reset link, or changing
the password, also spends every other reset link of that user.

Tokens. Each has a scope (:class:`TokenScope`: ``read`` tokens may only read) and an expiry
chosen at creation from :data:`TOKEN_LIFETIMES` (default :data:`DEFAULT_TOKEN_LIFETIME`;
``never`` is allowed, as for the tokens that existed before expiry did).

Recording a token's last use. A read (GET) must not write in its own transaction, so
:func:`find_token` only reads; :func:`token_use_due` says whether the stored time is older
than :data:`TOKEN_USE_RESOLUTION_S`, and :func:`record_token_use` writes it with a guarded
UPDATE that changes nothing when another request got there first. The web layer runs that
UPDATE in a separate short transaction for reads and in the request's own transaction for
writes, so a token's ``last_used_at`` is at most a minute behind and costs at most one write
a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from league.errors import Conflict, InvalidInput, NotFound
from league.models import (
    AccountLink,
    ApiToken,
    LinkPurpose,
    Role,
    TokenScope,
    User,
    utcnow,
)
from league.rules.text import clean_name, has_invisible

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,39}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "pdk_"  # tokens start with this, so a leaked one is easy to recognise
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 200  # longer is never a token of ours
TOKEN_USE_RESOLUTION_S = 60  # a token's last use is recorded at most this often
#: the lifetimes a new token may have, by the name forms and the CLI use (None: never expires)
TOKEN_LIFETIMES: dict[str, dt.timedelta | None] = {
    "30d": dt.timedelta(days=30),
    "90d": dt.timedelta(days=90),
    "1y": dt.timedelta(days=365),
    "never": None,
}
DEFAULT_TOKEN_LIFETIME = "1y"
RESET_LINK_TTL = dt.timedelta(hours=1)
VERIFY_LINK_TTL = dt.timedelta(days=2)
LINK_BYTES = 32
MAX_LINK_CHARS = 100  # longer is never a link secret of ours
# Checking an unknown user's password still costs a hash check, so timing does not tell
# which names exist.
_DUMMY_HASH = generate_password_hash("paddock-dummy-password")


def create_user(session: Session, name: str, email: str, password: str,
                role: Role | str = Role.RACER, *, unverified: bool = False) -> User:
    """Create an account; names and e-mail addresses are unique (case-insensitive).

    The address counts as verified unless ``unverified`` (sign-up with verification on).
    """
    user = register(session, name, email, password, role, unverified=unverified)
    if user is None:
        raise Conflict("that e-mail address is already registered")
    return user


def register(session: Session, name: str, email: str, password: str,
             role: Role | str = Role.RACER, *, unverified: bool = False) -> User | None:
    """Create an account, or None when the address is registered already.

    Every input is checked first, then the name (taken names are an error: names are public
    on leaderboards), then the address. A taken address is no error, so the sign-up page can
    answer the same either way; it costs one password hash like a new account does.
    """
    name = name.strip()
    email = normalize_email(email)
    if not NAME_RE.match(name):
        raise InvalidInput("a user name is 2-40 letters, digits, '.', '_' or '-', starting "
                           "with a letter or digit")
    if len(email) > 254 or not EMAIL_RE.match(email) or has_invisible(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    _check_password(password)
    try:
        role = Role(role)
    except ValueError as err:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}") from err
    if name_taken(session, name):
        raise Conflict("that user name is already registered")
    password_hash = generate_password_hash(password)
    if find_user_by_email(session, email) is not None:
        return None
    user = User(name=name, email=email, password_hash=password_hash, role=role,
                email_verified_at=None if unverified else utcnow())
    session.add(user)
    session.flush()
    return user


def normalize_email(email: str) -> str:
    """An address as it is stored and compared: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def name_taken(session: Session, name: str) -> bool:
    """Whether a user has this name (case-insensitive; names are public anyway)."""
    return session.scalar(sa.select(User.id).where(
        sa.func.lower(User.name) == name.strip().lower())) is not None


def find_user_by_email(session: Session, email: str) -> User | None:
    """The user with this address, or None (never shown to a visitor: see the web layer)."""
    return session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput(f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} "
                           "characters")


def authenticate(session: Session, login: str, password: str) -> User | None:
    """The user with this name or e-mail and password, or None."""
    login = login.strip()
    user = session.scalar(sa.select(User).where(
        sa.or_(sa.func.lower(User.name) == login.lower(), User.email == login.lower())))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def get_user(session: Session, name: str) -> User:
    """A user by name (case-insensitive)."""
    user = session.scalar(sa.select(User).where(sa.func.lower(User.name) == name.lower()))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Set a new password, given the current one; every other session ends (the caller
    stores the new epoch in the session that asked) and pending reset links are spent."""
    if not check_password_hash(user.password_hash, current):
        raise InvalidInput("the current password is wrong")
    _check_password(new)
    _set_password(session, user, new, utcnow())


def _set_password(session: Session, user: User, password: str, now: dt.datetime) -> None:
    user.password_hash = generate_password_hash(password)
    end_sessions(user)
    session.execute(sa.update(AccountLink)
                    .where(AccountLink.user_id == user.id,
                           AccountLink.purpose == LinkPurpose.RESET,
                           AccountLink.used_at.is_(None))
                    .values(used_at=now).execution_options(synchronize_session=False))


def end_sessions(user: User) -> None:
    """End every website session of ``user`` (each carries the epoch it was made in)."""
    user.session_epoch = (user.session_epoch or 0) + 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_link(session: Session, user: User, purpose: LinkPurpose,
                now: dt.datetime | None = None) -> str:
    """A new single-use link secret for ``user``; only its hash is stored (the user's
    expired links are deleted on the way)."""
    now = now or utcnow()
    session.execute(sa.delete(AccountLink)
                    .where(AccountLink.user_id == user.id, AccountLink.expires_at <= now)
                    .execution_options(synchronize_session=False))
    ttl = RESET_LINK_TTL if purpose == LinkPurpose.RESET else VERIFY_LINK_TTL
    plain = secrets.token_urlsafe(LINK_BYTES)
    session.add(AccountLink(user_id=user.id, purpose=purpose, token_hash=_digest(plain),
                            created_at=now, expires_at=now + ttl))
    session.flush()
    return plain


def find_link(session: Session, plain: str, purpose: LinkPurpose,
              now: dt.datetime | None = None) -> AccountLink | None:
    """The link ``plain`` if it is unused and unexpired (nothing is written)."""
    if not plain or len(plain) > MAX_LINK_CHARS:
        return None
    now = now or utcnow()
    return session.scalar(sa.select(AccountLink).where(
        AccountLink.token_hash == _digest(plain), AccountLink.purpose == purpose,
        AccountLink.used_at.is_(None), AccountLink.expires_at > now))


def _spend_link(session: Session, plain: str, purpose: LinkPurpose,
                now: dt.datetime) -> AccountLink:
    """Mark the link used, or refuse it. The guarded UPDATE makes two requests racing with
    one link agree: only one of them changes the row."""
    link = find_link(session, plain, purpose, now)
    if link is not None:
        done = cast("sa.CursorResult[Any]", session.execute(
            sa.update(AccountLink).where(AccountLink.id == link.id, AccountLink.used_at.is_(None))
            .values(used_at=now).execution_options(synchronize_session=False)))
        if done.rowcount == 1:
            session.refresh(link)
            return link
    raise InvalidInput("this link is not valid: it was used already, has expired, or was "
                       "copied incompletely; ask for a new one")


def reset_password(session: Session, plain: str, password: str,
                   now: dt.datetime | None = None) -> User:
    """Set a new password through a reset link; the link and every session end."""
    now = now or utcnow()
    _check_password(password)
    link = _spend_link(session, plain, LinkPurpose.RESET, now)
    _set_password(session, link.user, password, now)
    return link.user


def verify_email(session: Session, plain: str, now: dt.datetime | None = None) -> User:
    """Confirm a user's address through a verification link."""
    now = now or utcnow()
    user = _spend_link(session, plain, LinkPurpose.VERIFY, now).user
    user.email_verified_at = user.email_verified_at or now
    return user


def token_lifetime(choice: str) -> dt.timedelta | None:
    """The lifetime named ``choice`` (a key of :data:`TOKEN_LIFETIMES`)."""
    if choice not in TOKEN_LIFETIMES:
        raise InvalidInput(f"a token lives {', '.join(TOKEN_LIFETIMES)}; got {choice!r}")
    return TOKEN_LIFETIMES[choice]


def create_token(session: Session, user: User, name: str,
                 scope: TokenScope | str = TokenScope.SUBMIT,
                 lifetime: str = DEFAULT_TOKEN_LIFETIME,
                 now: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """A new personal token for ``user``; the plain token is returned once, never stored.

    ``lifetime`` names one of :data:`TOKEN_LIFETIMES` (default one year).
    """
    name = clean_name(name, "a token name", 80)
    try:
        scope = TokenScope(scope)
    except ValueError as err:
        raise InvalidInput(f"a token's scope is one of {', '.join(s.value for s in TokenScope)}"
                           f"; got {scope!r}") from err
    ttl = token_lifetime(lifetime)
    now = now or utcnow()
    plain = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(plain),
                     prefix=plain[:len(TOKEN_PREFIX) + 6], scope=scope, created_at=now,
                     expires_at=None if ttl is None else now + ttl)
    session.add(token)
    session.flush()
    return token, plain


def lookup_token(session: Session, plain: str) -> ApiToken | None:
    """The token ``plain`` whatever its state, or None (nothing is written)."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > MAX_TOKEN_CHARS:
        return None
    return session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(plain)))


def token_refusal(token: ApiToken | None, now: dt.datetime) -> str | None:
    """Why ``token`` may not be used now ("unknown", "revoked", "expired"), or None."""
    if token is None:
        return "unknown"
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return None


def find_token(session: Session, plain: str, now: dt.datetime | None = None) -> ApiToken | None:
    """The token ``plain`` if it exists, is not revoked and has not expired (nothing is
    written)."""
    token = lookup_token(session, plain)
    return None if token_refusal(token, now or utcnow()) else token


def token_use_due(token: ApiToken, now: dt.datetime) -> bool:
    """Whether ``token``'s recorded last use is missing or older than the resolution."""
    last = token.last_used_at
    return last is None or now - last >= dt.timedelta(seconds=TOKEN_USE_RESOLUTION_S)


def record_token_use(session: Session, token_id: int, now: dt.datetime) -> bool:
    """Set a token's last use to ``now`` unless it was set within the resolution."""
    since = now - dt.timedelta(seconds=TOKEN_USE_RESOLUTION_S)
    done = cast("sa.CursorResult[Any]", session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == token_id,
               sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= since))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)))
    return done.rowcount == 1


def revoke_token(session: Session, user: User, token_id: int) -> None:
    """Revoke one of ``user``'s tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("no such token")
    token.revoked_at = token.revoked_at or utcnow()
