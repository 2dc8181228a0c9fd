"""Reading a league's audit log (:mod:`league.rules.audit` writes it): its organizers and the
site's admins read it, newest first."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import AuditEvent, League, User
from league.rules.leagues import require_manager


def league_audit(session: Session, league: League, viewer: User | None, *, offset: int = 0,
                 limit: int | None = None) -> tuple[Sequence[AuditEvent], int]:
    """One page of ``league``'s audit log, newest first, and how many events it holds;
    :class:`~league.errors.Forbidden` unless ``viewer`` manages the league."""
    require_manager(session, league, viewer)
    total = session.scalar(sa.select(sa.func.count(AuditEvent.id))
                           .where(AuditEvent.league_id == league.id)) or 0
    stmt = (sa.select(AuditEvent).where(AuditEvent.league_id == league.id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all(), total
