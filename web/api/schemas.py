"""The API's bodies as pydantic models: what requests are parsed with, what responses are
serialized with, and (through :mod:`web.api.spec`) the schemas of the OpenAPI document.

Field names follow the CLI with underscores (``off_track_penalty``); times are ISO 8601 in UTC
(``2026-06-01T12:00:00Z``; a time given without an offset is taken as UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    WithJsonSchema,
)

from evaluator.race_settings import Format, RaceConfig, Ranking
from league.models import RaceStatus, SeasonStatus, Visibility
from league.rules.leagues import MAX_DIVISIONS, MAX_POINTS_PLACES


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Times are stored in UTC without tzinfo: convert an aware time, keep a naive one."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _iso_utc(value: dt.datetime) -> str:
    return _as_utc(value).isoformat() + "Z"


Timestamp = Annotated[dt.datetime, AfterValidator(_as_utc),
                      PlainSerializer(_iso_utc, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
RACE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RaceConfig)}  # engine defaults


class Request(BaseModel):
    """A request body: unknown fields are refused (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- common
class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid, not_found, rate_limited, ...")
    message: str = Field(description="what went wrong, in one line")


class Error(BaseModel):
    """Every error response."""

    error: ErrorDetail


class Pagination(BaseModel):
    page: int = Field(description="1-based")
    per_page: int
    total: int = Field(description="items in the whole list")
    pages: int = Field(description="pages in the whole list (at least 1)")


class PageQuery(BaseModel):
    """Query parameters of a list."""

    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number")
    per_page: int = Field(50, ge=1, description="items per page (at most 200)")


# ---------------------------------------------------------------------- tracks, leagues
class Track(BaseModel):
    name: str
    title: str
    description: str
    length_m: float = Field(description="centerline length")
    width_m: float = Field(description="mean width")
    points: int = Field(description="centerline waypoints")
    min_radius_m: float | None = Field(description="tightest corner radius (None: straight)")
    digest: str = Field(description="SHA-256 of the geometry")
    source: Literal["library", "imported"]


class TrackList(BaseModel):
    items: list[Track]
    pagination: Pagination


class Division(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    tier: int = Field(description="1 is the top division")


class Season(BaseModel):
    id: int
    league: str = Field(description="the league's slug")
    name: str
    status: SeasonStatus
    starts_at: Timestamp
    ends_at: Timestamp
    points_table: list[int] = Field(description="season points by finishing position")
    promote: int
    relegate: int
    movement_in_percent: bool
    finalized_at: Timestamp | None


class LeagueSummary(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    visibility: Visibility
    created_at: Timestamp
    divisions: list[Division]


class League(LeagueSummary):
    seasons: list[Season]
    member: bool = Field(description="whether the caller is a member")
    can_manage: bool = Field(description="whether the caller organizes this league")
    invite_code: str | None = Field(description="for the league's organizers only")


class LeagueList(BaseModel):
    items: list[LeagueSummary]
    pagination: Pagination


class LeagueCreate(Request):
    slug: str = Field(description="3-64 lowercase letters, digits and '-'")
    name: str
    description: str = ""
    visibility: Visibility = Visibility.PUBLIC
    divisions: list[str] = Field(["Division 1"], min_length=1, max_length=MAX_DIVISIONS,
                                 description=f"division names, top first (1 to {MAX_DIVISIONS})")


class SeasonCreate(Request):
    name: str = ""
    starts_at: Timestamp
    ends_at: Timestamp
    points_table: list[int] | None = Field(None, max_length=MAX_POINTS_PLACES,
                                           description="default 25, 18, 15, ... 1")
    promote: int = 2
    relegate: int = 2
    movement_in_percent: bool = False


class Me(BaseModel):
    id: int
    name: str
    email: str
    role: str
    can_organize: bool
    created_at: Timestamp


# -------------------------------------------------------------------------------- races
class RaceSettings(BaseModel):
    """The evaluation settings of a race, under the names of ``paddock evaluate``."""

    track: str
    format: Format = RACE_DEFAULTS["format"]
    laps: int = RACE_DEFAULTS["laps"]
    trials: int = RACE_DEFAULTS["trials"]
    ranking: Ranking = RACE_DEFAULTS["ranking"]
    off_track_penalty: float = Field(RACE_DEFAULTS["off_track_penalty"], description="seconds")
    collision_penalty: float = Field(RACE_DEFAULTS["collision_penalty"], description="seconds")
    time_cap: float = Field(RACE_DEFAULTS["time_cap"], description="simulated seconds")
    min_laps: int | None = Field(RACE_DEFAULTS["min_laps"],
                                 description="laps needed to be ranked (None: all)")
    seed: int = RACE_DEFAULTS["seed"]
    obstacles: int = RACE_DEFAULTS["obstacles"]


class Race(RaceSettings):
    id: int
    name: str
    league: str = Field(description="the league's slug")
    season_id: int | None
    status: RaceStatus
    opens_at: Timestamp
    closes_at: Timestamp
    closed_at: Timestamp | None
    track_digest: str
    division_ids: list[int] = Field(description="empty: open to every racer of the league")
    max_entries_per_day: int | None
    max_entries_total: int | None
    round_interval_s: int = Field(description="head-to-head: seconds between rating rounds")
    heats_per_round: int
    knockout_size: int = Field(description="head-to-head: finalists in the knockout (0: none)")
    rounds_played: int


class RaceList(BaseModel):
    items: list[Race]
    pagination: Pagination


class RaceCreate(Request, RaceSettings):
    name: str = Field("", description="default: the track's name")
    opens_at: Timestamp | None = Field(None, description="default: now")
    closes_at: Timestamp
    season_id: int | None = None
    division_ids: list[int] = Field([], description="limit the race to these divisions")
    max_entries_per_day: int | None = None
    max_entries_total: int | None = None
    round_interval_s: int | None = None
    heats_per_round: int | None = None
    knockout_size: int | None = None


class LeagueRaceQuery(PageQuery):
    status: RaceStatus | None = Field(None, description="only races with this status")


class RaceQuery(LeagueRaceQuery):
    league: str | None = Field(None, description="only races of the league with this slug")


class RacePoints(BaseModel):
    user_id: int
    racer: str
    division_id: int | None
    position: int | None = Field(description="within the division; None: not ranked")
    points: int


class ClosedRace(BaseModel):
    race: Race
    points: list[RacePoints] = Field(description="season points awarded at closing (empty "
                                   "while the race is in its knockout finals)")


class LeaderboardRow(BaseModel):
    rank: int | None = Field(description="None: listed but not ranked")
    racer: str
    user_id: int
    entry_id: int
    model: str = Field(description="model name and version")
    time_s: float | None = Field(description="time under the race's ranking method")
    gap_s: float | None = Field(description="behind the leader (same laps only)")
    laps: int
    best_lap_s: float | None
    off_track_count: int
    collision_count: int
    penalty_s: float
    submissions: int
    submitted_at: Timestamp
    result_id: int
    job_id: int
    status: str
    reason: str = Field(description="why the racer is not ranked")


class RatingRow(BaseModel):
    rank: int | None = Field(description="None until the entry has raced a heat")
    entry_id: int
    user_id: int
    racer: str
    model: str
    rating: float = Field(description="conservative rating mu - 3 sigma")
    mu: float
    sigma: float
    heats: int
    wins: int


class Match(BaseModel):
    seeds: tuple[int | None, int | None]
    entry_ids: tuple[int | None, int | None]
    heat_id: int | None
    winner_id: int | None


class Stage(BaseModel):
    name: str
    matches: list[Match]


class Bracket(BaseModel):
    size: int = Field(description="entrants (a power of two)")
    seeds: list[int] = Field(description="entry ids, seed 1 first")
    stages: list[Stage]
    champion_id: int | None


class TimeTrialLeaderboard(BaseModel):
    format: Literal[Format.TIME_TRIAL]
    race_id: int
    ranking: Ranking
    items: list[LeaderboardRow]
    pagination: Pagination


class HeadToHeadLeaderboard(BaseModel):
    format: Literal[Format.HEAD_TO_HEAD]
    race_id: int
    items: list[RatingRow] = Field(description="the rating table")
    pagination: Pagination
    bracket: Bracket | None = Field(description="the knockout finals (None: no knockout)")


class Leaderboard(RootModel[Annotated[TimeTrialLeaderboard | HeadToHeadLeaderboard,
                                      Field(discriminator="format")]]):
    """A time trial's ranked results, or a head-to-head race's ratings and bracket."""
