"""The audit log: what a league's organizers and the site's admins did to it.

Each rule that changes a league on someone's say-so (its settings, its invite code, its
members, divisions, seasons and races, an entry's disqualification or re-run, closing a race by
hand) calls :func:`record` in the same transaction, so an action and its log line are stored
together or not at all. The log is read by the league's organizers and the admins
(:mod:`league.read.audit`), on the organizer pages and through the API; it is never edited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from league.models import AuditAction, AuditEvent, League, User, utcnow

MAX_TARGET_CHARS = 300  #: ``AuditEvent.target``'s column
MAX_REASON_CHARS = 2000  #: a reason longer than this is kept cut


def record(session: Session, league: League | int, actor: User, action: AuditAction,
           target: str, reason: str = "", **details: Any) -> AuditEvent:
    """Log that ``actor`` did ``action`` to ``target`` (in words: "race 12 (Sunday Sprint)")
    in ``league``, with ``reason`` and JSON-serialisable ``details`` (what changed)."""
    event = AuditEvent(league_id=league if isinstance(league, int) else league.id,
                       actor_id=actor.id, actor_name=actor.name, at=utcnow(), action=action,
                       target=target[:MAX_TARGET_CHARS], reason=reason[:MAX_REASON_CHARS],
                       details=details)
    session.add(event)
    return event
