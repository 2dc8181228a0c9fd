"""Races: what organizers schedule and change, and looking a race and its entries up.

A race's evaluator settings are :class:`evaluator.race_settings.RaceConfig`'s; the league adds
its window, its season and divisions, submission limits and the head-to-head schedule.
Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from evaluator.conditions import DEFAULT_PRESET
from evaluator.errors import PaddockError
from evaluator.race_settings import MAX_TRIALS, RaceConfig
from evaluator.track_library import load_track
from league.errors import Conflict, InvalidInput, NotFound
from league.models import (
    AuditAction,
    Division,
    Entry,
    League,
    Race,
    RaceStatus,
    Season,
    User,
    utcnow,
)
from league.rules import audit
from league.rules.leaderboard import EntryStatus, entry_status
from league.rules.leagues import can_view, require_manager
from league.rules.text import clean_name

RACE_FIELDS = ("track", "format", "laps", "trials", "ranking", "off_track_penalty",
               "collision_penalty", "time_cap", "min_laps", "seed", "obstacles", "conditions")
# Bounds of the optional race settings (what a scheduler, a worker and the database can hold).
OPTIONAL_RACE_RANGES = {
    "max_entries_per_day": (0, 100_000), "max_entries_total": (0, 100_000),
    "round_interval_s": (0, 30 * 24 * 3600),  # at most a month between rating rounds
    "heats_per_round": (1, MAX_TRIALS),  # a heat job races this many seat-swapped pairs
    "knockout_size": (0, 16),
}
KNOCKOUT_SIZES = (0, 2, 4, 8, 16)
TRACK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # library and imported track names
OPTIONAL_RACE_FIELDS = ("max_entries_per_day", "max_entries_total", "round_interval_s",
                        "heats_per_round", "knockout_size")
LIMIT_FIELDS = ("max_entries_per_day", "max_entries_total")  #: None: no limit
# Race columns whose change would rank entries evaluated before and after under other rules.
RESULT_COLUMNS = (*RACE_FIELDS, "track_digest", "heats_per_round")


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
    settings = {"conditions": DEFAULT_PRESET, **settings}  # new races: standard conditions
    values = _race_values(league, name, opens_at, closes_at, season, divisions, settings)
    race = Race(league_id=league.id, status=RaceStatus.SCHEDULED, **values)
    race.divisions = list(divisions)
    session.add(race)
    session.flush()
    audit.record(session, league, user, AuditAction.RACE_CREATED, race_words(race),
                 settings=race.config())
    return race


def race_words(race: Race) -> str:
    """A race in the audit log's words: "race 12 (Sunday Sprint)"."""
    return f"race {race.id} ({race.name})"


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
    was = {k: [_plain(getattr(race, k)), _plain(values[k])] for k in changed}
    for key in changed:
        setattr(race, key, values[key])
    if {d.id for d in race.divisions} != {d.id for d in divisions}:
        was["divisions"] = [sorted(d.name for d in race.divisions),
                            sorted(d.name for d in divisions)]
        race.divisions = list(divisions)
        changed.append("divisions")
    if changed:
        audit.record(session, race.league, user, AuditAction.RACE_CHANGED, race_words(race),
                     changed=was)
    if race.status == RaceStatus.OPEN and race.opens_at > (now or utcnow()):
        race.status = RaceStatus.SCHEDULED
    session.flush()
    return changed


def _plain(value: Any) -> Any:
    """A race column's value as JSON holds it (times as ISO 8601)."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


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
                conditions=cfg.conditions.to_dict(), opens_at=opens_at, closes_at=closes_at,
                **extra)


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
    """A race made by :func:`create_race`, its season and divisions by id."""
    require_manager(session, league, user)
    season = None if season_id is None else league_season(session, league, season_id)
    divisions = league_divisions(session, league, division_ids)
    return create_race(session, league, user, name, opens_at, closes_at,
                               season=season, divisions=divisions, **settings)
