"""Accounts: sign up, log in and out, the account page (password, sessions, verification),
password resets by e-mail.

No page tells a visitor whether an address is registered: sign-up and the reset request
send a mail either way and answer with the same redirect and message. (The time a request
takes may still differ a little, by the SMTP exchange of the mail; the rate limits bound how
many addresses anyone can try.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from league.errors import Conflict, InvalidInput
from league.models import LinkPurpose, User
from league.rules import accounts
from web import mail, security
from web.extensions import limit, limiter
from web.helpers import session, settings, viewer

bp = Blueprint("auth", __name__)
NEW_PASSWORD_HELP = "at least 8 characters"


class SignupForm(FlaskForm):
    name = StringField("User name", validators=[DataRequired(), Length(2, 40)],
                       description="2-40 letters, digits, '.', '_' or '-'; shown on leaderboards")
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(8, 256)],
                             description=NEW_PASSWORD_HELP)
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", "the passwords differ")])


class LoginForm(FlaskForm):
    login = StringField("User name or e-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class ForgotForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)],
                       description="the address of your account")


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(8, 256)],
                             description=NEW_PASSWORD_HELP)
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired(), EqualTo("password", "the passwords differ")])


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])


class ConfirmForm(FlaskForm):
    """A button with a CSRF token (log out everywhere, confirm an address, resend a link)."""


def _safe_next(target: str | None) -> str:
    """Only a path on this site is followed after login (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("garage.index")


def _me() -> User:
    user = viewer()
    if user is None:  # login_required ran first; this only narrows the type
        abort(401)
    return user


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: limit("signup"), methods=["POST"])
def signup() -> str | Response:
    """Create an account; the answer is the same whether the address was registered."""
    if viewer() is not None:
        return redirect(url_for("garage.index"))
    form = SignupForm()
    if form.validate_on_submit():
        email = accounts.normalize_email(form.email.data or "")
        verify = settings().verify_email
        try:
            user = accounts.register(session(), form.name.data or "", email,
                                     form.password.data or "", unverified=verify)
        except (InvalidInput, Conflict) as err:
            form.name.errors = [*form.name.errors, str(err)]  # type: ignore[list-item]
        else:
            if user is None:
                taken = accounts.find_user_by_email(session(), email)
                mail.send(email, "Someone tried to sign up with your address", "signup_taken",
                          user=taken, reset_url=mail.link("auth.forgot"))
            else:
                _send_welcome(user, verify)
            session().commit()
            flash(f"We sent a message to {email}. If it created your account, log in now"
                  + (" and follow the link in it to confirm your address." if verify else "."),
                  "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/signup.html", form=form)


def _send_welcome(user: User, verify: bool) -> None:
    verify_url = None
    if verify:
        plain = accounts.create_link(session(), user, LinkPurpose.VERIFY)
        verify_url = mail.link("auth.verify", token=plain)
    mail.send(user.email, "Welcome to Paddock", "welcome", user=user, verify_url=verify_url,
              hours=int(accounts.VERIFY_LINK_TTL.total_seconds() // 3600))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: limit("login"), methods=["POST"])
def login() -> str | Response:
    """Log in with a user name or e-mail and a password."""
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(session(), form.login.data or "", form.password.data or "")
        if user is not None:
            security.sign_in(user)
            return redirect(_safe_next(request.args.get("next")))
        form.form_errors.append("unknown user name or wrong password")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Log out (a POST with the form's CSRF token, so no link can log anyone out)."""
    logout_user()
    security.forget_session()
    flash("You are logged out.")
    return redirect(url_for("public.home"))


@bp.route("/account")
@login_required
def account() -> str:
    """The account page: the address, a password change, logging out everywhere."""
    return render_template("auth/account.html", user=_me(), password_form=ChangePasswordForm(),
                           confirm_form=ConfirmForm(), verify_on=settings().verify_email)


@bp.route("/account/password", methods=["POST"])
@login_required
@limiter.limit(lambda: limit("login"))
def change_password() -> tuple[str, int] | Response:
    """Change the password (the current one is needed); every other session ends."""
    user = _me()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(session(), user, form.current.data or "",
                                     form.password.data or "")
        except InvalidInput as err:
            form.current.errors = [*form.current.errors, str(err)]  # type: ignore[list-item]
        else:
            session().commit()
            security.keep_session(user)
            flash("Your password is changed; you were logged out everywhere else.", "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/account.html", user=user, password_form=form,
                           confirm_form=ConfirmForm(), verify_on=settings().verify_email), 400


@bp.route("/account/logout-everywhere", methods=["POST"])
@login_required
def logout_everywhere() -> Response:
    """End every session of the account, this one included."""
    user = _me()
    if ConfirmForm().validate_on_submit():
        accounts.end_sessions(user)
        session().commit()
        logout_user()
        security.forget_session()
        flash("You are logged out everywhere.", "success")
    return redirect(url_for("public.home"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(lambda: limit("signup"), methods=["POST"])
def forgot() -> str | Response:
    """Ask for a password reset link; the answer is the same for any address."""
    form = ForgotForm()
    if form.validate_on_submit():
        email = accounts.normalize_email(form.email.data or "")
        user = accounts.find_user_by_email(session(), email)
        if user is not None:
            plain = accounts.create_link(session(), user, LinkPurpose.RESET)
            mail.send(user.email, "Set a new Paddock password", "reset", user=user,
                      reset_url=mail.link("auth.reset", token=plain),
                      minutes=int(accounts.RESET_LINK_TTL.total_seconds() // 60))
            session().commit()
        flash(f"If an account uses {email}, we sent it a link to set a new password. The link "
              "works once, within an hour.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: limit("login"), methods=["POST"])
def reset(token: str) -> tuple[str, int, dict[str, str]] | Response:
    """Set a new password through a mailed link; it works once and every session ends."""
    headers = {"Cache-Control": "no-store"}  # the link's secret is in this page's address
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = accounts.reset_password(session(), token, form.password.data or "")
        except InvalidInput as err:
            form.form_errors.append(str(err))
        else:
            session().commit()
            flash(f"Your password is set, {user.name}: log in with it.", "success")
            return redirect(url_for("auth.login"))
        return render_template("auth/reset.html", form=form, name=None), 400, headers
    link = accounts.find_link(session(), token, LinkPurpose.RESET)
    if link is None:
        return render_template("auth/link_invalid.html", what="reset"), 404, headers
    status = 400 if form.is_submitted() else 200
    return render_template("auth/reset.html", form=form, name=link.user.name), status, headers


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str) -> tuple[str, int, dict[str, str]] | Response:
    """Confirm an e-mail address (a button, so a mail scanner's visit confirms nothing)."""
    headers = {"Cache-Control": "no-store"}
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            user = accounts.verify_email(session(), token)
        except InvalidInput:
            pass
        else:
            session().commit()
            flash(f"Thank you, {user.name}: your address is confirmed.", "success")
            return redirect(url_for("garage.index"))
    elif accounts.find_link(session(), token, LinkPurpose.VERIFY) is not None:
        return render_template("auth/verify.html", form=form), 200, headers
    return render_template("auth/link_invalid.html", what="verify"), 404, headers


@bp.route("/account/verify", methods=["POST"])
@login_required
@limiter.limit(lambda: limit("signup"))
def resend_verification() -> Response:
    """Mail a new verification link to the signed-in user."""
    user = _me()
    if ConfirmForm().validate_on_submit() and user.email_verified_at is None:
        _send_welcome(user, verify=True)
        session().commit()
        flash(f"We sent a new link to {user.email}.", "success")
    return redirect(url_for("auth.account"))
