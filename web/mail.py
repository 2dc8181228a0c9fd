"""The site's mail: through SMTP (flask-mailman) when ``PADDOCK_SMTP_URL`` is set, else
written to the log and kept in the admins' outbox (:mod:`league.rules.outbox`).

A mail is the text template ``templates/mail/<name>.txt``. Its links are built on
``PADDOCK_SITE_URL`` when set, so a forged ``Host`` header cannot point a reset link at
another site; without it, on the request's own address.

Sending happens inside the request: the outbox row joins the request's transaction, and an
SMTP failure is logged (with the recipient) and reported to the caller as ``False``, never
shown to the visitor, whose answer must not depend on whether an address is registered.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from typing import Any

from flask import Flask, render_template, request, url_for
from flask_mailman import EmailMessage, Mail
from flask_mailman.backends.base import BaseEmailBackend

from league.config import Settings
from league.rules import outbox
from web.helpers import session, settings

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 10  # connecting and each command; a stuck server must not hang a request

mail = Mail()


def init_app(app: Flask, league_settings: Settings) -> None:
    """Configure flask-mailman from the league's settings (``MAIL_*`` keys of ``app.config``
    set by the caller win, e.g. ``MAIL_BACKEND`` in tests)."""
    smtp = league_settings.smtp
    config: dict[str, Any] = {"MAIL_DEFAULT_SENDER": league_settings.mail_from,
                              "MAIL_TIMEOUT": SMTP_TIMEOUT_S}
    if smtp is None:
        config["MAIL_BACKEND"] = OutboxBackend
    else:
        config.update(MAIL_BACKEND="smtp", MAIL_SERVER=smtp.host, MAIL_PORT=smtp.port,
                      MAIL_USERNAME=smtp.username or None, MAIL_PASSWORD=smtp.password or None,
                      MAIL_USE_TLS=smtp.security == "starttls",
                      MAIL_USE_SSL=smtp.security == "tls")
    for key, value in config.items():
        app.config.setdefault(key, value)
    mail.init_app(app)


class OutboxBackend(BaseEmailBackend):  # type: ignore[misc]
    """flask-mailman's backend without a server: each mail goes to the log and the outbox."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            recipients = ", ".join(message.recipients())
            log.info("mail (no PADDOCK_SMTP_URL: kept in the outbox) to %s: %s\n%s",
                     recipients, message.subject, message.body)
            outbox.keep(session(), recipients, str(message.subject), str(message.body))
        return len(email_messages)


def link(endpoint: str, **values: Any) -> str:
    """The absolute URL of ``endpoint`` for a mail (see the module docstring)."""
    base = settings().site_url or request.host_url.rstrip("/")
    return base + url_for(endpoint, **values)


def send(to: str, subject: str, template: str, **context: Any) -> bool:
    """Send the mail ``template`` to ``to``; False (and an error in the log) when the SMTP
    server refused it or could not be reached."""
    body = render_template(f"mail/{template}.txt", **context)
    message = EmailMessage(subject=subject, body=body, to=[to])
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as err:
        log.error("could not send the %r mail to %s: %s", template, to, err)
        return False
    return True

