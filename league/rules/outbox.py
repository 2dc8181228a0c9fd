"""The outbox: mail the site would have sent, kept for the admins when no SMTP server is set
(a laptop, the demo). Admins read it to pass a reset or verification link on by hand.

Mail older than :data:`OUTBOX_KEEP` is deleted whenever a new one is kept. Functions take a
session and never commit.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import OutboxMail, utcnow

OUTBOX_KEEP = dt.timedelta(days=30)
SUBJECT_CHARS = 200  # OutboxMail.subject's length
OUTBOX_PAGE = 100  # mails the outbox page shows


def keep(session: Session, recipient: str, subject: str, body: str,
         now: dt.datetime | None = None) -> OutboxMail:
    """Keep one mail in the outbox (and forget those older than :data:`OUTBOX_KEEP`)."""
    now = now or utcnow()
    session.execute(sa.delete(OutboxMail).where(OutboxMail.created_at < now - OUTBOX_KEEP)
                    .execution_options(synchronize_session=False))
    mail = OutboxMail(recipient=recipient[:254], subject=subject[:SUBJECT_CHARS], body=body,
                      created_at=now)
    session.add(mail)
    session.flush()
    return mail


def latest(session: Session, limit: int = OUTBOX_PAGE) -> list[OutboxMail]:
    """The newest mails of the outbox, newest first."""
    return list(session.scalars(sa.select(OutboxMail)
                                .order_by(OutboxMail.created_at.desc(), OutboxMail.id.desc())
                                .limit(limit)))
