"""The API's bodies as pydantic models: what requests are parsed with, what responses are
serialized with, and (through :mod:`web.api.spec`) the schemas of the OpenAPI document.

Field names follow the CLI with underscores (``off_track_penalty``); times are ISO 8601 in UTC
(``2026-06-01T12:00:00Z``; a time given without an offset is taken as UTC).

Every bound the API keeps is in the document. Ids and the lengths of text are checked here,
so a request outside them is refused before it reaches the league. Settings whose range the
league's rules check (laps, penalties, limits, a name's characters) are stated with
:func:`ruled` or a ``pattern``: the document names the rule's own bounds, and the rule words
the refusal. The rules that JSON Schema cannot state (a race closes after it opens, a points
table goes down, the track exists) are in the fields' descriptions.
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
from pydantic.fields import FieldInfo

from evaluator.conditions import CUSTOM, PRESETS
from evaluator.conditions import LABELS as CONDITION_LABELS
from evaluator.conditions import LIMITS as CONDITION_LIMITS
from evaluator.race_settings import (
    BOT_SPEEDS_MPS,
    MAX_BOTS,
    MAX_LAPS,
    MAX_OBSTACLES,
    MAX_SEED,
    MAX_TIME_CAP_S,
    MAX_TRACKS,
    MAX_TRIALS,
    MIN_TIME_CAP_S,
    PENALTIES_S,
    Format,
    RaceConfig,
    Ranking,
)
from league import models as m
from league.models import MAX_ID, AuditAction, RaceStatus, SeasonStatus, Visibility
from league.rules.leagues import MAX_DIVISIONS, MAX_POINTS, MAX_POINTS_PLACES, SLUG_RE
from league.rules.races import (
    DEFAULT_ENTRIES_PER_DAY,
    KNOCKOUT_SIZES,
    OPTIONAL_RACE_RANGES,
    TRACK_NAME_RE,
)
from league.rules.text import MAX_DESCRIPTION_CHARS
from web.helpers import MAX_PAGE, MAX_PER_PAGE

# What league.rules.text refuses in a name, as far as a pattern can say it: control characters
# (tab and line breaks count as spaces). Format, private-use and unassigned characters are
# refused too; the document's description says so.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f]"
NAME_PATTERN = rf"^[^{_CONTROL}]*{_VISIBLE}[^{_CONTROL}]*$"  #: a name: no control, one visible
BLANK_NAME_PATTERN = rf"^[^{_CONTROL}]*$"  #: a name that may be left blank
TEXT_PATTERN = _VISIBLE  #: text with a visible character (control characters are dropped)
# A league's slug as the API takes it: surrounding spaces are ignored, letters are lowered.
_STRIPPED = r"[\t\n\x0b\x0c\r\x1c-\x1f ]*"
SLUG_INPUT = rf"^{_STRIPPED}[A-Za-z0-9][A-Za-z0-9-]{{1,62}}[A-Za-z0-9]{_STRIPPED}$"


def ruled(low: float, high: float, **schema: Any) -> Any:
    """A number the league's rules hold to ``low``..``high``: stated in the document, checked
    (and the refusal worded) by the rule."""
    return Field(json_schema_extra={"minimum": low, "maximum": high, **schema})


def _chars(column: Any) -> int:
    """The length of a text column (what its name may hold)."""
    length: int = column.type.length
    return length


def name_field(default: Any = ..., *, max_chars: int, required: bool = True,
               description: str | None = None) -> FieldInfo:
    """A name of at most ``max_chars`` characters (``required``: with a visible one). The
    length is checked here; the characters by the rule, which words the refusal."""
    pattern = NAME_PATTERN if required else BLANK_NAME_PATTERN
    info: FieldInfo = Field(default, min_length=1 if required else 0, max_length=max_chars,
                            json_schema_extra={"pattern": pattern}, description=description)
    return info


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Times are stored in UTC without tzinfo: convert an aware time, keep a naive one."""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as err:  # year 1 at +14:00 is before the first year
            raise ValueError("the time is out of range once taken to UTC") from err
    return value


def _iso_utc(value: dt.datetime) -> str:
    return _as_utc(value).isoformat() + "Z"


Timestamp = Annotated[dt.datetime, AfterValidator(_as_utc),
                      PlainSerializer(_iso_utc, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
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


class AuditEvent(BaseModel):
    """One organizer or admin action on a league."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: Timestamp
    actor_name: str = Field(description="who did it (kept should the user be deleted)")
    actor_id: int | None
    action: AuditAction
    target: str = Field(description="what it was done to, in words")
    reason: str = Field(description="why, when one was given")
    details: dict[str, Any] = Field(description="what changed: a setting's [before, after]")


class AuditLog(BaseModel):
    items: list[AuditEvent] = Field(description="newest first")
    pagination: Pagination


class PageQuery(BaseModel):
    """Query parameters of a list."""

    page: int = Field(1, ge=1, le=MAX_PAGE, description="1-based page number")
    per_page: int = Field(50, ge=1, le=MAX_PER_PAGE, description="items per page")


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


DivisionName = Annotated[str, name_field(max_chars=_chars(m.Division.name))]


class LeagueCreate(Request):
    slug: str = Field(json_schema_extra={"pattern": SLUG_INPUT},
                      description="3-64 letters, digits and '-', not starting or ending with "
                                  "'-'; kept in lowercase (surrounding spaces are ignored)")
    name: str = name_field(max_chars=_chars(m.League.name))
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    visibility: Visibility = Visibility.PUBLIC
    divisions: list[DivisionName] = Field(
        ["Division 1"], min_length=1, max_length=MAX_DIVISIONS,
        description=f"division names, top first (1 to {MAX_DIVISIONS})")


class SeasonCreate(Request):
    name: str = name_field("", max_chars=_chars(m.Season.name), required=False,
                           description="default: 'Season'")
    starts_at: Timestamp
    ends_at: Timestamp = Field(description="after starts_at")
    points_table: list[Annotated[int, ruled(0, MAX_POINTS)]] | None = Field(
        None, min_length=1, max_length=MAX_POINTS_PLACES,
        description="season points by place, highest first (default 25, 18, 15, ... 1)")
    promote: Annotated[int, ruled(0, 1000)] = Field(
        2, description="racers per division (percent, at most 100, with movement_in_percent)")
    relegate: Annotated[int, ruled(0, 1000)] = Field(2, description="as promote")
    movement_in_percent: bool = False


class Me(BaseModel):
    id: int
    name: str
    email: str
    role: str
    can_organize: bool
    created_at: Timestamp


# -------------------------------------------------------------------------------- races
def _bound(name: str) -> Any:
    lo, hi = CONDITION_LIMITS[name]
    label, unit = CONDITION_LABELS[name]
    return Field(None, ge=lo, le=hi, description=f"{label}: {unit}")


class RaceConditions(BaseModel):
    """What varies between a race's trials, drawn from each trial's seed
    (docs/ORGANIZERS.md). A preset alone names its values; values given with a preset change
    them (and make the conditions "custom"); "custom" starts from "none"."""

    preset: str = Field(CUSTOM, json_schema_extra={"enum": [*PRESETS, CUSTOM]},
                        description="none (nothing varies but a small start jitter), "
                                    "standard (new races), hard, or custom")
    start_offset_m: float | None = _bound("start_offset_m")
    start_heading_deg: float | None = _bound("start_heading_deg")
    ray_noise: float | None = _bound("ray_noise")
    grip_pct: float | None = _bound("grip_pct")
    latency_steps: int | None = _bound("latency_steps")
    steering_bias_deg: float | None = _bound("steering_bias_deg")

    def given(self) -> dict[str, Any]:
        """The preset and the values given, as ``races.create_race`` takes them."""
        return self.model_dump(exclude_none=True)


class BotCar(BaseModel):
    """A built-in bot car of a head-to-bot race (named "Bot 1 (1.6 m/s)" in results and
    replays)."""

    speed: Annotated[float, ruled(*BOT_SPEEDS_MPS)] = Field(description="its top speed, m/s")


class RaceSettings(BaseModel):
    """The evaluation settings of a race, under the names of ``paddock evaluate``."""

    track: str = Field(json_schema_extra={"pattern": TRACK_NAME_RE.pattern},
                       description="a track of GET /tracks, by name")
    format: Format = RACE_DEFAULTS["format"]
    laps: Annotated[int, ruled(1, MAX_LAPS)] = RACE_DEFAULTS["laps"]
    trials: Annotated[int, ruled(1, MAX_TRIALS)] = RACE_DEFAULTS["trials"]
    ranking: Ranking = RACE_DEFAULTS["ranking"]
    off_track_penalty: Annotated[float, ruled(*PENALTIES_S)] = Field(
        RACE_DEFAULTS["off_track_penalty"], description="seconds")
    collision_penalty: Annotated[float, ruled(*PENALTIES_S)] = Field(
        RACE_DEFAULTS["collision_penalty"], description="seconds")
    time_cap: Annotated[float, ruled(MIN_TIME_CAP_S, MAX_TIME_CAP_S)] = Field(
        RACE_DEFAULTS["time_cap"], description="simulated seconds")
    min_laps: Annotated[int | None, ruled(1, MAX_LAPS)] = Field(
        RACE_DEFAULTS["min_laps"], description="laps needed to be ranked, at most laps "
                                               "(None: all)")
    seed: Annotated[int, ruled(0, MAX_SEED)] = RACE_DEFAULTS["seed"]
    obstacles: Annotated[int, ruled(0, MAX_OBSTACLES)] = RACE_DEFAULTS["obstacles"]
    conditions: RaceConditions | None = Field(
        None, description="what varies between trials; a new race without: the standard "
                          "preset")
    bots: list[BotCar] = Field(
        [], max_length=MAX_BOTS,
        description=f"head-to-bot: the bot cars each entrant races, 1 to {MAX_BOTS} (required "
                    "for that format); empty for the other formats")


class RaceTrack(BaseModel):
    """One track of a race and the geometry it is raced on."""

    track: str = Field(description="a track of GET /tracks, by name")
    track_digest: str = Field(description="the track's geometry digest")


TRACKS_DESCRIPTION = (f"a time trial on several tracks: 1 to {MAX_TRACKS} tracks of GET "
                      "/tracks, each once, the first being track; every entry races every "
                      "track and is ranked by the sum of its tracks' times (not for "
                      "head-to-head, nor with a mystery track)")


class Race(RaceSettings):
    tracks: list[RaceTrack] | None = Field(
        description="every track of the race, track first (several: ranked by the sum of "
                    "the tracks' times); null while a mystery track is hidden")
    track: str | None = Field(  # type: ignore[assignment]
        description="a track of GET /tracks, by name; null while a mystery track is hidden "
                    "(until the race closes)")
    seed: int | None = Field(  # type: ignore[assignment]
        description="null while the seed is secret (until the race closes, unless its "
                    "organizers published it): see practice_seed")
    seed_public: bool = Field(description="the organizers publish the seed while the race "
                                          "is open")
    practice_seed: int | None = Field(
        description="while the seed is secret: the seed paddock evaluate --race races at "
                    "home (the league's settings, conditions and track; not its exact runs)")
    mystery_track: bool = Field(description="the track is hidden until the race closes")
    track_length_m: float | None = Field(
        description="the track's centerline length, to the metre (null: track gone)")
    track_width_m: float | None = Field(
        description="the track's mean width, to 10 cm (null: track gone)")
    id: int
    name: str
    league: str = Field(description="the league's slug")
    season_id: int | None
    status: RaceStatus
    opens_at: Timestamp
    closes_at: Timestamp
    closed_at: Timestamp | None
    track_digest: str | None = Field(description="the track's geometry digest; null while a "
                                                 "mystery track is hidden")
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


def _optional_range(name: str) -> Any:
    return ruled(*OPTIONAL_RACE_RANGES[name])


class RaceCreate(Request, RaceSettings):
    name: str = name_field("", max_chars=_chars(m.Race.name), required=False,
                           description="default: the track's name")
    tracks: list[Annotated[str, Field(json_schema_extra={"pattern": TRACK_NAME_RE.pattern})]] \
        | None = Field(None, json_schema_extra={"minItems": 1, "maxItems": MAX_TRACKS},
                       description=TRACKS_DESCRIPTION + "; default: track alone")
    seed: Annotated[int | None, ruled(0, MAX_SEED)] = Field(  # type: ignore[assignment]
        None, description="default: a random seed")
    seed_public: bool = Field(False, description="publish the seed while the race is open "
                                                 "(default: secret until it closes)")
    mystery_track: bool = Field(False, description="hide the track until the race closes")
    opens_at: Timestamp | None = Field(None, description="default: now")
    closes_at: Timestamp = Field(description="after opens_at")
    season_id: Id | None = Field(None, description="a season of the league")
    division_ids: list[Id] = Field([], max_length=MAX_DIVISIONS,
                                   description="limit the race to these divisions of the "
                                               "league")
    max_entries_per_day: Annotated[int | None, _optional_range("max_entries_per_day")] = \
        Field(DEFAULT_ENTRIES_PER_DAY, description="entries per racer per UTC day (default "
                                                   f"{DEFAULT_ENTRIES_PER_DAY}); null: no "
                                                   "limit")
    max_entries_total: Annotated[int | None, _optional_range("max_entries_total")] = \
        Field(None, description="None: no limit")
    round_interval_s: Annotated[int | None, _optional_range("round_interval_s")] = None
    heats_per_round: Annotated[int | None, _optional_range("heats_per_round")] = None
    knockout_size: Annotated[int | None, Field(json_schema_extra={
        "enum": [*KNOCKOUT_SIZES, None]})] = Field(None, description="0: no knockout")


class RaceSecrecy(Request):
    seed_public: bool | None = Field(None, description="publish the seed while the race is "
                                                       "open (false: keep it secret)")
    mystery_track: bool | None = Field(None, description="hide the track until the race "
                                                         "closes")


class LeagueRaceQuery(PageQuery):
    status: RaceStatus | None = Field(None, description="only races with this status")


class RaceQuery(LeagueRaceQuery):
    league: str | None = Field(None, pattern=SLUG_RE.pattern,
                               description="only races of the league with this slug")


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
    track_times_s: list[float | None] = Field(
        description="a race on several tracks: each track's ranking time, in the race's "
                    "order (null: that track not finished; time_s is their sum); empty for "
                    "a race on one track")


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
    format: Literal[Format.TIME_TRIAL, Format.HEAD_TO_BOT]
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
