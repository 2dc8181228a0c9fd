"""The racer's notifications page: which events they hear about, by e-mail or webhook, the
webhook's URL and signing secret, and how the latest deliveries went.

Saving checks the webhook URL (:func:`league.rules.notifications.save_settings`); nothing is
sent from here: the scheduler delivers (:mod:`league.processes.notify`).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import URLField
from wtforms.validators import Length

from league.errors import InvalidInput
from league.models import NotificationChannel, NotificationSettings, User
from league.rules import notifications
from web.helpers import session, settings, viewer

bp = Blueprint("notifications", __name__)


class NotificationsForm(FlaskForm):
    """The webhook URL; the event and channel boxes are read from the request by name."""

    webhook_url = URLField("Webhook URL", validators=[Length(max=notifications.URL_CHARS)],
                           description="Where webhooks go: a Discord or Slack incoming "
                                       "webhook, or your own https:// address.")


class SecretForm(FlaskForm):
    """A button with a CSRF token: a new webhook secret."""


def _me() -> User:
    user = viewer()
    if user is None:  # login_required ran first; this only narrows the type
        abort(401)
    return user


def _page(user: User, found: NotificationSettings | None, form: NotificationsForm,
          chosen: dict[str, list[str]]) -> str:
    return render_template("auth/notifications.html", form=form, secret_form=SecretForm(),
                           found=found, chosen=chosen, events=notifications.EVENT_LABELS,
                           channels=list(NotificationChannel),
                           latest=notifications.latest(session(), user))


@bp.route("/account/notifications")
@login_required
def page() -> str:
    """What the racer hears about and how."""
    user = _me()
    found = session().get(NotificationSettings, user.id)
    form = NotificationsForm(webhook_url=found.webhook_url if found else "")
    return _page(user, found, form, found.subscriptions if found else {})


@bp.route("/account/notifications", methods=["POST"])
@login_required
def save() -> tuple[str, int] | Response:
    """Keep the chosen events and channels and the webhook URL, or show why not."""
    user = _me()
    form = NotificationsForm()
    chosen = {str(e): request.form.getlist(str(e)) for e in notifications.EVENT_LABELS}
    if form.validate_on_submit():
        try:
            notifications.save_settings(session(), user, chosen, form.webhook_url.data or "",
                                        settings().webhooks_allow_private)
        except InvalidInput as err:
            session().rollback()
            form.webhook_url.errors = [*form.webhook_url.errors, str(err)]  # type: ignore[list-item]
        else:
            session().commit()
            flash("Your notification settings are saved.", "success")
            return redirect(url_for("notifications.page"))
    return _page(user, session().get(NotificationSettings, user.id), form, chosen), 400


@bp.route("/account/notifications/secret", methods=["POST"])
@login_required
def new_secret() -> Response:
    """Give the webhook a new signing secret."""
    if SecretForm().validate_on_submit():
        notifications.new_secret(session(), _me())
        session().commit()
        flash("Your webhook has a new secret: update your receiver.", "success")
    return redirect(url_for("notifications.page"))
