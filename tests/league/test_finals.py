"""Knockout finals: ending a head-to-head race with a knockout races its bracket, then closes.

Domain tests on both backends (close now or the closing time → finals → bracket heats queued
→ heats delivered → closed with points from the final order; too few rated entries; doing it
twice; a season waiting for its race's finals; the data migration), then real scheduler and
worker processes racing a bracket, the scheduler killed and restarted half way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from league.db import (
    alembic_config,
    make_engine,
    session_factory,
    transaction,
    upgrade_database,
)
from league.errors import Conflict
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    JobStatus,
    Race,
    RacePoints,
    RaceStatus,
    Rating,
    SeasonStatus,
    User,
    utcnow,
)
from league.rules import headtohead as h2h
from league.rules import jobs, knockout, seasons, submissions
from league.storage import Storage
from tests.support.live import knockout_heats, knockout_race
from tests.support.processes import Processes, league_processes

if TYPE_CHECKING:
    from conftest import Database, Factory

ROOT = Path(__file__).resolve().parents[2]
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
POINTS = [10, 6, 4, 2]
MIGRATION_BEFORE = "0e66a7ff40d6"  # the revision before races had finals


def _job(session: Session, heat: Heat) -> EvaluationJob:
    return session.scalars(sa.select(EvaluationJob).where(EvaluationJob.heat_id == heat.id)
                           ).one()


def _deliver(session: Session, storage: Storage, heat: Heat, winner: Entry) -> None:
    """What a worker's delivery does: the job's result, then the heat's order."""
    seat = heat.entry_ids.index(winner.id)
    result = {"format": "head-to-head", "status": "finished", "positions": [seat, 1 - seat],
              "cars": [{"status": "finished"}, {"status": "finished"}], "trials": []}
    assert jobs.complete_job(session, _job(session, heat).id, "worker", result, [], storage)
    h2h.record_heat(session, heat, result)


def _points(session: Session, race: Race) -> dict[int, tuple[int | None, int]]:
    return {p.user_id: (p.position, p.points) for p in session.scalars(
        sa.select(RacePoints).where(RacePoints.race_id == race.id))}


# ------------------------------------------------------------------ the whole way

@pytest.mark.parametrize("how", ["close-now", "closing-time"])
def test_ending_the_window_races_the_knockout_then_closes(session: Session, make: Factory,
                                                          storage: Storage, how: str) -> None:
    race, e = knockout_race(session, make, unrated=1)  # e[4] never raced a heat: outside, unranked
    (rating_heat,) = h2h.create_heats(session, race, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                                      [(e[0].id, e[4].id)], make.now)
    if how == "close-now":
        assert seasons.close_race_now(session, race, make.organizer(session, race.league),
                                      make.now) == []
        assert (race.status, race.closes_at) == (RaceStatus.FINALS, make.now)
        round_job = _job(session, rating_heat)
        assert round_job.status == JobStatus.CANCELLED  # closing now cancels what is queued
        assert "the race went to its knockout finals" in round_job.log
        with pytest.raises(Conflict, match="closed"):  # the window is over
            submissions.submit_entry(session, storage, race, make.racer(session, "late"),
                                     make.policy(), now=make.now + MIN)
    else:
        race.closes_at = make.now
        _job(session, rating_heat).status = JobStatus.SUCCEEDED  # raced in time
    assert h2h.due_rounds(session, make.now) == []
    assert _points(session, race) == {}

    assert seasons.close_due_races(session, make.now + MIN) == []
    assert race.status == RaceStatus.FINALS and race.closes_at == make.now
    semis = knockout_heats(session, race)
    assert [(h.stage, h.entry_ids) for h in semis] == [("semifinal", [e[0].id, e[3].id]),
                                                       ("semifinal", [e[1].id, e[2].id])]
    assert all(_job(session, h).status == JobStatus.QUEUED for h in semis)
    assert seasons.close_due_races(session, make.now + MIN) == []  # the semifinals race
    assert len(knockout_heats(session, race)) == 2

    _deliver(session, storage, semis[0], e[3])  # seed 4 beats seed 1
    _deliver(session, storage, semis[1], e[2])  # seed 3 beats seed 2
    assert seasons.close_due_races(session, make.now + 2 * MIN) == []
    final = knockout_heats(session, race)[2]
    assert (final.stage, final.entry_ids) == ("final", [e[3].id, e[2].id])
    assert _points(session, race) == {}  # nothing awarded while the final is to be raced

    _deliver(session, storage, final, e[3])
    assert seasons.close_due_races(session, make.now + 3 * MIN) == [race]
    assert (race.status, race.closed_at) == (RaceStatus.CLOSED, make.now + 3 * MIN)
    # The bracket's order, not the rating table's (which had e[0] first).
    assert _points(session, race) == {e[3].racer_id: (1, 10), e[2].racer_id: (2, 6),
                                      e[0].racer_id: (3, 4), e[1].racer_id: (4, 2),
                                      e[4].racer_id: (None, 0)}


def test_the_seeding_waits_for_running_rating_heats(session: Session, make: Factory,
                                                    storage: Storage) -> None:
    race, e = knockout_race(session, make, rated=3, unrated=1)  # three rated: a bracket of 2 now
    (running,) = h2h.create_heats(session, race, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                                  [(e[2].id, e[3].id)], make.now)
    _job(session, running).status = JobStatus.RUNNING
    seasons.close_race_now(session, race, make.organizer(session, race.league), make.now)
    assert race.status == RaceStatus.FINALS and _job(session, running).status == "running"
    assert seasons.advance_race(session, race.id, make.now) == seasons.Step.WAITING
    assert knockout_heats(session, race) == []
    _deliver(session, storage, running, e[3])  # the newcomer is rated: four make semifinals
    assert seasons.advance_race(session, race.id, make.now) == seasons.Step.STAGE_PLANNED
    semis = knockout_heats(session, race)
    assert [h.stage for h in semis] == ["semifinal", "semifinal"]
    assert {x for h in semis for x in h.entry_ids} == {x.id for x in e}


# ------------------------------------------------------------------ too few rated entries

@pytest.mark.parametrize("how", ["close-now", "closing-time"])
@pytest.mark.parametrize("rated", [0, 1])
def test_too_few_rated_entries_close_without_finals(session: Session, make: Factory,
                                                    how: str, rated: int) -> None:
    race, e = knockout_race(session, make, rated=rated, unrated=2)
    plan = knockout.finals_plan(session, race)
    assert plan.size == 0
    assert plan.note == (f"Only {rated} racer(s) have a rating, too few for the knockout (it "
                         "needs 2): closing awards the points from the rating table at once, "
                         "without finals.")
    if how == "close-now":
        points = seasons.close_race_now(session, race, make.organizer(session, race.league),
                                        make.now)
        assert len(points) == rated + 2
    else:
        race.closes_at = make.now
        assert seasons.advance_race(session, race.id, make.now) == \
            seasons.Step.CLOSED_WITHOUT_KNOCKOUT
    assert race.status == RaceStatus.CLOSED and knockout_heats(session, race) == []
    expected: dict[int, tuple[int | None, int]] = {x.racer_id: (None, 0) for x in e}
    if rated:
        expected[e[0].racer_id] = (1, 10)
    assert _points(session, race) == expected


def test_finals_plan(session: Session, make: Factory) -> None:
    race, _ = knockout_race(session, make, rated=5, knockout_size=8)
    assert knockout.finals_plan(session, race) == knockout.FinalsPlan(
        4, "Closing runs the knockout finals first: the best 4 rated racers race a bracket "
           "(semifinal, final); the race closes and awards its points when the final is "
           "decided.")
    seasons.close_race_now(session, race, make.organizer(session, race.league), make.now)
    assert knockout.finals_plan(session, race).note.startswith("The knockout finals are being")
    plain = make.race(session, race.league, format="head-to-head", name="No knockout")
    trial = make.race(session, race.league, knockout_size=4, name="A time trial")
    assert knockout.finals_plan(session, plain) == knockout.FinalsPlan(0, "")
    assert knockout.finals_plan(session, trial) == knockout.FinalsPlan(0, "")
    assert seasons.close_race_now(session, trial, make.organizer(session, race.league),
                                  make.now) == []  # no season: closes, awards nothing
    assert trial.status == RaceStatus.CLOSED


# ------------------------------------------------------------------ twice, and restarts

def test_each_step_is_idempotent_and_restart_safe(db: Database, session: Session,
                                                  make: Factory, storage: Storage) -> None:
    """Every step in its own transaction (as a restarted scheduler would run it), each one
    repeated: no stage planned twice, no point awarded twice."""
    race, e = knockout_race(session, make, rated=2)
    organizer = make.organizer(session, race.league)
    session.commit()
    race_id = race.id

    def step(work: Callable[[Session], Any]) -> Any:
        with transaction(db.factory) as s:
            return work(s)

    def close_now(s: Session, at: dt.datetime) -> list[RacePoints]:
        return seasons.close_race_now(s, s.get_one(Race, race_id), s.get_one(User, organizer.id),
                                      at)

    assert step(lambda s: close_now(s, make.now)) == []
    assert step(lambda s: close_now(s, make.now + MIN)) == []  # still in its finals
    assert step(lambda s: s.get_one(Race, race_id).closes_at) == make.now  # moved once
    steps = [step(lambda s: seasons.advance_race(s, race_id, make.now + MIN)) for _ in "ab"]
    assert steps == [seasons.Step.STAGE_PLANNED, seasons.Step.WAITING]
    (final,) = step(lambda s: knockout_heats(s, s.get_one(Race, race_id)))
    step(lambda s: _deliver(s, storage, s.get_one(Heat, final.id), e[1]))
    steps = [step(lambda s: seasons.advance_race(s, race_id, make.now + 2 * MIN))
             for _ in "ab"]
    assert steps == [seasons.Step.CLOSED, seasons.Step.WAITING]
    first = step(lambda s: [p.id for p in close_now(s, make.now + 3 * MIN)])
    assert step(lambda s: [p.id for p in close_now(s, make.now + 4 * MIN)]) == first
    assert step(lambda s: seasons.close_due_races(s, make.now + 5 * MIN)) == []
    session.expire_all()
    assert _points(session, race) == {e[1].racer_id: (1, 10), e[0].racer_id: (2, 6)}
    assert len(knockout_heats(session, race)) == 1
    assert (race.status, race.closed_at) == (RaceStatus.CLOSED, make.now + 2 * MIN)


def test_a_season_waits_for_the_finals_of_its_race(session: Session, make: Factory,
                                                   storage: Storage) -> None:
    race, e = knockout_race(session, make, rated=2, closes_at=make.now + 60 * DAY)
    season = race.season
    assert season is not None
    ended = season.ends_at + MIN
    assert seasons.due_seasons(session, ended) == [season]
    assert seasons.finalize_season(session, season, ended) == []
    assert season.finalized_at is None
    assert (race.status, race.closes_at) == (RaceStatus.FINALS, ended)
    assert seasons.due_seasons(session, ended) == []  # waiting for the finals
    assert seasons.close_due_races(session, ended) == []
    (final,) = knockout_heats(session, race)
    _deliver(session, storage, final, e[1])
    assert seasons.close_due_races(session, ended) == [race]
    assert seasons.due_seasons(session, ended) == [season]
    seasons.finalize_season(session, season, ended)
    assert season.status == SeasonStatus.FINISHED
    rows = seasons.season_standings(session, season, None)
    assert [(r.user_id, r.points) for r in rows] == [(e[1].racer_id, 10), (e[0].racer_id, 6)]


def test_the_migration_marks_running_knockouts_as_finals(empty_url: str,
                                                         make: Factory) -> None:
    """A knockout being raced while the race was still "open" (the version before) is in its
    finals after the upgrade; downgrading makes it open again."""
    # The rows are written with today's models, then the database goes back to the version
    # before (whose downgrade opens the race in its finals again), as an installation of it
    # would have held them.
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    factory = session_factory(engine)
    with transaction(factory) as s:
        playing, _ = knockout_race(s, make, rated=2, knockout_size=2, closes_at=make.now)
        knockout.advance_knockout(s, playing, make.now)
        other = make.race(s, playing.league, format="head-to-head", knockout_size=2,
                          name="Not started")
        other.status = RaceStatus.OPEN
        ids = (playing.id, other.id)
    command.downgrade(alembic_config(empty_url), MIGRATION_BEFORE)
    status = sa.table("races", sa.column("id", sa.Integer), sa.column("status", sa.String))

    def statuses() -> list[str]:
        with engine.connect() as conn:  # plain SQL: the schema may be an older one
            found = dict(conn.execute(sa.select(status.c.id, status.c.status)).all())
        return [found[i] for i in ids]

    assert statuses() == [RaceStatus.OPEN, RaceStatus.OPEN]
    upgrade_database(empty_url)
    assert statuses() == [RaceStatus.FINALS, RaceStatus.OPEN]
    command.downgrade(alembic_config(empty_url), MIGRATION_BEFORE)
    assert statuses() == [RaceStatus.OPEN, RaceStatus.OPEN]
    engine.dispose()


# --------------------------------------------------------------------- real processes
SPEEDS = (1.0, 1.5, 2.0, 2.5)  # seed 1 (best rated) drives slowest: the bracket turns it over


@pytest.fixture
def finals_db(empty_url: str, tmp_path: Path) -> Iterator[tuple[str, Storage, Processes]]:
    """A migrated database, storage, and the processes started on them (killed at the end)."""
    yield from league_processes(empty_url, tmp_path)


def test_real_processes_race_the_bracket_then_close(finals_db: tuple[str, Storage, Processes],
                                                    make: Factory) -> None:
    """An organizer closes a head-to-head race with a knockout of 4 while a scheduler and two
    workers run: the scheduler plans the semifinals and is killed; a new one plans the final
    once the workers have raced them, and closes the race with points from the bracket."""
    url, storage, procs = finals_db
    engine = make_engine(url)
    factory = session_factory(engine)
    with transaction(factory) as s:
        race, _ = knockout_race(s, make, rated=0, opens_at=utcnow() - DAY, closes_at=utcnow() + DAY,
                        heats_per_round=1, round_interval_s=3600)
        race.last_round_at = utcnow()  # no rating round: the ratings below stand
        entries = [submissions.submit_entry(s, storage, race, make.racer(s, f"p{k}"),
                                            make.policy(speed), now=utcnow())
                   for k, speed in enumerate(SPEEDS)]
        for k, entry in enumerate(entries):
            s.add(Rating(race_id=race.id, entry_id=entry.id, mu=40.0 - k, sigma=1.0, heats=5))
        race_id, organizer_id = race.id, race.league.created_by_id
        users = [entry.racer_id for entry in entries]

    def read(query: Callable[[Session], Any]) -> Any:
        with transaction(factory) as s:
            return query(s)

    def planned() -> int:
        return int(read(lambda s: len(knockout_heats(s, s.get_one(Race, race_id)))))

    procs.start("workers", "-m", "league.processes.worker", "--workers", "2")
    procs.start("scheduler-1", "-m", "league.cli", "scheduler")
    assert read(lambda s: seasons.close_race_now(
        s, s.get_one(Race, race_id), s.get_one(User, organizer_id or 0))) == []
    assert read(lambda s: s.get_one(Race, race_id).status) == RaceStatus.FINALS
    procs.wait_for(lambda: planned() >= 2, "the semifinals to be planned")
    procs.kill("scheduler-1")
    procs.start("scheduler-2", "-m", "league.cli", "scheduler")
    procs.wait_for(lambda: read(lambda s: s.get_one(Race, race_id).status) ==
                   RaceStatus.CLOSED, "the race to close")
    assert procs.stop("scheduler-2") == 0, procs.logs()
    assert procs.stop("workers") == 0, procs.logs()

    heats = read(lambda s: [(h.stage, h.entry_ids, h.positions, _job(s, h).status,
                             _job(s, h).log.count("succeeded"))
                            for h in knockout_heats(s, s.get_one(Race, race_id))])
    e = [entry.id for entry in entries]
    assert [(stage, ids) for stage, ids, *_ in heats] == [
        ("semifinal", [e[0], e[3]]), ("semifinal", [e[1], e[2]]), ("final", [e[3], e[2]])]
    assert all(status == JobStatus.SUCCEEDED and once == 1 for *_, status, once in heats)
    assert read(lambda s: _points(s, s.get_one(Race, race_id))) == {
        users[3]: (1, 10), users[2]: (2, 6), users[0]: (3, 4), users[1]: (4, 2)}
    restarted = (procs.dir / "scheduler-2.log").read_text()  # it planned the final, closed
    assert f"knockout stage planned in {race_id}," in restarted
    assert f"closed {race_id}" in restarted
    engine.dispose()
