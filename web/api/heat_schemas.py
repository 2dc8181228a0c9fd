"""The API's bodies about head-to-head races (see :mod:`web.api.schemas`): a race's heats as
the race page lists them, and one racer's matchups as their page in the race shows them
(the rules behind both: :mod:`league.read.heats`, :mod:`league.read.matchups`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from league.models import JobStatus
from league.rules.accounts import NAME_RE
from web.api.schemas import PageQuery, Pagination, Timestamp


class HeatQuery(PageQuery):
    racer: str | None = Field(None, pattern=NAME_RE.pattern,
                              description="only heats in which this racer raced (a racer "
                                          "without an entry in the race has none)")


class HeatCar(BaseModel):
    """One car of a heat; off-tracks, collisions and penalties are summed over its runs."""

    entry_id: int
    racer: str
    model: str = Field(description="model name and version")
    position: int | None = Field(description="1 is the winner; None until the heat is raced")
    status: str = Field(description="finished, dnf or policy_error; empty until raced")
    time_s: float | None = Field(description="the car's ranking time in the heat")
    gap_s: float | None = Field(description="behind the winner (None for the winner or "
                                            "without times)")
    laps: int
    off_tracks: int
    collisions: int
    penalty_s: float


class Heat(BaseModel):
    id: int
    race_id: int
    title: str = Field(description='"Round 3" for a rating round, else the knockout '
                                   'stage ("Semifinal", "Final")')
    created_at: Timestamp
    raced: bool = Field(description="whether the heat has a result (and replays)")
    evaluation_id: int | None = Field(description="the heat's latest evaluation: GET "
                                                  "/evaluations/{id} (None: not queued)")
    evaluation_status: JobStatus | None
    winner_id: int | None = Field(description="the winning entry (None until raced)")
    replay: str | None = Field(description="the replay download of the raced heat (add "
                                           "?trial=N for each seat-swapped run)")
    watch: str | None = Field(description="the raced heat's replay viewer on the website")
    cars: list[HeatCar] = Field(description="best first once raced, else in grid order")


class HeatList(BaseModel):
    items: list[Heat] = Field(description="newest first")
    pagination: Pagination


class Opponent(BaseModel):
    racer: str
    won: int = Field(description="heats the racer finished ahead of this opponent")
    lost: int
    heats: int


class MatchupHeat(BaseModel):
    heat_id: int
    label: str = Field(description='"R3" for round 3, else the knockout stage')
    model: str = Field(description="the racer's model version in this heat")
    position: int = Field(description="1 is the winner")
    cars: int
    opponents: list[str] = Field(description="the other racers, best first")
    rated_at: Timestamp | None


class RatingPoint(BaseModel):
    """The racer's rating at the end of one round (or knockout stage)."""

    label: str
    model: str
    mu: float
    sigma: float
    rating: float = Field(description="the conservative rating mu - 3 sigma")


class VersionMark(BaseModel):
    model: str
    submitted_at: Timestamp
    point: int | None = Field(description="index of the version's first rating point (None: "
                                           "no rated heat yet)")


class Matchups(BaseModel):
    """One racer in a head-to-head race, all their entries (model versions) together."""

    race_id: int
    racer: str
    opponents: list[Opponent] = Field(description="most heats first, then by name")
    heats: list[MatchupHeat] = Field(description="in the order they were rated")
    history: list[RatingPoint] = Field(description="one point per round (then per knockout "
                                                   "stage)")
    versions: list[VersionMark] = Field(description="in the order they were entered")
