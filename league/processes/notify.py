"""Delivering queued notifications (:mod:`league.rules.notifications`): the scheduler's
``deliver-notifications`` step, never a web request.

Each delivery is read in one transaction, attempted outside any (a slow webhook holds no
database lock), and its outcome kept in another. One scheduler runs per database, so no
delivery is attempted twice at once.

**Webhooks.** A POST of JSON: ``content`` (what Discord shows) and ``text`` (what Slack
shows), both the notification's sentence, plus ``event``, ``race``, ``league``, ``url`` and
the event's own fields, and ``sent_at``. Headers: ``X-Paddock-Event``,
``X-Paddock-Timestamp`` (``sent_at``, also in the body) and ``X-Paddock-Signature:
sha256=<hex>``, the HMAC-SHA256 of the exact body bytes under the user's webhook secret.
Any 2xx answer counts as delivered; anything else, or no answer within
:data:`WEBHOOK_TIMEOUT_S`, is retried with backoff. The host is resolved and every address
checked before each attempt, and the connection goes to a checked address (a name that
resolves elsewhere a moment later cannot turn it to a private one); an address refused
fails the delivery for good. Redirects are not followed.

**E-mail.** Through ``PADDOCK_SMTP_URL`` when set; otherwise written to the log and kept
in the admins' outbox, like the site's other mail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from league.config import Settings
from league.db import transaction
from league.models import DeliveryStatus, NotificationChannel, utcnow
from league.rules import notifications, outbox
from league.rules.notifications import Due, Resolver, WebhookRefused

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_S = 5.0  #: connecting and the answer, each
SMTP_TIMEOUT_S = 10.0
USER_AGENT = "Paddock-Webhook/1"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Paddock-Signature`` header of ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(payload: dict[str, Any], site_url: str, sent_at: dt.datetime) -> bytes:
    """The JSON a webhook receives (see the module docstring)."""
    sentence = notifications.message(payload)
    fields = {k: v for k, v in payload.items() if k != "path"}
    body = {"content": sentence, "text": sentence, **fields,
            "url": site_url + str(payload.get("path", "")),
            "sent_at": sent_at.replace(microsecond=0).isoformat() + "Z"}
    return json.dumps(body, sort_keys=True).encode()


def post_webhook(due: Due, settings: Settings, now: dt.datetime,
                 resolve: Resolver | None = None) -> None:
    """POST ``due`` to its webhook; :class:`WebhookRefused` for an address it may not reach,
    ``OSError`` (or ``http.client.HTTPException``) when the receiver fails or refuses."""
    kwargs = {"resolve": resolve} if resolve is not None else {}
    parts, addresses = notifications.check_webhook_url(
        due.webhook_url, settings.webhooks_allow_private, **kwargs)
    body = webhook_body(due.payload, settings.site_url, now)
    host = str(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    conn = _connection(parts.scheme, host, port, addresses)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Paddock-Event": str(due.payload.get("event", "")),
            "X-Paddock-Timestamp": json.loads(body)["sent_at"],
            "X-Paddock-Signature": signature(due.webhook_secret, body)})
        answer = conn.getresponse()
        answer.read(4096)
    finally:
        conn.close()
    if not 200 <= answer.status < 300:
        raise OSError(f"the webhook answered HTTP {answer.status} {answer.reason}")


def _connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of the checked ``addresses`` that answers."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as err:
            error = err
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to checked addresses, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, addresses: list[str]) -> None:
        super().__init__(host, port, timeout=WEBHOOK_TIMEOUT_S)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to checked addresses, the certificate checked against the name."""

    def __init__(self, host: str, port: int, addresses: list[str]) -> None:
        super().__init__(host, port, timeout=WEBHOOK_TIMEOUT_S,
                         context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host)


def _connection(scheme: str, host: str, port: int,
                addresses: list[str]) -> http.client.HTTPConnection:
    return (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(host, port, addresses)


def send_mail(due: Due, settings: Settings) -> None:
    """Mail ``due`` through the SMTP server of ``settings`` (which has one)."""
    smtp = settings.smtp
    assert smtp is not None
    message = EmailMessage()
    message["Subject"] = f"Paddock: {notifications.message(due.payload)}"[:200]
    message["From"] = settings.mail_from
    message["To"] = due.email
    message.set_content(_mail_body(due, settings))
    server_class = smtplib.SMTP_SSL if smtp.security == "tls" else smtplib.SMTP
    with server_class(smtp.host, smtp.port, timeout=SMTP_TIMEOUT_S) as server:
        if smtp.security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if smtp.username:
            server.login(smtp.username, smtp.password)
        server.send_message(message)


def _mail_body(due: Due, settings: Settings) -> str:
    return (f"{notifications.message(due.payload)}\n\n"
            f"{settings.site_url}{due.payload.get('path', '')}\n\n"
            "You chose to be told this on your account's notifications page.\n")


def deliver_due(factory: sessionmaker[Session], settings: Settings,
                now: dt.datetime | None = None, resolve: Resolver | None = None
                ) -> dict[str, int]:
    """Attempt every delivery due at ``now``; how many were sent, retried and given up."""
    now = now or utcnow()
    with transaction(factory) as session:
        batch = notifications.due(session, now)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for due in batch:
        error, final = _attempt(due, settings, now, resolve)
        with transaction(factory) as session:
            if error is None and due.channel == NotificationChannel.EMAIL and \
                    settings.smtp is None:
                _keep_in_outbox(session, due, settings, now)
            kept = notifications.record(session, due.id, error, now, final=final)
            outcome = ("sent" if error is None else
                       "failed" if kept.status == DeliveryStatus.FAILED else "retry")
        counts[outcome] += 1
        if error is not None:
            log.warning("notification %d (%s) attempt %d: %s", due.id, due.channel,
                        due.attempts + 1, error)
    return counts


def _attempt(due: Due, settings: Settings, now: dt.datetime,
             resolve: Resolver | None) -> tuple[str | None, bool]:
    """One attempt: (None, _) when delivered, else (the error, whether it is final)."""
    try:
        if due.channel == NotificationChannel.WEBHOOK:
            if not due.webhook_url:
                return "the user has no webhook URL any more", True
            post_webhook(due, settings, now, resolve)
        elif settings.smtp is not None:
            send_mail(due, settings)
    except WebhookRefused as err:
        return str(err), True
    except (OSError, http.client.HTTPException, smtplib.SMTPException) as err:
        return f"{type(err).__name__}: {err}", False
    return None, False


def _keep_in_outbox(session: Session, due: Due, settings: Settings, now: dt.datetime) -> None:
    subject = f"Paddock: {notifications.message(due.payload)}"
    log.info("mail (no PADDOCK_SMTP_URL: kept in the outbox) to %s: %s", due.email, subject)
    outbox.keep(session, due.email, subject, _mail_body(due, settings), now)
