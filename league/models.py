"""The league's tables: typed SQLAlchemy 2.0 models holding data and small derived properties.

Workflows (submitting, claiming jobs, ranking, awarding points) live in the domain modules,
never here. Status values are the ``StrEnum`` classes below, never bare strings.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from evaluator.conditions import DEFAULT_PRESET, PRESETS
from evaluator.race_settings import (
    DEFAULT_FORMAT,
    DEFAULT_LAPS,
    DEFAULT_PENALTY_S,
    DEFAULT_RANKING,
    DEFAULT_TIME_CAP_S,
    DEFAULT_TRIALS,
)
from league.config import DEFAULT_MAX_ATTEMPTS
from league.db import Base

DEFAULT_POINTS = [25, 18, 15, 12, 10, 8, 6, 4, 2, 1]  # season points by finishing position
#: The largest id a row can have: ids are the tables' integer keys, 32-bit on PostgreSQL. A
#: larger number names nothing (and must never reach a query: PostgreSQL refuses it).
MAX_ID = 2**31 - 1


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (how every timestamp is stored)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Role(enum.StrEnum):
    """What a user may do on the site."""

    RACER = "racer"
    ORGANIZER = "organizer"
    ADMIN = "admin"


class TokenScope(enum.StrEnum):
    """What a personal API token may do."""

    READ = "read"  #: read only (GET and HEAD)
    SUBMIT = "submit"  #: everything its owner may do, submitting entries included


class LinkPurpose(enum.StrEnum):
    """What a mailed account link is for."""

    RESET = "reset"  #: set a new password
    VERIFY = "verify"  #: confirm the e-mail address


class Visibility(enum.StrEnum):
    """Who can see a league."""

    PUBLIC = "public"  # listed, visible to everyone
    UNLISTED = "unlisted"  # visible to anyone with the link, not listed
    PRIVATE = "private"  # members only; joined with the invite code


class MemberRole(enum.StrEnum):
    """A user's role within one league."""

    MEMBER = "member"
    ORGANIZER = "organizer"


class RaceStatus(enum.StrEnum):
    """Where a race stands."""

    SCHEDULED = "scheduled"  # before opens_at
    OPEN = "open"  # taking submissions
    FINALS = "finals"  # window over, knockout being raced (head-to-head); points to come
    CLOSED = "closed"  # leaderboard frozen, season points awarded


class SeasonStatus(enum.StrEnum):
    """Where a season stands."""

    PLANNED = "planned"
    ACTIVE = "active"
    FINISHED = "finished"  # points totalled, promotion and relegation applied


class JobStatus(enum.StrEnum):
    """States of an evaluation job; they only ever move forward."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(enum.StrEnum):
    """What a job evaluates."""

    TIME_TRIAL = "time_trial"  # one entry, the race's trials
    HEAT = "heat"  # a head-to-head heat pair between entries


class FailureKind(enum.StrEnum):
    """Why a job failed: every failure names one."""

    VALIDATION = "validation"  # the stored model no longer passes validation
    POLICY_ERROR = "policy_error"  # the policy crashed or returned garbage
    TIMEOUT = "timeout"  # older jobs: the whole job ran out of time (now TIME_BUDGET)
    #: the policy used up its inference-time budget, or the evaluation its wall-clock limit
    #: (the reason gives the figures); the policy's doing, so not tried again
    TIME_BUDGET = "time_budget"
    INFRASTRUCTURE = "infrastructure"  # workers died too often, storage or track missing


class User(Base):
    """A person with an account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[Role] = mapped_column(sa.String(16), default=Role.RACER)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: when the address was confirmed through a mailed link (None: not confirmed)
    email_verified_at: Mapped[dt.datetime | None]
    #: a website session counts only while its stored epoch equals this one; logging out
    #: everywhere and changing the password move it on
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    # The session-login protocol of the website (Flask-Login's names, no Flask import here).
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """The id a login session stores."""
        return str(self.id)

    @property
    def can_organize(self) -> bool:
        """Whether this user may create leagues."""
        return self.role in (Role.ORGANIZER, Role.ADMIN)


class ApiToken(Base):
    """A personal API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(80))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))  #: shown to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    #: what the token may do (``read``: only GET and HEAD requests)
    scope: Mapped[TokenScope] = mapped_column(sa.String(16), default=TokenScope.SUBMIT,
                                              server_default=TokenScope.SUBMIT.value)
    expires_at: Mapped[dt.datetime | None]  #: None: never expires

    user: Mapped[User] = relationship(back_populates="tokens")


class AccountLink(Base):
    """A single-use link mailed to a user (password reset, e-mail verification); only the
    SHA-256 of its secret is stored."""

    __tablename__ = "account_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    purpose: Mapped[LinkPurpose] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]  #: set when followed (or when a newer one was)

    user: Mapped[User] = relationship()


class OutboxMail(Base):
    """A mail the site would have sent, kept for the admins when no SMTP server is set."""

    __tablename__ = "outbox_mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class League(Base):
    """A community league: divisions, seasons and races under one organizer team."""

    __tablename__ = "leagues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    visibility: Mapped[Visibility] = mapped_column(sa.String(16), default=Visibility.PUBLIC)
    invite_code: Mapped[str] = mapped_column(sa.String(32))
    #: whether spectators get the policies' commands in replays too (default: only each
    #: car's racer and the league's organizers)
    telemetry_public: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    divisions: Mapped[list[Division]] = relationship(back_populates="league",
                                                     order_by="Division.tier")
    seasons: Mapped[list[Season]] = relationship(back_populates="league",
                                                 order_by="Season.starts_at")
    members: Mapped[list[Membership]] = relationship(back_populates="league")


class Division(Base):
    """An ordered tier of a league: tier 1 is the top."""

    __tablename__ = "divisions"
    __table_args__ = (sa.UniqueConstraint("league_id", "tier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    league_id: Mapped[int] = mapped_column(sa.ForeignKey("leagues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(80))
    tier: Mapped[int]

    league: Mapped[League] = relationship(back_populates="divisions")


class AuditAction(enum.StrEnum):
    """What an organizer or admin did to a league, as its audit log names it."""

    LEAGUE_SETTINGS = "league_settings"  # name, description or visibility changed
    INVITE_ROTATED = "invite_rotated"  # a new invite code (asked for, or by a removal)
    MEMBER_REMOVED = "member_removed"
    MEMBER_CHANGED = "member_changed"  # role or division
    DIVISION_ADDED = "division_added"
    DIVISION_RENAMED = "division_renamed"
    SEASON_CREATED = "season_created"
    RACE_CREATED = "race_created"
    RACE_CHANGED = "race_changed"  # the settings that changed
    RACE_CLOSED = "race_closed"  # closed early by hand
    ENTRY_DISQUALIFIED = "entry_disqualified"
    ENTRY_RERUN = "entry_rerun"
    LIVE_EVENT_SCHEDULED = "live_event_scheduled"
    LIVE_EVENT_CANCELLED = "live_event_cancelled"


class AuditEvent(Base):
    """One organizer or admin action on a league: who, when, what, to what and why."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_league_id_at", "league_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    league_id: Mapped[int] = mapped_column(sa.ForeignKey("leagues.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id",
                                                               ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(sa.String(40))  #: kept if the user is deleted
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[AuditAction] = mapped_column(sa.String(32))
    target: Mapped[str] = mapped_column(sa.String(300))  #: what was acted on, in words
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class Membership(Base):
    """A user in a league, with a role and (for racers) a division."""

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("league_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    league_id: Mapped[int] = mapped_column(sa.ForeignKey("leagues.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[MemberRole] = mapped_column(sa.String(16), default=MemberRole.MEMBER)
    division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("divisions.id"))
    joined_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    league: Mapped[League] = relationship(back_populates="members")
    user: Mapped[User] = relationship()
    division: Mapped[Division | None] = relationship()


class Season(Base):
    """A season: races between two dates, a points table, promotion and relegation."""

    __tablename__ = "seasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    league_id: Mapped[int] = mapped_column(sa.ForeignKey("leagues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(80))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    points_table: Mapped[list[int]] = mapped_column(sa.JSON, default=lambda: list(DEFAULT_POINTS))
    promote: Mapped[int] = mapped_column(default=2)  #: racers (or percent) going up
    relegate: Mapped[int] = mapped_column(default=2)  #: racers (or percent) going down
    movement_in_percent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[SeasonStatus] = mapped_column(sa.String(16), default=SeasonStatus.PLANNED)
    finalized_at: Mapped[dt.datetime | None]

    league: Mapped[League] = relationship(back_populates="seasons")
    races: Mapped[list[Race]] = relationship(back_populates="season",
                                             order_by="Race.opens_at")


race_divisions = sa.Table(
    "race_divisions", Base.metadata,
    sa.Column("race_id", sa.ForeignKey("races.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("division_id", sa.ForeignKey("divisions.id", ondelete="CASCADE"),
              primary_key=True),
)


def default_conditions() -> dict[str, Any]:
    """The race conditions of a new race: the ``standard`` preset."""
    return PRESETS[DEFAULT_PRESET].to_dict()


class Race(Base):
    """One race: the evaluation settings (``evaluator.race_settings.RaceConfig``) and its window."""

    __tablename__ = "races"

    id: Mapped[int] = mapped_column(primary_key=True)
    league_id: Mapped[int] = mapped_column(sa.ForeignKey("leagues.id", ondelete="CASCADE"))
    season_id: Mapped[int | None] = mapped_column(sa.ForeignKey("seasons.id"))
    name: Mapped[str] = mapped_column(sa.String(120))
    track: Mapped[str] = mapped_column(sa.String(120))
    track_digest: Mapped[str] = mapped_column(sa.String(64))  #: geometry the race is run on
    format: Mapped[str] = mapped_column(sa.String(16), default=str(DEFAULT_FORMAT))
    laps: Mapped[int] = mapped_column(default=DEFAULT_LAPS)
    min_laps: Mapped[int | None]
    ranking: Mapped[str] = mapped_column(sa.String(16), default=str(DEFAULT_RANKING))
    off_track_penalty: Mapped[float] = mapped_column(default=DEFAULT_PENALTY_S)
    collision_penalty: Mapped[float] = mapped_column(default=DEFAULT_PENALTY_S)
    trials: Mapped[int] = mapped_column(default=DEFAULT_TRIALS)
    time_cap: Mapped[float] = mapped_column(default=DEFAULT_TIME_CAP_S)
    seed: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    obstacles: Mapped[int] = mapped_column(default=0)
    #: what varies between trials (``evaluator.conditions``), as ``Conditions.to_dict()``
    conditions: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=default_conditions)
    #: the seed may be shown while the race is open (it always is once the race has closed)
    seed_public: Mapped[bool] = mapped_column(default=False, server_default=sa.true())
    #: the track is hidden until the race closes: racers see its length and width only
    mystery_track: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: head-to-bot: the built-in bot cars the entrant races, one object a car
    bots: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list,
                                                       server_default=sa.text("'[]'"))
    #: the tracks after the first (``track``): ``{"track": name, "track_digest": digest}`` each
    extra_tracks: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list,
                                                               server_default=sa.text("'[]'"))
    opens_at: Mapped[dt.datetime]
    closes_at: Mapped[dt.datetime]
    status: Mapped[RaceStatus] = mapped_column(sa.String(16), default=RaceStatus.SCHEDULED)
    closed_at: Mapped[dt.datetime | None]
    max_entries_per_day: Mapped[int | None]
    max_entries_total: Mapped[int | None]
    # head-to-head: rating rounds every interval, pairs of seat-swapped heats, a final bracket
    round_interval_s: Mapped[int] = mapped_column(default=600)
    heats_per_round: Mapped[int] = mapped_column(default=1)
    knockout_size: Mapped[int] = mapped_column(default=0)
    rounds_played: Mapped[int] = mapped_column(default=0)
    last_round_at: Mapped[dt.datetime | None]

    league: Mapped[League] = relationship()
    season: Mapped[Season | None] = relationship(back_populates="races")
    divisions: Mapped[list[Division]] = relationship(secondary=race_divisions)
    entries: Mapped[list[Entry]] = relationship(back_populates="race")

    def config(self) -> dict[str, Any]:
        """The evaluator settings of this race, under their API/CLI names."""
        return {"track": self.track, "format": self.format, "laps": self.laps,
                "trials": self.trials, "ranking": self.ranking,
                "off_track_penalty": self.off_track_penalty,
                "collision_penalty": self.collision_penalty, "time_cap": self.time_cap,
                "min_laps": self.min_laps, "seed": self.seed, "obstacles": self.obstacles,
                "conditions": self.conditions,
                # a race on several tracks only: a one-track race's settings read as before
                **({"extra_tracks": [t["track"] for t in self.extra_tracks]}
                   if self.extra_tracks else {}),
                # a head-to-bot race only: the other formats' settings read as before
                **({"bots": list(self.bots)} if self.bots else {})}

    @property
    def all_tracks(self) -> list[dict[str, Any]]:
        """Every track of the race, the first included: ``{"track", "track_digest"}`` each."""
        return [{"track": self.track, "track_digest": self.track_digest},
                *(self.extra_tracks or [])]


class PolicyModel(Base):
    """An uploaded policy file (stored content-addressed by its SHA-256)."""

    __tablename__ = "models"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(80))
    version: Mapped[int] = mapped_column(default=1)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int]
    model_metadata: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    validation: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  #: the validator's summary
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship()


class Entry(Base):
    """A model entered in a race by a racer."""

    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"),
                                         index=True)
    racer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                          index=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disqualified_at: Mapped[dt.datetime | None]
    disqualified_reason: Mapped[str] = mapped_column(sa.Text, default="")

    race: Mapped[Race] = relationship(back_populates="entries")
    racer: Mapped[User] = relationship()
    model: Mapped[PolicyModel] = relationship()
    jobs: Mapped[list[EvaluationJob]] = relationship(back_populates="entry",
                                                     order_by="EvaluationJob.id")

    @property
    def disqualified(self) -> bool:
        """Whether an organizer disqualified this entry."""
        return self.disqualified_at is not None


class Heat(Base):
    """A head-to-head pairing: one job races its entries in seat-swapped heats."""

    __tablename__ = "heats"

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"),
                                         index=True)
    round_no: Mapped[int]
    stage: Mapped[str] = mapped_column(sa.String(16), default="round")  #: round or knockout
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    entry_ids: Mapped[list[int]] = mapped_column(sa.JSON)  #: car order of the job
    positions: Mapped[list[int] | None] = mapped_column(sa.JSON)  #: entry ids, best first
    rated_at: Mapped[dt.datetime | None]  #: when ratings took this heat into account
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    #: ``entry_ids`` as rows, kept in step with it by :meth:`_link_entries`
    entry_links: Mapped[list[HeatEntry]] = relationship(cascade="all, delete-orphan",
                                                        passive_deletes=True)

    @validates("entry_ids")
    def _link_entries(self, _key: str, entry_ids: list[int]) -> list[int]:
        """Whoever sets a heat's entries sets its links too: the two never disagree."""
        self.entry_links = [HeatEntry(entry_id=eid) for eid in dict.fromkeys(entry_ids)]
        return entry_ids


class HeatEntry(Base):
    """An entry drawn in a heat: ``Heat.entry_ids`` as rows, so that the heats of a racer are
    found through an index (a JSON list is indexed differently by each database, if at all).

    Written with the heat (:attr:`Heat.entry_links`); a bulk insert of ``Heat`` rows, which
    skips the ORM, writes these rows itself. Heats made before this table existed were
    backfilled by its migration.
    """

    __tablename__ = "heat_entries"
    __table_args__ = (sa.Index("ix_heat_entries_entry_id_heat_id", "entry_id", "heat_id"),)

    heat_id: Mapped[int] = mapped_column(sa.ForeignKey("heats.id", ondelete="CASCADE"),
                                         primary_key=True)
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("entries.id", ondelete="CASCADE"),
                                          primary_key=True)


class EvaluationJob(Base):
    """One unit of evaluation work, claimed by a worker under a lease."""

    __tablename__ = "evaluation_jobs"
    __table_args__ = (sa.Index("ix_evaluation_jobs_status_queued_at", "status", "queued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(sa.String(16), default=JobKind.TIME_TRIAL)
    entry_id: Mapped[int | None] = mapped_column(sa.ForeignKey("entries.id", ondelete="CASCADE"),
                                                 index=True)
    heat_id: Mapped[int | None] = mapped_column(sa.ForeignKey("heats.id", ondelete="CASCADE"),
                                                index=True)
    status: Mapped[JobStatus] = mapped_column(sa.String(16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=DEFAULT_MAX_ATTEMPTS)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(120))
    lease_expires_at: Mapped[dt.datetime | None]
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    failure_kind: Mapped[FailureKind | None] = mapped_column(sa.String(16))
    failure_reason: Mapped[str] = mapped_column(sa.Text, default="")
    log: Mapped[str] = mapped_column(sa.Text, default="")  #: one line per attempt and event

    entry: Mapped[Entry | None] = relationship(back_populates="jobs")
    heat: Mapped[Heat | None] = relationship()
    result: Mapped[Result | None] = relationship(back_populates="job")


class Result(Base):
    """The outcome of one job (written once: the job id is the idempotency key)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluation_jobs.id", ondelete="CASCADE"),
                                        unique=True)
    entry_id: Mapped[int | None] = mapped_column(sa.ForeignKey("entries.id", ondelete="CASCADE"),
                                                 index=True)
    status: Mapped[str] = mapped_column(sa.String(16))  #: finished, dnf, policy_error
    ranking_time_s: Mapped[float | None]
    ranking_laps: Mapped[int] = mapped_column(default=0)
    best_lap_s: Mapped[float | None]
    off_track_count: Mapped[int] = mapped_column(default=0)
    collision_count: Mapped[int] = mapped_column(default=0)
    penalty_s: Mapped[float] = mapped_column(default=0.0)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  #: the evaluator's result JSON
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    job: Mapped[EvaluationJob] = relationship(back_populates="result")


class Replay(Base):
    """A stored replay of one trial or heat of a job."""

    __tablename__ = "replays"
    __table_args__ = (sa.UniqueConstraint("job_id", "trial"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluation_jobs.id", ondelete="CASCADE"))
    trial: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int]


def conservative_rating(mu: float, sigma: float) -> float:
    """The displayed head-to-head rating: mean minus three standard deviations (an entry is
    ranked by the skill it has very likely shown, so few heats rank low)."""
    return mu - 3.0 * sigma


class Rating(Base):
    """An entry's head-to-head skill in one race (OpenSkill mu and sigma)."""

    __tablename__ = "ratings"
    __table_args__ = (sa.UniqueConstraint("race_id", "entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("entries.id", ondelete="CASCADE"))
    mu: Mapped[float]
    sigma: Mapped[float]
    heats: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def conservative(self) -> float:
        """The displayed rating (:func:`conservative_rating`)."""
        return conservative_rating(self.mu, self.sigma)


class RatingHistory(Base):
    """An entry's rating right after one heat moved it (the rating's history, per heat).

    Written by ``league.rules.headtohead.record_heat`` next to the ``Rating`` it updates;
    races rated before this table existed were backfilled by replaying their heats.
    """

    __tablename__ = "rating_history"
    __table_args__ = (sa.UniqueConstraint("heat_id", "entry_id"),
                      sa.Index("ix_rating_history_race_id_entry_id", "race_id", "entry_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(sa.ForeignKey("entries.id", ondelete="CASCADE"))
    heat_id: Mapped[int] = mapped_column(sa.ForeignKey("heats.id", ondelete="CASCADE"))
    round_no: Mapped[int]  #: the heat's round (or knockout stage number)
    stage: Mapped[str] = mapped_column(sa.String(16))  #: the heat's stage
    mu: Mapped[float]
    sigma: Mapped[float]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RacePoints(Base):
    """Season points a racer earned in a closed race (awarded once, at closing)."""

    __tablename__ = "race_points"
    __table_args__ = (sa.UniqueConstraint("race_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)  #: a racer's profile lists their points
    division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("divisions.id"))
    position: Mapped[int | None]  #: within the division; None: took part, not ranked
    points: Mapped[int]
    awarded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DivisionMove(Base):
    """A promotion or relegation applied when a season was finalized."""

    __tablename__ = "division_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    season_id: Mapped[int] = mapped_column(sa.ForeignKey("seasons.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    from_division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("divisions.id"))
    to_division_id: Mapped[int | None] = mapped_column(sa.ForeignKey("divisions.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))  #: promoted or relegated


class NotificationEvent(enum.StrEnum):
    """What a racer may be told about (a new kind of event is one more value here, a
    sentence in ``league.rules.notifications`` and its call where the event happens)."""

    EVALUATION_FINISHED = "evaluation_finished"  #: one of their entries has a result
    EVALUATION_FAILED = "evaluation_failed"  #: one of their entries' evaluations failed
    LOST_TOP_SPOT = "lost_top_spot"  #: someone took the lead of a race they led
    RACE_OPENED = "race_opened"  #: a race of a league they belong to opened
    RACE_CLOSED = "race_closed"  #: a race of a league they belong to closed
    LIVE_EVENT_SOON = "live_event_soon"  #: a live event of their league starts in 10 minutes


class NotificationChannel(enum.StrEnum):
    """How a racer is told."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    """Where one queued notification stands."""

    PENDING = "pending"  #: waiting for its next attempt
    SENT = "sent"
    FAILED = "failed"  #: given up after its last attempt, or refused for good


class NotificationSettings(Base):
    """What one user wants to be told, and how; their webhook."""

    __tablename__ = "notification_settings"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    #: ``{event: [channel, ...]}`` for the events they chose (``NotificationEvent`` values)
    subscriptions: Mapped[dict[str, list[str]]] = mapped_column(
        sa.JSON, default=dict, server_default=sa.text("'{}'"))
    webhook_url: Mapped[str] = mapped_column(sa.String(2000), default="", server_default="")
    #: signs each webhook body (HMAC-SHA256); generated, shown on the settings page
    webhook_secret: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One message queued for one user on one channel, delivered by the scheduler."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_status_next_attempt_at", "status",
                               "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    event: Mapped[NotificationEvent] = mapped_column(sa.String(32))
    channel: Mapped[NotificationChannel] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  #: the event's fields
    status: Mapped[DeliveryStatus] = mapped_column(sa.String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str] = mapped_column(sa.Text, default="")


class LiveEventKind(enum.StrEnum):
    """What a live event airs (``league.rules.live``)."""

    FINALS = "finals"  #: a head-to-head race's knockout finals, raced at the event
    SHOWCASE = "showcase"  #: the best runs of a time trial, one after another


class LiveEventStatus(enum.StrEnum):
    """Where a live event stands."""

    SCHEDULED = "scheduled"  #: before its start time
    LIVE = "live"  #: started: heats being raced and aired
    FINISHED = "finished"  #: everything aired; the event page is its record
    CANCELLED = "cancelled"  #: called off by its organizer, or impossible (``note`` says why)


class LiveEvent(Base):
    """A race's live event: a start time, a title and what it airs (docs/LIVE.md)."""

    __tablename__ = "live_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    race_id: Mapped[int] = mapped_column(sa.ForeignKey("races.id", ondelete="CASCADE"),
                                         index=True)
    title: Mapped[str] = mapped_column(sa.String(80))
    kind: Mapped[LiveEventKind] = mapped_column(sa.String(16))
    size: Mapped[int] = mapped_column(default=0)  #: showcase: the leaderboard's best N
    starts_at: Mapped[dt.datetime]
    delay_s: Mapped[int] = mapped_column(default=5)  #: how far behind the simulation viewers are
    status: Mapped[LiveEventStatus] = mapped_column(sa.String(16),
                                                    default=LiveEventStatus.SCHEDULED)
    note: Mapped[str] = mapped_column(sa.Text, default="")  #: why it was cancelled
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[dt.datetime | None]  #: when "starts in 10 minutes" was queued
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]

    race: Mapped[Race] = relationship()
    slots: Mapped[list[LiveSlot]] = relationship(order_by="LiveSlot.position",
                                                 cascade="all, delete-orphan",
                                                 passive_deletes=True)


class LiveSlot(Base):
    """One run of a live event's running order: a stored replay and when it is on air."""

    __tablename__ = "live_slots"
    __table_args__ = (sa.UniqueConstraint("event_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("live_events.id", ondelete="CASCADE"),
                                          index=True)
    position: Mapped[int]  #: 1, 2, ... in airing order
    title: Mapped[str] = mapped_column(sa.String(80))
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluation_jobs.id", ondelete="CASCADE"))
    trial: Mapped[int]  #: the replay of the job (``Replay.trial``)
    heat_id: Mapped[int | None] = mapped_column(sa.ForeignKey("heats.id", ondelete="CASCADE"))
    frames: Mapped[int]
    duration_s: Mapped[float]
    on_air_at: Mapped[dt.datetime | None]  #: the wall-clock moment of its race time 0
    aired_at: Mapped[dt.datetime | None]  #: when its broadcast ended
