"""Leagues, divisions, seasons, memberships and races: what organizers create and manage.

Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator.errors import PaddockError
from evaluator.results import RaceConfig
from evaluator.track import load_track
from league.errors import Conflict, Forbidden, InvalidInput, NotFound
from league.models import (
    DEFAULT_POINTS,
    Division,
    League,
    MemberRole,
    Membership,
    Race,
    RaceStatus,
    Role,
    Season,
    User,
    Visibility,
)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
INVITE_BYTES = 12
RACE_FIELDS = ("track", "format", "laps", "trials", "ranking", "off_track_penalty",
               "collision_penalty", "time_cap", "min_laps", "seed", "obstacles")
OPTIONAL_RACE_FIELDS = ("max_entries_per_day", "max_entries_total", "round_interval_s",
                        "heats_per_round", "knockout_size")


def _invite_code() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


def create_league(session: Session, creator: User, slug: str, name: str,
                  description: str = "", visibility: Visibility | str = Visibility.PUBLIC,
                  divisions: Sequence[str] = ("Division 1",)) -> League:
    """A league with its first divisions (tier order as given); the creator organizes it."""
    if creator.role not in (Role.ORGANIZER, Role.ADMIN):
        raise Forbidden("only organizers can create leagues")
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise InvalidInput("a slug is 3-64 lowercase letters, digits and '-'")
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise InvalidInput("a league name has 1 to 120 characters")
    try:
        visibility = Visibility(visibility)
    except ValueError as err:
        raise InvalidInput("visibility must be public, unlisted or private") from err
    if session.scalar(sa.select(League.id).where(League.slug == slug)) is not None:
        raise Conflict(f"the slug {slug!r} is taken")
    league = League(slug=slug, name=name, description=description.strip(),
                    visibility=visibility, invite_code=_invite_code(), created_by_id=creator.id)
    session.add(league)
    session.flush()
    for tier, div in enumerate(divisions, start=1):
        session.add(Division(league_id=league.id, name=div, tier=tier))
    session.add(Membership(league_id=league.id, user_id=creator.id,
                           role=MemberRole.ORGANIZER))
    session.flush()
    return league


def get_league(session: Session, slug: str, viewer: User | None = None) -> League:
    """A league by slug, if ``viewer`` may see it (private leagues: members and admins)."""
    league = session.scalar(sa.select(League).where(League.slug == slug))
    if league is None or not can_view(session, league, viewer):
        raise NotFound(f"no league {slug!r}")
    return league


def membership(session: Session, league: League, user: User | None) -> Membership | None:
    """``user``'s membership of ``league``, if any."""
    if user is None:
        return None
    return session.scalar(sa.select(Membership).where(Membership.league_id == league.id,
                                                      Membership.user_id == user.id))


def can_view(session: Session, league: League, user: User | None) -> bool:
    """Public and unlisted leagues are visible to all; private ones to members and admins."""
    if league.visibility != Visibility.PRIVATE:
        return True
    if user is not None and user.role == Role.ADMIN:
        return True
    return membership(session, league, user) is not None


def can_manage(session: Session, league: League, user: User | None) -> bool:
    """Organizers of the league and admins manage it."""
    if user is None:
        return False
    if user.role == Role.ADMIN:
        return True
    m = membership(session, league, user)
    return m is not None and m.role == MemberRole.ORGANIZER


def require_manager(session: Session, league: League, user: User | None) -> None:
    """Raise :class:`Forbidden` unless ``user`` manages ``league``."""
    if not can_manage(session, league, user):
        raise Forbidden("only this league's organizers can do that")


def join_league(session: Session, league: League, user: User,
                invite_code: str | None = None) -> Membership:
    """Join a league (a private one needs its current invite code); new racers start in the
    lowest division."""
    existing = membership(session, league, user)
    if existing is not None:
        return existing
    if league.visibility == Visibility.PRIVATE and not (
            invite_code and secrets.compare_digest(invite_code, league.invite_code)):
        raise Forbidden("this league is private: joining needs its invite link")
    bottom = session.scalar(sa.select(Division).where(Division.league_id == league.id)
                            .order_by(Division.tier.desc()).limit(1))
    m = Membership(league_id=league.id, user_id=user.id,
                   division_id=bottom.id if bottom else None)
    session.add(m)
    session.flush()
    return m


def reset_invite_code(session: Session, league: League, user: User) -> str:
    """A new invite code; links with the old one stop working."""
    require_manager(session, league, user)
    league.invite_code = _invite_code()
    return league.invite_code


def add_division(session: Session, league: League, user: User, name: str) -> Division:
    """Add a division below the existing ones."""
    require_manager(session, league, user)
    lowest = session.scalar(sa.select(sa.func.max(Division.tier))
                            .where(Division.league_id == league.id)) or 0
    div = Division(league_id=league.id, name=name.strip() or f"Division {lowest + 1}",
                   tier=lowest + 1)
    session.add(div)
    session.flush()
    return div


def create_season(session: Session, league: League, user: User, name: str,
                  starts_at: dt.datetime, ends_at: dt.datetime,
                  points_table: Sequence[int] | None = None, promote: int = 2,
                  relegate: int = 2, movement_in_percent: bool = False) -> Season:
    """A season; ``promote``/``relegate`` are racers per division (or percent)."""
    require_manager(session, league, user)
    if ends_at <= starts_at:
        raise InvalidInput("a season must end after it starts")
    table = list(DEFAULT_POINTS if points_table is None else points_table)
    if not table or any(not isinstance(p, int) or p < 0 for p in table) or \
            table != sorted(table, reverse=True):
        raise InvalidInput("a points table is a non-empty list of whole numbers >= 0, "
                           "highest first")
    limit = 100 if movement_in_percent else 1000
    for label, value in (("promote", promote), ("relegate", relegate)):
        if not 0 <= value <= limit:
            raise InvalidInput(f"{label} must be 0 to {limit}")
    season = Season(league_id=league.id, name=name.strip() or "Season", starts_at=starts_at,
                    ends_at=ends_at, points_table=table, promote=promote, relegate=relegate,
                    movement_in_percent=movement_in_percent)
    session.add(season)
    session.flush()
    return season


def race_config(race: Race) -> RaceConfig:
    """The evaluator settings of a race."""
    return RaceConfig(**race.config())


def create_race(session: Session, league: League, user: User, name: str,
                opens_at: dt.datetime, closes_at: dt.datetime, *,
                season: Season | None = None, divisions: Sequence[Division] = (),
                **settings: Any) -> Race:
    """A race with evaluator settings (``RaceConfig`` names) and its submission window.

    The track is resolved now and its geometry digest recorded: a worker refuses to race on a
    track whose geometry has changed since.
    """
    require_manager(session, league, user)
    if closes_at <= opens_at:
        raise InvalidInput("a race must close after it opens")
    unknown = set(settings) - set(RACE_FIELDS) - set(OPTIONAL_RACE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown race settings: {', '.join(sorted(unknown))}")
    config = {k: settings[k] for k in RACE_FIELDS if k in settings}
    if any(ch in str(config.get("track", "")) for ch in "/\\") or \
            str(config.get("track", "")).endswith((".npy", ".csv")):
        raise InvalidInput("a race's track is a library or imported track name, not a path")
    try:
        cfg = RaceConfig(**config)
        track = load_track(cfg.track)
    except PaddockError as err:
        raise InvalidInput(str(err)) from err
    if season is not None and season.league_id != league.id:
        raise InvalidInput("that season belongs to another league")
    for div in divisions:
        if div.league_id != league.id:
            raise InvalidInput("that division belongs to another league")
    extra = {k: settings[k] for k in OPTIONAL_RACE_FIELDS if settings.get(k) is not None}
    for k, v in extra.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidInput(f"{k} must be a whole number >= 0")
    race = Race(league_id=league.id, season_id=season.id if season else None,
                name=name.strip() or track.name, track=track.name, track_digest=track.digest,
                format=cfg.format, laps=cfg.laps, min_laps=cfg.min_laps, ranking=cfg.ranking,
                off_track_penalty=cfg.off_track_penalty,
                collision_penalty=cfg.collision_penalty, trials=cfg.trials,
                time_cap=cfg.time_cap, seed=cfg.seed, obstacles=cfg.obstacles,
                opens_at=opens_at, closes_at=closes_at, status=RaceStatus.SCHEDULED, **extra)
    race.divisions = list(divisions)
    session.add(race)
    session.flush()
    return race


def get_race(session: Session, race_id: int, viewer: User | None = None) -> Race:
    """A race by id, if ``viewer`` may see its league."""
    race = session.get(Race, race_id)
    if race is None or not can_view(session, race.league, viewer):
        raise NotFound(f"no race {race_id}")
    return race
