"""What a public site needs on every response: security headers, safe session cookies, and
sessions that can be ended.

Revocable sessions. The session cookie is signed, so it cannot be changed, but neither can
it be taken back once issued. Each one therefore stores the user's ``session_epoch`` from
the moment it logged in (:func:`sign_in`), and :func:`load_user`, which Flask-Login calls on
every request, accepts it only while the user's epoch is the same. Logging out everywhere,
changing the password and resetting it move the epoch on (:func:`league.rules.accounts.
end_sessions`), so every older cookie stops counting at its next request. A cookie without
an epoch (made before epochs existed) counts as epoch 0, the epoch every user starts with.

Unverified accounts. With ``PADDOCK_VERIFY_EMAIL`` on, a signed-in user whose address is not
confirmed may read every page but change nothing: any other method than GET or HEAD outside
the account pages (``auth``) is sent to the account page, which offers a new link. Without a
token of their own (creating one is such a change) they cannot use the API's writes either.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, flash, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_user

from league.config import Settings
from league.models import User
from web.extensions import db

# No inline script or style anywhere: every script and stylesheet comes from /static.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000"  # sent only over HTTPS


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose cookie is ``Secure`` whenever the request came over HTTPS
    (behind a proxy, once ``PADDOCK_PROXY_HOPS`` trusts its forwarded scheme)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def add_security_headers(response: Response) -> Response:
    """Set the security headers of every response (a view may set a stricter one first)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


EPOCH_KEY = "_epoch"  # the session's copy of the user's session epoch
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
OPEN_TO_UNVERIFIED = ("auth",)  # blueprints an unverified user may still post to


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the session's user, if the session has not been ended."""
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or session.get(EPOCH_KEY, 0) != user.session_epoch:
        return None
    return user


def sign_in(user: User) -> None:
    """Log ``user`` in on this session, in the user's current epoch."""
    login_user(user)
    session[EPOCH_KEY] = user.session_epoch


def keep_session(user: User) -> None:
    """Carry this session into ``user``'s new epoch (after a password change here)."""
    session[EPOCH_KEY] = user.session_epoch


def forget_session() -> None:
    """Drop the epoch when logging out."""
    session.pop(EPOCH_KEY, None)


def refuse_unverified_changes() -> Any:
    """Send an unverified user's changes to the account page (see the module docstring)."""
    if request.method in SAFE_METHODS or request.blueprint in OPEN_TO_UNVERIFIED \
            or request.path.startswith("/api/"):
        return None
    settings: Settings = current_app.extensions["paddock.settings"]
    if not settings.verify_email:
        return None
    if not current_user.is_authenticated or current_user.email_verified_at is not None:
        return None
    flash("Confirm your e-mail address first: follow the link we mailed you (or ask for a "
          "new one below). Until then you can look around but not change anything.", "error")
    return redirect(url_for("auth.account"), 303)


def init_app(app: Flask) -> None:
    """Install the session interface, the header hook and the unverified users' check."""
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.after_request(add_security_headers)
    app.before_request(refuse_unverified_changes)
