"""Users and personal API tokens.

Passwords are stored as Werkzeug hashes (scrypt); tokens as the SHA-256 of a random secret
that is shown once. Functions take a session and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from league.errors import Conflict, InvalidInput, NotFound
from league.models import ApiToken, Role, User, utcnow
from league.text import clean_name, has_invisible

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,39}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
TOKEN_PREFIX = "pdk_"  # tokens start with this, so a leaked one is easy to recognise
TOKEN_BYTES = 32
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


def user_for_token(session: Session, plain: str) -> User | None:
    """The user a (not revoked) token belongs to, or None; records when it was used."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(plain),
                                                     ApiToken.revoked_at.is_(None)))
    if token is None:
        return None
    token.last_used_at = utcnow()
    return token.user


def revoke_token(session: Session, user: User, token_id: int) -> None:
    """Revoke one of ``user``'s tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("no such token")
    token.revoked_at = token.revoked_at or utcnow()
