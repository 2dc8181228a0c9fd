"""Races: what organizers schedule and change, and looking a race and its entries up.

A race's evaluator settings are :class:`evaluator.race_settings.RaceConfig`'s; the league adds
its window, its season and divisions, submission limits and the head-to-head schedule.
Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from evaluator.conditions import DEFAULT_PRESET
from evaluator.errors import PaddockError
from evaluator.race_settings import MAX_SEED, MAX_TRIALS, RaceConfig, bots_json
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
from league.rules.leagues import can_manage, can_view, require_manager
from league.rules.text import clean_name

RACE_FIELDS = ("track", "format", "laps", "trials", "ranking", "off_track_penalty",
               "collision_penalty", "time_cap", "min_laps", "seed", "obstacles", "conditions",
               "extra_tracks", "bots")
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
#: A new race's entries per racer per UTC day when its organizer says nothing (the race form
#: and the API); older races keep theirs, and an organizer may clear it (no limit)
DEFAULT_ENTRIES_PER_DAY = 10
#: What a race keeps secret while it is open (:func:`seed_shown`, :func:`track_hidden`):
#: yes-or-no settings an organizer may change until the race closes, entries or not.
SECRECY_FIELDS = ("seed_public", "mystery_track")
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
                 settings={**race.config(), **{k: getattr(race, k) for k in SECRECY_FIELDS}})
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
    current = {k: getattr(race, k) for k in (*OPTIONAL_RACE_FIELDS, *SECRECY_FIELDS)}
    merged = {**race.config(), **current, **settings}
    values = _race_values(race.league, name, opens_at, closes_at, season, divisions, merged)
    changed = [k for k, v in values.items() if getattr(race, k) != v]
    has_entries = entry_count(session, race) > 0
    if has_entries and "track" not in changed and "track_digest" in changed:
        changed.remove("track_digest")  # the track file changed: entries keep their geometry
    if has_entries and "extra_tracks" in changed and _names(race.extra_tracks) == _names(
            values["extra_tracks"]):
        changed.remove("extra_tracks")  # the same, one of their files changed: as above
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


def _names(tracks: list[dict[str, Any]] | None) -> list[str]:
    return [t["track"] for t in tracks or []]


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
    unknown = set(settings) - set(RACE_FIELDS) - set(OPTIONAL_RACE_FIELDS) - set(SECRECY_FIELDS)
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
    extra_tracks = _extra_tracks(cfg, settings)
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
    secrecy = {k: settings[k] for k in SECRECY_FIELDS if settings.get(k) is not None}
    for k, v in secrecy.items():
        if not isinstance(v, bool):
            raise InvalidInput(f"{k} must be true or false")
    extra.update(secrecy)
    # A mystery track's race is not named after its track unless its organizer says so.
    default_name = "Mystery track" if secrecy.get("mystery_track") else track.name
    return dict(season_id=season.id if season else None, name=name or default_name,
                track=track.name, track_digest=track.digest, format=cfg.format, laps=cfg.laps,
                min_laps=cfg.min_laps, ranking=cfg.ranking,
                off_track_penalty=cfg.off_track_penalty,
                collision_penalty=cfg.collision_penalty, trials=cfg.trials,
                time_cap=cfg.time_cap, seed=cfg.seed, obstacles=cfg.obstacles,
                conditions=cfg.conditions.to_dict(), opens_at=opens_at, closes_at=closes_at,
                extra_tracks=extra_tracks, bots=bots_json(cfg.bots), **extra)


def _extra_tracks(cfg: RaceConfig, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The tracks after the first, each with its geometry digest (recorded like the first's).

    :class:`RaceConfig` has checked their number, that each is listed once and that the race
    is a time trial; a mystery track stays one track (its name and drawing are secret, a
    list of several would show them).
    """
    if not cfg.extra_tracks:
        return []
    if settings.get("mystery_track"):
        raise InvalidInput("tracks: a mystery track is one hidden track; a race on several "
                           "tracks shows them all")
    out = []
    for name in cfg.extra_tracks:
        if not TRACK_NAME_RE.match(name):
            raise InvalidInput(f"tracks: {name!r} is not a library or imported track name")
        try:
            track = load_track(name)
        except PaddockError as err:
            raise InvalidInput(f"tracks: {err}") from err
        out.append({"track": track.name, "track_digest": track.digest})
    return out


# ------------------------------------------------------------------------------ secrets
PRACTICE_SEED_SALT = b"paddock practice seed v1"


def random_seed() -> int:
    """A new race's seed when its organizer gives none: a secret seed nobody can guess."""
    return secrets.randbelow(2**31)


def set_race_secrecy(session: Session, race: Race, user: User, *,
                     seed_public: bool | None = None,
                     mystery_track: bool | None = None) -> list[str]:
    """Publish or keep secret ``race``'s seed, hide or show its track until it closes (its
    league's organizers; audited as a change of the race). Settings left out (None) keep
    their value; returns the names of those changed. A closed race shows both already."""
    given: dict[str, Any] = {k: v for k, v in (("seed_public", seed_public),
                                               ("mystery_track", mystery_track))
                             if v is not None}
    return update_race(session, race, user, race.name, race.opens_at, race.closes_at,
                       season=race.season, divisions=list(race.divisions), **given)


def seed_secret(race: Race) -> bool:
    """Whether ``race``'s seed is still secret from racers and spectators: it has not closed
    and its organizers have not published it (:func:`seed_shown`)."""
    return race.status != RaceStatus.CLOSED and not race.seed_public


def track_secret(race: Race) -> bool:
    """Whether ``race``'s track is still hidden from racers and spectators: a mystery track
    of a race not closed yet (:func:`track_hidden`). Lists every viewer shares (the home,
    league, season and track pages) go by this alone."""
    return race.mystery_track and race.status != RaceStatus.CLOSED


def seed_shown(session: Session, race: Race, viewer: User | None) -> bool:
    """Whether ``viewer`` may see ``race``'s seed, and with it its trials' and heats' seeds.

    1. Everyone who may see the race, once it has closed.
    2. Everyone, while it is scheduled, open or in its finals, when its organizers published
       the seed (``Race.seed_public``).
    3. Otherwise the league's organizers and the admins only: they set it.

    Racers see a practice seed instead (:func:`practice_seed`): with it ``paddock evaluate``
    runs the race's settings, conditions and track at home, but not its exact runs.
    """
    return not seed_secret(race) or can_manage(session, race.league, viewer)


def track_hidden(session: Session, race: Race, viewer: User | None) -> bool:
    """Whether ``race``'s track is hidden from ``viewer`` (a mystery track).

    A mystery track (``Race.mystery_track``) is hidden until the race closes from everyone
    but the league's organizers and the admins: racers and spectators see its length and
    width only, neither its name, drawing nor digest, and no replay, trace or analysis of
    the race's runs (they draw the track).
    """
    return track_secret(race) and not can_manage(session, race.league, viewer)


def practice_seed(race: Race) -> int:
    """The seed racers evaluate ``race`` with at home while its seed is secret.

    Fixed for the race (a hash of its league and id), so every racer practises on the same
    runs, and unrelated to the race's own seed, which it neither reveals nor lets anyone
    derive.
    """
    digest = hashlib.sha256(PRACTICE_SEED_SALT + f":{race.league_id}:{race.id}".encode())
    seed = int.from_bytes(digest.digest()[:8], "big") % (MAX_SEED + 1)
    return seed if seed != race.seed else (seed + 1) % (MAX_SEED + 1)


def listed_tracks(track: str, tracks: Sequence[str] | None) -> list[str]:
    """The ``extra_tracks`` setting of a race whose tracks are listed as ``tracks`` (the
    API's list): the tracks after the first, which must be ``track``."""
    if tracks is None:
        return []
    if not tracks:
        raise InvalidInput("tracks: list the race's tracks, track first (or leave tracks out "
                           "for a race on one track)")
    if tracks[0] != track:
        raise InvalidInput(f"tracks: the first of the tracks is the race's track ({track!r}), "
                           f"got {tracks[0]!r}")
    return list(tracks[1:])


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
