"""Small league functions the JSON API needs: token checks without writes, lookups by id.

Functions take a session and never commit.

Recording a token's last use. A read (GET) must not write in its own transaction, so
:func:`find_token` only reads; :func:`token_use_due` says whether the stored time is older
than :data:`TOKEN_USE_RESOLUTION_S`, and :func:`record_token_use` writes it with a guarded
UPDATE that changes nothing when another request got there first. The web layer runs that
UPDATE in a separate short transaction for reads and in the request's own transaction for
writes, so a token's ``last_used_at`` is at most a minute behind and costs at most one write
a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league import leagues, seasons
from league.accounts import TOKEN_PREFIX
from league.errors import InvalidInput
from league.models import (
    ApiToken,
    Division,
    League,
    Race,
    RacePoints,
    Season,
    User,
    utcnow,
)

TOKEN_USE_RESOLUTION_S = 60  # a token's last use is recorded at most this often
MAX_TOKEN_CHARS = 200


def find_token(session: Session, plain: str) -> ApiToken | None:
    """The token ``plain`` if it exists and is not revoked (nothing is written)."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > MAX_TOKEN_CHARS:
        return None
    digest = hashlib.sha256(plain.encode("utf-8")).hexdigest()
    return session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest,
                                                    ApiToken.revoked_at.is_(None)))


def token_use_due(token: ApiToken, now: dt.datetime) -> bool:
    """Whether ``token``'s recorded last use is missing or older than the resolution."""
    last = token.last_used_at
    return last is None or now - last >= dt.timedelta(seconds=TOKEN_USE_RESOLUTION_S)


def record_token_use(session: Session, token_id: int, now: dt.datetime) -> bool:
    """Set a token's last use to ``now`` unless it was set within the resolution."""
    since = now - dt.timedelta(seconds=TOKEN_USE_RESOLUTION_S)
    done = cast("sa.CursorResult[Any]", session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == token_id,
               sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= since))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)))
    return done.rowcount == 1


def league_season(session: Session, league: League, season_id: int) -> Season:
    """A season of ``league`` by id (:class:`InvalidInput` when it is not one)."""
    season = session.get(Season, season_id)
    if season is None or season.league_id != league.id:
        raise InvalidInput(f"season_id: no season {season_id} in this league")
    return season


def league_divisions(session: Session, league: League,
                     division_ids: Sequence[int]) -> list[Division]:
    """Divisions of ``league`` by id, in the order given (:class:`InvalidInput` otherwise)."""
    found = {d.id: d for d in session.scalars(
        sa.select(Division).where(Division.id.in_(list(division_ids)),
                                  Division.league_id == league.id))}
    missing = [str(i) for i in division_ids if i not in found]
    if missing:
        raise InvalidInput(f"division_ids: no division {', '.join(missing)} in this league")
    return [found[i] for i in dict.fromkeys(division_ids)]


def schedule_race(session: Session, league: League, user: User, name: str,
                  opens_at: dt.datetime, closes_at: dt.datetime, *,
                  season_id: int | None = None, division_ids: Sequence[int] = (),
                  **settings: Any) -> Race:
    """A race created by :func:`league.leagues.create_race`, its season and divisions by id."""
    leagues.require_manager(session, league, user)
    season = None if season_id is None else league_season(session, league, season_id)
    divisions = league_divisions(session, league, division_ids)
    return leagues.create_race(session, league, user, name, opens_at, closes_at,
                               season=season, divisions=divisions, **settings)


def close_race_now(session: Session, race: Race, user: User,
                   now: dt.datetime | None = None) -> list[RacePoints]:
    """An organizer closes a race early (:func:`league.seasons.close_race`; idempotent)."""
    leagues.require_manager(session, race.league, user)
    return seasons.close_race(session, race, now or utcnow())
