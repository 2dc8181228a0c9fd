"""Users and personal API tokens.

Passwords are stored as Werkzeug hashes (scrypt); tokens as the SHA-256 of a random secret
that is shown once. Functions take a session and never commit.

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
from league.models import ApiToken, Role, User, utcnow
from league.rules.text import clean_name, has_invisible

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,39}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "pdk_"  # tokens start with this, so a leaked one is easy to recognise
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 200  # longer is never a token of ours
TOKEN_USE_RESOLUTION_S = 60  # a token's last use is recorded at most this often
# Checking an unknown user's password still costs a hash check, so timing does not tell
# which names exist.
_DUMMY_HASH = generate_password_hash("paddock-dummy-password")


def create_user(session: Session, name: str, email: str, password: str,
                role: Role | str = Role.RACER) -> User:
    """Create an account; names and e-mail addresses are unique (case-insensitive)."""
    name = name.strip()
    email = unicodedata.normalize("NFKC", email).strip().lower()
    if not NAME_RE.match(name):
        raise InvalidInput("a user name is 2-40 letters, digits, '.', '_' or '-', starting "
                           "with a letter or digit")
    if len(email) > 254 or not EMAIL_RE.match(email) or has_invisible(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput(f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} "
                           "characters")
    try:
        role = Role(role)
    except ValueError as err:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}") from err
    taken = session.scalar(sa.select(User.id).where(
        sa.or_(sa.func.lower(User.name) == name.lower(), User.email == email)))
    if taken is not None:
        raise Conflict("that user name or e-mail address is already registered")
    user = User(name=name, email=email, password_hash=generate_password_hash(password),
                role=role)
    session.add(user)
    session.flush()
    return user


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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new personal token for ``user``; the plain token is returned once, never stored."""
    name = clean_name(name, "a token name", 80)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(plain),
                     prefix=plain[:len(TOKEN_PREFIX) + 6])
    session.add(token)
    session.flush()
    return token, plain


def find_token(session: Session, plain: str) -> ApiToken | None:
    """The token ``plain`` if it exists and is not revoked (nothing is written)."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > MAX_TOKEN_CHARS:
        return None
    return session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(plain),
                                                    ApiToken.revoked_at.is_(None)))


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
