"""The API's bodies about entries and evaluations (see :mod:`web.api.schemas`): uploads, an
entry and its status, an evaluation with its result exactly as the evaluator produced it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, SkipValidation

from evaluator.race_settings import DEFAULT_FORMAT, DEFAULT_RANKING, Format, Ranking
from league.models import FailureKind, JobKind, JobStatus
from league.rules.submissions import MAX_MODEL_NAME_CHARS, MAX_REASON_CHARS
from web.api.schemas import (
    BLANK_NAME_PATTERN,
    TEXT_PATTERN,
    Pagination,
    Request,
    Timestamp,
)


class EntryUpload(BaseModel):
    """``multipart/form-data`` fields of an upload."""

    model_config = ConfigDict(extra="forbid")

    model: bytes = Field(description="the policy .onnx file")
    metadata: bytes | None = Field(None, description="model_metadata.json, as a file or text "
                                                     "(default: the metadata in the file)")
    name: str = Field("", json_schema_extra={"pattern": BLANK_NAME_PATTERN},
                      description="the model's name (default: its metadata's name); its first "
                                  f"{MAX_MODEL_NAME_CHARS} characters are kept")


class Disqualify(Request):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS,
                        json_schema_extra={"pattern": TEXT_PATTERN},
                        description="shown to the racer")


class PolicyModel(BaseModel):
    id: int
    name: str
    version: int = Field(description="counts up per racer and model name")
    sha256: str
    size_bytes: int
    metadata: dict[str, Any] = Field(description="action space, observation version, name")
    created_at: Timestamp


class EntryStatus(BaseModel):
    """Where an entry's latest evaluation stands."""

    entry_id: int
    status: JobStatus | None = Field(description="None: not queued (head-to-head entries "
                                                 "race in rating rounds)")
    job_id: int | None
    attempts: int
    queued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    failure_kind: FailureKind | None
    reason: str = Field(description="a failure, why the result is not ranked, or a "
                                    "disqualification")
    result_id: int | None
    result_status: str | None = Field(description="finished, dnf, policy_error, "
                                                  "invalid_policy")
    time_s: float | None
    disqualified: bool


class EvaluationSummary(BaseModel):
    id: int
    kind: JobKind
    status: JobStatus
    attempts: int
    max_attempts: int
    queued_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    failure_kind: FailureKind | None
    failure_reason: str
    result_status: str | None


class Entry(BaseModel):
    id: int
    race_id: int
    racer: str
    user_id: int
    model: PolicyModel
    submitted_at: Timestamp
    disqualified: bool
    disqualified_reason: str
    status: EntryStatus
    evaluations: list[EvaluationSummary] = Field(description="every evaluation, oldest first")


class EntryList(BaseModel):
    items: list[Entry]
    pagination: Pagination


class TrialResult(BaseModel):
    """One trial (time trial) or heat (head-to-head) of a car."""

    model_config = ConfigDict(extra="allow")

    trial: int
    seed: int | None = Field(0, description="null while the race's seed is secret")
    status: str = Field("finished", description="finished, dnf or policy_error")
    laps_completed: int = 0
    lap_times_s: list[float] = []
    total_time_s: float | None = None
    best_lap_s: float | None = None
    average_lap_s: float | None = None
    off_track_count: int = 0
    collision_count: int = 0
    penalty_s: float = 0.0
    completion_pct: float = 0.0
    reason: str = ""


class EvaluationResult(BaseModel):
    """The object ``paddock evaluate --json`` prints, exactly as the league stored it."""

    model_config = ConfigDict(extra="allow")

    paddock_version: str = ""
    sim_version: str = ""
    track: str | None = Field("", description="null while a mystery track is hidden")
    format: Format = DEFAULT_FORMAT
    seed: int | None = Field(0, description="null while the race's seed is secret (so are "
                                            "settings.seed and every trial's seed)")
    status: str = Field(description="finished, dnf, invalid_policy or policy_error")
    ranking: Ranking = DEFAULT_RANKING
    ranking_time_s: float | None = None
    ranking_laps: int = 0
    ranked_trial: int | None = None
    trials: list[TrialResult]
    error: str | None = None
    cars: list[dict[str, Any]] | None = Field(None, description="head-to-head: every car")
    positions: list[int] | None = Field(None, description="head-to-head: car indices, "
                                                          "winner first")


class ReplayInfo(BaseModel):
    trial: int = Field(description="trial (time trial) or heat (head-to-head) number")
    size_bytes: int


class Evaluation(EvaluationSummary):
    entry_id: int | None = Field(description="the entry of a time-trial evaluation")
    heat_id: int | None = Field(description="the heat of a head-to-head evaluation")
    race_id: int
    replays: list[ReplayInfo]
    # Passed through untouched (never re-validated or re-typed), so it equals what the
    # evaluator produced bit for bit; the model only documents it.
    result: SkipValidation[SerializeAsAny[EvaluationResult]] | None = Field(
        description="None until the evaluation succeeded")


class ReplayQuery(BaseModel):
    trial: int | None = Field(None, ge=1, le=1000, description="default: the trial the result is "
                                                      "ranked by")
