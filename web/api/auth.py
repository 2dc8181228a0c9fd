"""Who is calling the API: a personal token in ``Authorization: Bearer pdk_...``, nothing else.

The API never looks at the website's login cookie: it is exempt from CSRF because only a
token, which a browser never sends by itself, can act in a user's name.

A request without the header is anonymous; one with a header that is not a valid, unrevoked,
unexpired token is refused with 401 on every endpoint (a script with a stale token should
hear so, not quietly see less); an expired one is told it expired.

Scopes. A ``read`` token may only make GET and HEAD requests: any other method (every write
endpoint of the API is a POST) is refused with 403 ``forbidden`` naming the scope, before the
endpoint runs. A ``submit`` token may do everything its owner may.

The token's last use is recorded as :mod:`league.rules.accounts` describes:
for GET and HEAD in a separate short transaction, at most once a minute per token, so the
request's own transaction stays read-only; for writes within the request's transaction.
"""

from __future__ import annotations

from typing import cast

from flask import g, request
from sqlalchemy.orm import Session as OrmSession

from league.models import TokenScope, User, utcnow
from league.rules import accounts
from web.api.errors import ApiError, unauthorized
from web.extensions import db
from web.helpers import session

SAFE_METHODS = ("GET", "HEAD")
_UNSET = object()
# A revoked token reads like an unknown one (a leaked old token confirms nothing about the
# account); an expired one says so, since its owner just needs a new one.
_REFUSALS = {
    "unknown": "the API token is unknown or revoked",
    "revoked": "the API token is unknown or revoked",
    "expired": "the API token has expired; create a new one in your garage",
}


def caller() -> User | None:
    """The user the request's token belongs to, or None without a token (401 on a bad one)."""
    cached = g.get("api_caller", _UNSET)
    if cached is not _UNSET:
        return cast(User | None, cached)
    user = _authenticate()
    g.api_caller = user
    return user


def require_caller() -> User:
    """The calling user; 401 when the request carries no token."""
    user = caller()
    if user is None:
        raise unauthorized("this needs a personal API token: send 'Authorization: Bearer "
                           "pdk_...' (create one in your garage or with 'paddock token "
                           "create')")
    return user


def _authenticate() -> User | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, plain = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise unauthorized("the Authorization header must be 'Bearer <token>'")
    now = utcnow()
    token = accounts.lookup_token(session(), plain.strip())
    refusal = accounts.token_refusal(token, now)
    if token is None or refusal is not None:
        raise unauthorized(_REFUSALS.get(refusal or "unknown", _REFUSALS["unknown"]))
    if token.scope == TokenScope.READ and request.method not in SAFE_METHODS:
        raise ApiError(403, "forbidden", "this API token has the 'read' scope, which only "
                       "reads (GET); changes need a token with the 'submit' scope")
    if accounts.token_use_due(token, now):
        if request.method in SAFE_METHODS:
            with OrmSession(db.engine) as side, side.begin():
                accounts.record_token_use(side, token.id, now)
        else:
            accounts.record_token_use(session(), token.id, now)
    return token.user
