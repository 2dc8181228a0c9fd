"""What view tests read back: the database as the app left it, and a form's field errors."""

from __future__ import annotations

import re
from html import unescape

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.db import READ_ONLY
from league.models import Race


def fresh(session: Session) -> Session:
    """Start a new read-only transaction on ``session``: it sees what the app committed, and
    on SQLite it does not hold the write lock the app's next POST needs."""
    session.rollback()
    session.connection(execution_options={READ_ONLY: True})
    return session


def commit(session: Session) -> None:
    """Commit what the test made, then only read (:func:`fresh`)."""
    session.commit()
    fresh(session)


def all_races(session: Session) -> list[Race]:
    """Every race in the database, oldest first, as the app left them."""
    return list(fresh(session).scalars(sa.select(Race).order_by(Race.id)))


def field_errors(html: str, field_id: str) -> list[str]:
    """The messages a form page shows in the field block of input ``field_id``."""
    blocks = re.findall(r'<div class="field has-error[^"]*">(.*?)</div>', html, re.S)
    return [unescape(e) for block in blocks if f'id="{field_id}"' in block
            for e in re.findall(r'<p class="error" role="alert">([^<]*)</p>', block)]
