"""Flask extensions, created unbound here and bound to the app in :func:`web.create_app`."""

from __future__ import annotations

from flask import current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from league.db import Base
from league.rules import accounts

# The league's own declarative base: the web app, the scheduler and the workers share one set
# of models and one MetaData (with its naming convention), which Flask-Migrate compares.
db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def client_key() -> str:
    """Who a rate limit counts: the signed-in user, the owner of a valid API token, else the
    client's address.

    Only a token that checks out names a user, so made-up ``Authorization`` headers never buy
    a fresh budget, and every token of one user shares that user's budget.
    """
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.get_id()}"
    if request.path.startswith("/api/"):
        owner = _token_owner()
        if owner is not None:
            return f"user:{owner}"
    return f"ip:{get_remote_address()}"


def _token_owner() -> int | None:
    """The user id of the request's bearer token, if it is a valid one (read only)."""
    if "rate_limit_owner" not in g:
        scheme, _, plain = request.headers.get("Authorization", "").strip().partition(" ")
        token = None
        if scheme.lower() == "bearer" and plain.strip():
            token = accounts.find_token(db.session, plain.strip())  # type: ignore[arg-type]
        g.rate_limit_owner = None if token is None else token.user_id
    owner: int | None = g.rate_limit_owner
    return owner


limiter = Limiter(key_func=client_key, default_limits=[], headers_enabled=True)

#: Uploads, on the website and through the API alike: one budget per user (``upload``), since
#: both routes share this limit's scope and :func:`client_key` names the same user for a
#: session and for a token. Only POSTs count; the API's own limit still applies to its route.
upload_budget = limiter.shared_limit(lambda: limit("upload"), scope="upload", methods=["POST"],
                                     override_defaults=False)


def limit(name: str) -> str:
    """The rate limit ``name`` (login, signup, upload, api): ``PADDOCK_RATELIMIT_<NAME>`` as
    :class:`league.config.Settings` read it, kept in ``app.config["RATELIMIT_<NAME>"]`` (read
    per request, so tests can set it)."""
    value: str = current_app.config[f"RATELIMIT_{name.upper()}"]
    return value
