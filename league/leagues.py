"""Leagues, divisions, seasons, memberships and races: what organizers create and manage.

Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from evaluator.errors import PaddockError
from evaluator.results import MAX_TRIALS, RaceConfig
from evaluator.track import load_track
from league.errors import Conflict, Forbidden, InvalidInput, NotFound
from league.leaderboard import EntryStatus, entry_status
from league.models import (
    DEFAULT_POINTS,
    Division,
    Entry,
    League,
    MemberRole,
    Membership,
    Race,
    RaceStatus,
    Role,
    Season,
    User,
    Visibility,
    utcnow,
)
from league.text import clean_description, clean_name

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
INVITE_BYTES = 12
RACE_FIELDS = ("track", "format", "laps", "trials", "ranking", "off_track_penalty",
               "collision_penalty", "time_cap", "min_laps", "seed", "obstacles")
# Bounds of the optional race settings (what a scheduler, a worker and the database can hold).
OPTIONAL_RACE_RANGES = {
    "max_entries_per_day": (0, 100_000), "max_entries_total": (0, 100_000),
    "round_interval_s": (0, 30 * 24 * 3600),  # at most a month between rating rounds
    "heats_per_round": (1, MAX_TRIALS),  # a heat job races this many seat-swapped pairs
    "knockout_size": (0, 16),
}
KNOCKOUT_SIZES = (0, 2, 4, 8, 16)
TRACK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # library and imported track names
MAX_DIVISIONS = 20
MAX_POINTS = 1_000_000  # season points for one place
MAX_POINTS_PLACES = 1000
OPTIONAL_RACE_FIELDS = ("max_entries_per_day", "max_entries_total", "round_interval_s",
                        "heats_per_round", "knockout_size")
LIMIT_FIELDS = ("max_entries_per_day", "max_entries_total")  #: None: no limit
# Race columns whose change would rank entries evaluated before and after under other rules.
RESULT_COLUMNS = (*RACE_FIELDS, "track_digest", "heats_per_round")


def _invite_code() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


def _code_matches(league: League, code: str | None) -> bool:
    """Whether ``code`` is the league's current invite code (compared in constant time)."""
    return bool(code) and secrets.compare_digest(str(code).encode(),
                                                 league.invite_code.encode())


def slug_from_name(name: str) -> str:
    """A slug suggested for a league name: its ASCII letters and digits joined by '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")
    return slug if len(slug) >= 3 else f"{slug}-league".lstrip("-")


def create_league(session: Session, creator: User, slug: str, name: str,
                  description: str = "", visibility: Visibility | str = Visibility.PUBLIC,
                  divisions: Sequence[str] = ("Division 1",)) -> League:
    """A league with its first divisions (tier order as given); the creator organizes it."""
    if creator.role not in (Role.ORGANIZER, Role.ADMIN):
        raise Forbidden("only organizers can create leagues")
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise InvalidInput("a slug is 3-64 lowercase letters, digits and '-'")
    name = clean_name(name, "a league name", 120)
    description = clean_description(description)
    divisions = [clean_name(d, "a division name", 80) for d in divisions]
    if not 1 <= len(divisions) <= MAX_DIVISIONS:
        raise InvalidInput(f"a league has 1 to {MAX_DIVISIONS} divisions")
    try:
        visibility = Visibility(visibility)
    except ValueError as err:
        raise InvalidInput("visibility must be public, unlisted or private") from err
    if session.scalar(sa.select(League.id).where(League.slug == slug)) is not None:
        raise Conflict(f"the slug {slug!r} is taken")
    league = League(slug=slug, name=name, description=description,
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
    if league.visibility == Visibility.PRIVATE and not _code_matches(league, invite_code):
        raise Forbidden("this league is private: joining needs its invite link")
    bottom = session.scalar(sa.select(Division).where(Division.league_id == league.id)
                            .order_by(Division.tier.desc()).limit(1))
    m = Membership(league_id=league.id, user_id=user.id,
                   division_id=bottom.id if bottom else None)
    session.add(m)
    session.flush()
    return m


def get_league_to_join(session: Session, slug: str, viewer: User | None,
                       invite_code: str | None = None) -> League:
    """A league ``viewer`` may see, or a private one whose current invite code they hold."""
    league = session.scalar(sa.select(League).where(League.slug == slug))
    if league is None or not (can_view(session, league, viewer)
                              or _code_matches(league, invite_code)):
        raise NotFound("no such league, or the invite link is out of date: ask the league's "
                       "organizers for the current one")
    return league


def update_league(session: Session, league: League, user: User, name: str,
                  description: str, visibility: Visibility | str) -> None:
    """Change a league's name, description and visibility (its slug stays: links keep
    working)."""
    require_manager(session, league, user)
    name = clean_name(name, "a league name", 120)
    description = clean_description(description)
    try:
        visibility = Visibility(visibility)
    except ValueError as err:
        raise InvalidInput("visibility must be public, unlisted or private") from err
    league.name, league.description, league.visibility = name, description, visibility


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
    if lowest >= MAX_DIVISIONS:
        raise InvalidInput(f"a league has at most {MAX_DIVISIONS} divisions")
    name = clean_name(name, "a division name", 80, required=False)
    div = Division(league_id=league.id, name=name or f"Division {lowest + 1}",
                   tier=lowest + 1)
    session.add(div)
    session.flush()
    return div


def get_division(session: Session, league: League, division_id: int) -> Division:
    """A division of ``league`` by id."""
    div = session.get(Division, division_id)
    if div is None or div.league_id != league.id:
        raise NotFound(f"no division {division_id} in this league")
    return div


def rename_division(session: Session, division: Division, user: User, name: str) -> None:
    """Rename a division (its tier stays)."""
    require_manager(session, division.league, user)
    division.name = clean_name(name, "a division name", 80)


def create_season(session: Session, league: League, user: User, name: str,
                  starts_at: dt.datetime, ends_at: dt.datetime,
                  points_table: Sequence[int] | None = None, promote: int = 2,
                  relegate: int = 2, movement_in_percent: bool = False) -> Season:
    """A season; ``promote``/``relegate`` are racers per division (or percent)."""
    require_manager(session, league, user)
    if ends_at <= starts_at:
        raise InvalidInput("a season must end after it starts")
    table = list(DEFAULT_POINTS if points_table is None else points_table)
    if not 1 <= len(table) <= MAX_POINTS_PLACES or \
            any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= MAX_POINTS
                for p in table) or table != sorted(table, reverse=True):
        raise InvalidInput(f"a points table is a list of 1 to {MAX_POINTS_PLACES} whole "
                           f"numbers from 0 to {MAX_POINTS}, highest first")
    limit = 100 if movement_in_percent else 1000
    for label, value in (("promote", promote), ("relegate", relegate)):
        if not 0 <= value <= limit:
            raise InvalidInput(f"{label} must be 0 to {limit}")
    name = clean_name(name, "a season name", 80, required=False)
    season = Season(league_id=league.id, name=name or "Season", starts_at=starts_at,
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
    values = _race_values(league, name, opens_at, closes_at, season, divisions, settings)
    race = Race(league_id=league.id, status=RaceStatus.SCHEDULED, **values)
    race.divisions = list(divisions)
    session.add(race)
    session.flush()
    return race


def update_race(session: Session, race: Race, user: User, name: str,
                opens_at: dt.datetime, closes_at: dt.datetime, *,
                season: Season | None = None, divisions: Sequence[Division] = (),
                now: dt.datetime | None = None, **settings: Any) -> list[str]:
    """Change a race that is not closed yet; returns the names of the settings changed.

    The name, the window, the season, the divisions, the submission limits and the
    head-to-head schedule (round interval, knockout size) may change until the race closes.
    Settings that change results (:data:`RESULT_COLUMNS`) may change only while the race has
    no entry, so that every entry is ranked under the same rules. Settings left out keep
    their value. An open race whose opening moves into the future is scheduled again.
    """
    require_manager(session, race.league, user)
    if race.status == RaceStatus.CLOSED:
        raise Conflict("a closed race can no longer change")
    current = {k: getattr(race, k) for k in OPTIONAL_RACE_FIELDS}
    merged = {**race.config(), **current, **settings}
    values = _race_values(race.league, name, opens_at, closes_at, season, divisions, merged)
    changed = [k for k, v in values.items() if getattr(race, k) != v]
    has_entries = entry_count(session, race) > 0
    if has_entries and "track" not in changed and "track_digest" in changed:
        changed.remove("track_digest")  # the track file changed: entries keep their geometry
    frozen = [k for k in changed if k in RESULT_COLUMNS and k != "track_digest"]
    if frozen and has_entries:
        raise Conflict("this race has entries, so the settings that change results "
                       f"({', '.join(frozen)}) can no longer change")
    for key in changed:
        setattr(race, key, values[key])
    if {d.id for d in race.divisions} != {d.id for d in divisions}:
        race.divisions = list(divisions)
        changed.append("divisions")
    if race.status == RaceStatus.OPEN and race.opens_at > (now or utcnow()):
        race.status = RaceStatus.SCHEDULED
    session.flush()
    return changed


def _race_values(league: League, name: str, opens_at: dt.datetime, closes_at: dt.datetime,
                 season: Season | None, divisions: Sequence[Division],
                 settings: dict[str, Any]) -> dict[str, Any]:
    """Validate a race's settings; returns them as ``Race`` column values."""
    name = clean_name(name, "a race name", 120, required=False)
    if closes_at <= opens_at:
        raise InvalidInput("a race must close after it opens")
    unknown = set(settings) - set(RACE_FIELDS) - set(OPTIONAL_RACE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown race settings: {', '.join(sorted(unknown))}")
    config = {k: settings[k] for k in RACE_FIELDS if k in settings}
    if not TRACK_NAME_RE.match(str(config.get("track", ""))):
        raise InvalidInput("a race's track is a library or imported track name (lowercase "
                           "letters, digits, '-' and '_'), not a path")
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
    # Limits given as None mean "no limit"; other optional settings left as None keep defaults.
    extra = {k: settings[k] for k in OPTIONAL_RACE_FIELDS
             if settings.get(k) is not None or (k in LIMIT_FIELDS and k in settings)}
    for k, v in extra.items():
        low, high = OPTIONAL_RACE_RANGES[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                              or not low <= v <= high):
            raise InvalidInput(f"{k} must be a whole number from {low} to {high}")
    if extra.get("knockout_size", 0) not in KNOCKOUT_SIZES:
        raise InvalidInput("knockout_size must be 0 (no knockout), 2, 4, 8 or 16")
    return dict(season_id=season.id if season else None, name=name or track.name,
                track=track.name, track_digest=track.digest, format=cfg.format, laps=cfg.laps,
                min_laps=cfg.min_laps, ranking=cfg.ranking,
                off_track_penalty=cfg.off_track_penalty,
                collision_penalty=cfg.collision_penalty, trials=cfg.trials,
                time_cap=cfg.time_cap, seed=cfg.seed, obstacles=cfg.obstacles,
                opens_at=opens_at, closes_at=closes_at, **extra)


def get_race(session: Session, race_id: int, viewer: User | None = None) -> Race:
    """A race by id, if ``viewer`` may see its league."""
    race = session.get(Race, race_id)
    if race is None or not can_view(session, race.league, viewer):
        raise NotFound(f"no race {race_id}")
    return race


def race_entries(session: Session, race: Race, *, offset: int = 0,
                 limit: int | None = None) -> tuple[list[tuple[Entry, EntryStatus]], int]:
    """One page of a race's entries, newest first, each with where its evaluation stands,
    and how many entries there are (for organizers: disqualified ones included)."""
    total = entry_count(session, race)
    stmt = (sa.select(Entry).where(Entry.race_id == race.id)
            .options(selectinload(Entry.racer), selectinload(Entry.model))
            .order_by(Entry.submitted_at.desc(), Entry.id.desc()).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(e, entry_status(session, e)) for e in session.scalars(stmt)], total


def entry_count(session: Session, race: Race) -> int:
    """How many entries ``race`` has (disqualified ones included)."""
    return session.scalar(sa.select(sa.func.count(Entry.id))
                          .where(Entry.race_id == race.id)) or 0
