"""Replays as the website shows them: find one, decide who may see it, and what it shows.

A replay belongs to an evaluation job: the job of an entry (a time trial, one replay per
trial) or of a head-to-head heat (one replay per heat it ran). Its race is the entry's race or
the heat's race, and the replay is visible exactly when its race's league is: replays of
public and unlisted races are public; those of a private league are seen by its members and
the admins only. Anything else looks like a missing replay (:class:`NotFound`), and a lookup
says nothing about what exists (no such evaluation, trial or replay) before it has checked
that the viewer may see the race.

**Telemetry.** A replay shows every car's state to whoever may see it, but a car's commands
(the steering, speed and discrete action its policy asked for) are what a rival would need to
copy the policy, so only the racer of the car's entry and the league's organizers (and the
admins) get them (:func:`replay_copy`). The stored replay keeps every car's commands and is
served as it is to a viewer who may see them all; anyone else gets it rewritten without the
other cars' commands (:func:`evaluator.replay.without_commands`), kept in this process by
stored digest and cars kept (rewriting a 3-lap replay takes 2 to 30 milliseconds, nearly all
of it gzip).

**Secrets.** While a race's seed is secret from the viewer
(:func:`league.rules.races.seed_shown`), the copy served has no seed (header ``seed`` 0, the
settings' seed in ``meta`` null): a trial's seed would let a racer rerun the league's exact
runs at home. While a race's mystery track is hidden from the viewer
(:func:`league.rules.races.track_hidden`), its replays are not found at all, with a message
saying they are shown once the race closes: every replay draws its track.

**Comparing two runs.** Any time-trial run of a race can be watched against another run of the
same race, its *ghost* (:func:`compare`): the racer's earlier version, the leader, any other
leaderboard row, another trial of the same evaluation. :func:`ghost_choices` lists the runs a
viewer is offered. Heats are not compared: a heat is already cars racing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evaluator import replay as replay_format
from evaluator.errors import ReplayError
from league.errors import InvalidInput, NotFound, StorageError
from league.models import Entry, EvaluationJob, Heat, JobKind, Race, Replay, Result, User
from league.read.cache import Lru, race_leaderboard_cached
from league.rules.leagues import can_manage, can_view
from league.rules.live import heat_on_air
from league.rules.races import seed_shown, track_hidden
from league.storage import Storage

REPLAY_SUFFIX = ".pdkreplay"  #: file name extension of a downloaded replay

MAX_TRIAL_NUMBER = 1000  # no evaluation has more trials or heats than this
GHOST_LEADERS = 10  #: leaderboard rows offered as ghosts, from the leader down
GHOST_OWN_RUNS = 20  #: the viewer's own entries offered as ghosts, newest first
REWRITTEN_REPLAYS = 128  #: replays kept rewritten without commands, per process (~10 KB each)


@dataclass(frozen=True)
class CarLine:
    """One car of a replay: who drove it and how its run in this trial or heat went."""

    index: int  #: the car's index in the replay (its colour)
    racer: str | None  #: the racer's user name (None when the entry is gone)
    model: str  #: the model's name and version
    entry_id: int | None
    status: str | None = None  #: finished, dnf, policy_error; None without a result
    position: int | None = None  #: finishing position in a heat
    laps: int | None = None
    total_time_s: float | None = None
    best_lap_s: float | None = None
    off_track_count: int = 0
    collision_count: int = 0
    penalty_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class ReplayContext:
    """A visible replay with what its page shows around the viewer."""

    replay: Replay
    job: EvaluationJob
    race: Race
    entry: Entry | None  #: the entry of a time-trial job
    heat: Heat | None  #: the heat of a head-to-head job
    trials: Sequence[Replay]  #: every replay of the job, by trial (or heat) number
    ranked_trial: int | None  #: the trial the entry is ranked by (time trials)
    cars: Sequence[CarLine]
    ghost: ReplayContext | None = None  #: the run this one is compared with (:func:`compare`)
    #: a race on several tracks: the track of each trial, by trial number (else empty)
    trial_tracks: Mapping[int, str] = dataclasses.field(default_factory=dict)

    @property
    def is_heat(self) -> bool:
        """Whether this is a head-to-head heat (cars racing each other)."""
        return self.heat is not None

    @property
    def trial_label(self) -> str:
        """What one run of the job is called: a trial or a heat."""
        return "Heat" if self.is_heat else "Trial"

    @property
    def labels(self) -> list[dict[str, str]]:
        """What the viewer's legend calls each car, in replay order."""
        return [{"name": c.racer or c.model, "model": c.model} for c in self.cars]

    @property
    def run_label(self) -> str:
        """The run in a few words: ``alice · fast v3 · trial 2``."""
        car = self.cars[0] if self.cars else None
        who = " · ".join(x for x in (car.racer, car.model) if x) if car is not None else ""
        return f"{who} · {self.trial_label.lower()} {self.replay.trial}".lstrip(" ·")

    @property
    def filename(self) -> str:
        """The download's file name: ``race-12-entry-34-trial-2.pdkreplay``."""
        owner = (f"heat-{self.heat.id}" if self.heat is not None
                 else f"entry-{self.job.entry_id}")
        return (f"race-{self.race.id}-{owner}-{self.trial_label.lower()}-"
                f"{self.replay.trial}{REPLAY_SUFFIX}")


def job_replays(session: Session, job: EvaluationJob) -> Sequence[Replay]:
    """Every stored replay of ``job``, by trial (or heat) number."""
    return session.scalars(sa.select(Replay).where(Replay.job_id == job.id)
                           .order_by(Replay.trial)).all()


def race_of(session: Session, job: EvaluationJob) -> Race | None:
    """The race a job evaluates for: its entry's race, or its heat's race."""
    if job.entry is not None:
        return job.entry.race
    if job.heat is not None:
        return session.get(Race, job.heat.race_id)
    return None


def can_view_replay(session: Session, replay: Replay, user: User | None) -> bool:
    """Whether ``user`` may watch ``replay``: they may see the league of its race."""
    job = session.get(EvaluationJob, replay.job_id)
    race = None if job is None else race_of(session, job)
    return race is not None and can_view(session, race.league, user)


def get_replay(session: Session, replay_id: int, viewer: User | None = None) -> ReplayContext:
    """The replay ``replay_id`` and its context, if ``viewer`` may watch it."""
    replay = session.get(Replay, replay_id)
    if replay is None:
        raise NotFound(f"no replay {replay_id}")
    job = session.get(EvaluationJob, replay.job_id)
    if job is None:
        raise NotFound(f"no replay {replay_id}")
    _check_aired(session, job)
    return _context(session, job, replay, viewer)


def job_replay(session: Session, job_id: int, viewer: User | None = None,
               trial: int | None = None) -> ReplayContext:
    """The replay of trial (or heat) ``trial`` of job ``job_id``, if ``viewer`` may watch it.

    Without ``trial``: the trial the result is ranked by, else the first one there is. An
    evaluation the viewer may not see is "no evaluation", whatever its trials and replays.
    """
    job = session.get(EvaluationJob, job_id)
    race = None if job is None else race_of(session, job)
    if job is None or race is None or not can_view(session, race.league, viewer):
        raise NotFound(f"no evaluation {job_id}")
    _check_track_shown(session, race, viewer)
    _check_aired(session, job)
    if trial is not None and not 1 <= trial <= MAX_TRIAL_NUMBER:
        raise NotFound(f"no {wanted_label(job)} {trial} of evaluation {job_id}")
    wanted = trial if trial is not None else default_trial(job)
    replay = session.scalar(sa.select(Replay).where(Replay.job_id == job.id,
                                                    Replay.trial == wanted))
    if replay is None and trial is None:  # no replay of the ranked trial: the first one
        replay = session.scalar(sa.select(Replay).where(Replay.job_id == job.id)
                                .order_by(Replay.trial).limit(1))
    if replay is None:
        raise NotFound(f"evaluation {job_id} has no replay of {wanted_label(job)} {wanted}")
    return _context(session, job, replay, viewer)


def _check_track_shown(session: Session, race: Race, viewer: User | None) -> None:
    """:class:`NotFound`, saying why, while ``race``'s mystery track is hidden from
    ``viewer`` (:func:`league.rules.races.track_hidden`): a replay draws the track."""
    if track_hidden(session, race, viewer):
        raise NotFound(f"the replays of {race.name} are hidden until the race closes: its "
                       "track is a mystery until then")


def _check_aired(session: Session, job: EvaluationJob) -> None:
    """:class:`NotFound`, saying where to watch it, while ``job``'s heat waits for its
    broadcast in a live event (:func:`league.rules.live.heat_on_air`)."""
    event = heat_on_air(session, job)
    if event is not None:
        raise NotFound(f"this heat is raced in the live event \"{event.title}\": its replay "
                       f"opens when its broadcast ends (watch at /events/{event.id}/watch)")


def default_trial(job: EvaluationJob) -> int:
    """The trial a job's replay opens on: the ranked trial of a time trial, else the first."""
    if job.kind == JobKind.TIME_TRIAL and job.result is not None:
        ranked = job.result.data.get("ranked_trial")
        if isinstance(ranked, int) and not isinstance(ranked, bool) and ranked >= 1:
            return ranked
    return 1


def wanted_label(job: EvaluationJob) -> str:
    """``heat`` or ``trial``: what one replay of ``job`` is called."""
    return "heat" if job.kind == JobKind.HEAT else "trial"


# ---------------------------------------------------------------------------- telemetry
@dataclass(frozen=True)
class ReplayCopy:
    """The copy of a stored replay one viewer is served: which cars' commands it keeps."""

    sha256: str  #: the stored replay's digest
    cars: int  #: cars in the replay
    commands: frozenset[int]  #: indices of the cars whose commands the viewer may see
    seedless: bool = False  #: the race's seed is secret from the viewer: the copy has none

    @property
    def stored(self) -> bool:
        """Whether the copy is the stored replay itself (every car's commands kept, and the
        seed the viewer may see)."""
        return self.commands >= frozenset(range(self.cars)) and not self.seedless

    @property
    def etag(self) -> str:
        """A strong validator: the stored digest, plus which commands a rewritten copy keeps
        and whether it lost its seed (so a browser never reuses one viewer's copy for
        another's, nor a copy from before the seed was shown)."""
        if self.stored:
            return self.sha256
        kept = "-".join(str(i) for i in sorted(self.commands)) or "none"
        return f"{self.sha256}-commands-{kept}" + ("-seedless" if self.seedless else "")


_rewritten: Lru[tuple[str, frozenset[int], bool], bytes] = Lru(REWRITTEN_REPLAYS)


def command_cars(session: Session, ctx: ReplayContext, viewer: User | None) -> frozenset[int]:
    """The cars of ``ctx``'s replay whose commands ``viewer`` may see.

    0. Everyone sees every car's in a league whose organizers made its telemetry public.
    1. The league's organizers and the admins see every car's.
    2. A racer sees the cars of their own entries (a time trial's one car, their car in a
       heat), and no other car's.
    3. Anyone else, signed in or not, sees none.
    """
    if ctx.race.league.telemetry_public:
        return frozenset(c.index for c in ctx.cars)
    if viewer is None:
        return frozenset()
    if can_manage(session, ctx.race.league, viewer):
        return frozenset(c.index for c in ctx.cars)
    by_entry = {c.entry_id: c.index for c in ctx.cars if c.entry_id is not None}
    if not by_entry:
        return frozenset()
    own = session.scalars(sa.select(Entry.id).where(Entry.id.in_(by_entry),
                                                    Entry.racer_id == viewer.id))
    return frozenset(by_entry[entry_id] for entry_id in own)


def replay_copy(session: Session, ctx: ReplayContext, viewer: User | None) -> ReplayCopy:
    """Which copy of ``ctx``'s replay ``viewer`` is served (:func:`command_cars`; without the
    seed while the race's seed is secret from the viewer, :func:`league.rules.races.seed_shown`)."""
    return ReplayCopy(ctx.replay.sha256, len(ctx.cars), command_cars(session, ctx, viewer),
                      seedless=not seed_shown(session, ctx.race, viewer))


def copy_bytes(storage: Storage, copy: ReplayCopy) -> bytes:
    """The bytes of ``copy``: the stored replay, or the replay rewritten without the commands
    of the cars the copy leaves out (kept in this process, :data:`REWRITTEN_REPLAYS`).

    A stored replay that cannot be read is a :class:`StorageError` unless it is served as it
    is: rewriting is the only way to be sure the commands are gone.
    """
    if copy.stored:
        return storage.get("replays", copy.sha256)
    key = (copy.sha256, copy.commands, copy.seedless)
    data = _rewritten.get(key)
    if data is None:
        data = _rewrite(storage.get("replays", copy.sha256), copy.commands, copy.seedless)
        _rewritten.put(key, data)
    return data


def _rewrite(data: bytes, keep: frozenset[int], seedless: bool) -> bytes:
    """The stored replay ``data`` rewritten with only the commands of cars ``keep`` and,
    when ``seedless``, without its seed: the header's ``seed`` is 0 and every ``seed`` in
    its ``meta`` (the race settings) null."""
    try:
        replay = replay_format.without_commands(replay_format.decode(data), keep)
        if seedless:
            replay = dataclasses.replace(replay, seed=0,
                                         meta=_without_seeds(dict(replay.meta)))
        return replay_format.encode(replay)
    except ReplayError as err:
        raise StorageError(f"the replay cannot be read: {err}") from err


def _without_seeds(value: Any) -> Any:
    """``value`` with every ``seed`` of every object in it set to None."""
    if isinstance(value, Mapping):
        return {k: None if k == "seed" else _without_seeds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_seeds(v) for v in value]
    return value


# ---------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class GhostChoice:
    """A run the viewer may add as a ghost, as the replay page's picker offers it."""

    replay_id: int
    group: str  #: "This evaluation", "Your runs" or "Leaderboard"
    title: str  #: e.g. ``1. alice · fast v3``
    time_s: float | None  #: the run's time (its total, or its ranking time on the leaderboard)


def compare(run: ReplayContext, ghost: ReplayContext) -> ReplayContext:
    """``run`` with ``ghost`` as the run it is compared with.

    Both must be time-trial runs (one car each) of the same race, and not the same replay;
    otherwise :class:`InvalidInput` says why.
    """
    if run.is_heat or ghost.is_heat:
        raise InvalidInput("heats cannot be compared: a heat already races its cars together")
    if ghost.race.id != run.race.id:
        raise InvalidInput(f"replay {ghost.replay.id} is a run of another race "
                           f"({ghost.race.name}): only runs of {run.race.name} compare")
    if ghost.replay.id == run.replay.id:
        raise InvalidInput("a run cannot be compared with itself")
    track, other = run.trial_tracks.get(run.replay.trial), ghost.trial_tracks.get(
        ghost.replay.trial)
    if track != other:
        raise InvalidInput(f"replay {ghost.replay.id} is a run on another track ({other}): "
                           f"only runs on {track} compare")
    return dataclasses.replace(run, ghost=ghost)


def ghost_choices(session: Session, run: ReplayContext,
                  viewer: User | None) -> list[GhostChoice]:
    """The runs offered as ghosts for ``run``: the other trials of its evaluation, the
    viewer's own entries in the race (newest first), and the leaderboard's first
    :data:`GHOST_LEADERS` rows; each once, never ``run`` itself. None for a heat."""
    if run.is_heat:
        return []
    choices: list[GhostChoice] = []
    seen = {run.replay.id}
    track = run.trial_tracks.get(run.replay.trial)  # several tracks: runs on this one only

    def offer(replay: Replay | None, group: str, title: str, time_s: float | None,
              job: EvaluationJob | None = None) -> None:
        if replay is not None and track is not None \
                and _run_track(job or run.job, replay.trial) != track:
            return
        if replay is not None and replay.id not in seen:
            seen.add(replay.id)
            choices.append(GhostChoice(replay.id, group, title, time_s))

    times = _trial_times(run.job)
    for r in run.trials:
        offer(r, "This evaluation", f"Trial {r.trial}", times.get(r.trial))
    if viewer is not None:
        own = session.scalars(
            sa.select(Entry).where(Entry.race_id == run.race.id, Entry.racer_id == viewer.id)
            .order_by(Entry.submitted_at.desc(), Entry.id.desc()).limit(GHOST_OWN_RUNS)).all()
        ranked = _ranked_replays(session, latest_result_jobs(session, [e.id for e in own]))
        for e in own:
            found = ranked.get(e.id)
            if found is not None:
                job, replay = found
                offer(replay, "Your runs", f"{e.model.name} v{e.model.version}",
                      _trial_times(job).get(replay.trial), job)
    leaders = [row for row in race_leaderboard_cached(session, run.race)[:GHOST_LEADERS]
               if row.rank is not None]
    by_job = _ranked_replays(session, {row.entry_id: row.job_id for row in leaders})
    for row in leaders:
        found = by_job.get(row.entry_id)
        offer(found[1] if found else None, "Leaderboard", f"{row.rank}. {row.racer} · {row.model}",
              row.time_s, found[0] if found else None)
    return choices


def _trial_times(job: EvaluationJob) -> dict[int, float]:
    """A time-trial job's total time per trial, from its result (finished trials only)."""
    data: Mapping[str, Any] = job.result.data if job.result is not None else {}
    out: dict[int, float] = {}
    for block in data.get("trials") or []:
        if isinstance(block, dict) and block.get("status") == "finished":
            trial, time_s = _opt(block, "trial", int), _opt(block, "total_time_s", float)
            if trial is not None and time_s is not None:
                out[trial] = time_s
    return out


def latest_result_jobs(session: Session, entry_ids: Sequence[int]) -> dict[int, int]:
    """Each entry's newest time-trial job that has a result (the run it is compared by):
    {entry id: job id}, entries without one left out."""
    if not entry_ids:
        return {}
    rows = session.execute(
        sa.select(EvaluationJob.entry_id, sa.func.max(EvaluationJob.id))
        .join(Result, Result.job_id == EvaluationJob.id)
        .where(EvaluationJob.entry_id.in_(entry_ids), EvaluationJob.kind == JobKind.TIME_TRIAL)
        .group_by(EvaluationJob.entry_id)).all()
    return {entry_id: job_id for entry_id, job_id in rows if entry_id is not None}


def _ranked_replays(session: Session,
                    jobs: Mapping[int, int]) -> dict[int, tuple[EvaluationJob, Replay]]:
    """For {key: job id}, each job and the replay it opens on (:func:`default_trial`, else
    its first replay): {key: (job, replay)}, keys whose job has no replay left out."""
    if not jobs:
        return {}
    by_id = {j.id: j for j in session.scalars(
        sa.select(EvaluationJob).where(EvaluationJob.id.in_(set(jobs.values()))))}
    stored: dict[int, dict[int, Replay]] = {}
    for r in session.scalars(sa.select(Replay).where(Replay.job_id.in_(set(jobs.values())))
                             .order_by(Replay.trial)):
        stored.setdefault(r.job_id, {})[r.trial] = r
    out = {}
    for key, job_id in jobs.items():
        job, trials = by_id.get(job_id), stored.get(job_id)
        if job is not None and trials:
            out[key] = (job, trials.get(default_trial(job)) or next(iter(trials.values())))
    return out


# ------------------------------------------------------------------------------- context
def _context(session: Session, job: EvaluationJob, replay: Replay,
             viewer: User | None) -> ReplayContext:
    """The replay's context, or :class:`NotFound` when the viewer may not see its race."""
    race = race_of(session, job)
    if race is None or not can_view(session, race.league, viewer):
        raise NotFound(f"no replay {replay.id}")
    _check_track_shown(session, race, viewer)
    trials = job_replays(session, job)
    data: Mapping[str, Any] = job.result.data if job.result is not None else {}
    ranked = data.get("ranked_trial")
    if job.heat is not None:
        cars = _heat_cars(session, job.heat, data, replay.trial)
    else:
        cars = [_car_line(0, job.entry, _trial_block(data.get("trials"), replay.trial))]
    return ReplayContext(replay=replay, job=job, race=race, entry=job.entry, heat=job.heat,
                         trials=list(trials),
                         ranked_trial=ranked if isinstance(ranked, int) else None,
                         cars=cars, trial_tracks=_trial_tracks(data))


def _run_track(job: EvaluationJob, trial: int) -> str | None:
    """The track of trial ``trial`` of ``job`` when its race has several (else None)."""
    return _trial_tracks(job.result.data if job.result is not None else {}).get(trial)


def _trial_tracks(data: Mapping[str, Any]) -> dict[int, str]:
    """The track of each trial of a result on several tracks (its trials say); else empty."""
    if not data.get("tracks"):
        return {}
    return {t["trial"]: t["track"] for t in data.get("trials") or []
            if isinstance(t, dict) and isinstance(t.get("trial"), int)
            and isinstance(t.get("track"), str)}


def _heat_cars(session: Session, heat: Heat, data: Mapping[str, Any],
               trial: int) -> list[CarLine]:
    """A heat's cars in replay order (``Heat.entry_ids``), with their run in heat ``trial``."""
    blocks = data.get("cars")
    lines = []
    for i, entry_id in enumerate(heat.entry_ids):
        block = blocks[i] if isinstance(blocks, list) and i < len(blocks) else None
        trials = block.get("trials") if isinstance(block, dict) else None
        lines.append(_car_line(i, session.get(Entry, entry_id), _trial_block(trials, trial),
                               entry_id))
    return lines


def _trial_block(trials: Any, trial: int) -> Mapping[str, Any]:
    """The result block of trial ``trial`` in a list of trial blocks (empty when absent)."""
    if isinstance(trials, list):
        for block in trials:
            if isinstance(block, dict) and block.get("trial") == trial:
                return block
    return {}


def _car_line(index: int, entry: Entry | None, block: Mapping[str, Any],
              entry_id: int | None = None) -> CarLine:
    """One car's line: its racer and model, and its trial's figures from the result."""
    if entry is None:
        racer, model = None, f"entry {entry_id}" if entry_id is not None else "unknown"
    else:
        racer, model = entry.racer.name, f"{entry.model.name} v{entry.model.version}"
        entry_id = entry.id
    return CarLine(
        index=index, racer=racer, model=model, entry_id=entry_id,
        status=_opt(block, "status", str), position=_opt(block, "position", int),
        laps=_opt(block, "laps_completed", int),
        total_time_s=_opt(block, "total_time_s", float),
        best_lap_s=_opt(block, "best_lap_s", float),
        off_track_count=_opt(block, "off_track_count", int) or 0,
        collision_count=_opt(block, "collision_count", int) or 0,
        penalty_s=_opt(block, "penalty_s", float) or 0.0,
        reason=_opt(block, "reason", str) or "")


def _opt(block: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    """``block[key]`` when it is a ``kind`` (ints count as floats), else None."""
    value = block.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if kind is float and isinstance(value, int):
        return float(value)
    return value if isinstance(value, kind) else None
