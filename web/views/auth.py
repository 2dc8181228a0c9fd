"""Accounts: sign up, log in, log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from league.errors import Conflict, InvalidInput
from league.rules import accounts
from web.extensions import limit, limiter
from web.helpers import session, viewer

bp = Blueprint("auth", __name__)


class SignupForm(FlaskForm):
    name = StringField("User name", validators=[DataRequired(), Length(2, 40)],
                       description="2-40 letters, digits, '.', '_' or '-'; shown on leaderboards")
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(8, 256)],
                             description="at least 8 characters")
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", "the passwords differ")])


class LoginForm(FlaskForm):
    login = StringField("User name or e-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


def _safe_next(target: str | None) -> str:
    """Only a path on this site is followed after login (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("garage.index")


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: limit("signup"), methods=["POST"])
def signup() -> str | Response:
    """Create an account and log in."""
    if viewer() is not None:
        return redirect(url_for("garage.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(session(), form.name.data or "", form.email.data or "",
                                        form.password.data or "")
        except InvalidInput as err:
            form.name.errors = [*form.name.errors, str(err)]  # type: ignore[list-item]
        except Conflict as err:
            form.name.errors = [*form.name.errors, str(err)]  # type: ignore[list-item]
        else:
            session().commit()
            login_user(user)
            flash(f"Welcome to Paddock, {user.name}!", "success")
            return redirect(url_for("garage.index"))
    return render_template("auth/signup.html", form=form)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: limit("login"), methods=["POST"])
def login() -> str | Response:
    """Log in with a user name or e-mail and a password."""
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(session(), form.login.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.form_errors.append("unknown user name or wrong password")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Log out (a POST with the form's CSRF token, so no link can log anyone out)."""
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("public.home"))
