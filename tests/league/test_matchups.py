"""Rating history and a racer's matchups in a head-to-head race; the history's backfill."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from league.db import alembic_config, make_engine, session_factory, upgrade_database
from league.errors import NotFound
from league.models import (
    Entry,
    EvaluationJob,
    Heat,
    Race,
    RaceStatus,
    Rating,
    RatingHistory,
    Result,
    User,
)
from league.read import matchups
from league.rules import headtohead as h2h

if TYPE_CHECKING:
    from conftest import Factory

MIN = dt.timedelta(minutes=1)
BEFORE_HISTORY = "31eb03b5c50c"  # the revision before rating_history


def _race(session: Session, make: Factory) -> Race:
    race = make.race(session, format="head-to-head", seed=7)
    race.status = RaceStatus.OPEN
    return race


def _outcome(positions: list[int], failed: bool = False) -> dict[str, Any]:
    status = "policy_error" if failed else "finished"
    return {"format": "head-to-head", "positions": positions,
            "cars": [{"status": status} for _ in positions]}


def _play_round(session: Session, race: Race, now: dt.datetime,
                ranking: list[int]) -> list[Heat]:
    """Plan a round and rate its heats: the entry earlier in ``ranking`` wins."""
    heats = h2h.plan_round(session, race, now)
    for heat in heats:
        positions = sorted(range(len(heat.entry_ids)),
                           key=lambda i: ranking.index(heat.entry_ids[i]))
        h2h.record_heat(session, heat, _outcome(positions), now=now)
    return heats


def _history(session: Session) -> list[tuple[int, int, int, str, float, float]]:
    return [(r.entry_id, r.heat_id, r.round_no, r.stage, r.mu, r.sigma) for r in session.scalars(
        sa.select(RatingHistory).order_by(RatingHistory.recorded_at, RatingHistory.id))]


def test_record_heat_keeps_history(session: Session, make: Factory) -> None:
    race = _race(session, make)
    a, b = (make.entry(session, race, make.racer(session, n), make.now + k * MIN)
            for k, n in enumerate(("ann", "bob")))
    for rnd in range(3):
        _play_round(session, race, make.now + rnd * 10 * MIN, [a.id, b.id])
    rows = session.scalars(sa.select(RatingHistory).order_by(RatingHistory.id)).all()
    assert [r.round_no for r in rows] == [1, 1, 2, 2, 3, 3]
    assert {r.stage for r in rows} == {h2h.ROUND_STAGE}
    ratings = {r.entry_id: r for r in session.scalars(sa.select(Rating))}
    for eid in (a.id, b.id):
        last = [r for r in rows if r.entry_id == eid][-1]
        assert (last.mu, last.sigma) == (ratings[eid].mu, ratings[eid].sigma)
        assert len([r for r in rows if r.entry_id == eid]) == ratings[eid].heats


def test_failed_heat_adds_no_history(session: Session, make: Factory) -> None:
    race = _race(session, make)
    for k, n in enumerate(("ann", "bob")):
        make.entry(session, race, make.racer(session, n), make.now + k * MIN)
    (heat,) = h2h.plan_round(session, race, make.now)
    h2h.record_heat(session, heat, _outcome([0, 1], failed=True), now=make.now)
    assert session.scalars(sa.select(RatingHistory)).all() == []


def test_racer_matchups(session: Session, make: Factory) -> None:
    """Ann beats Bob and loses to Cy; her second version restarts her history."""
    race = _race(session, make)
    ann, bob, cy = (make.racer(session, n) for n in ("ann", "bob", "cy"))
    a1 = make.entry(session, race, ann, make.now + MIN)
    b = make.entry(session, race, bob, make.now + 2 * MIN)
    c = make.entry(session, race, cy, make.now + 3 * MIN)
    for rnd in range(2):
        _play_round(session, race, make.now + (rnd + 1) * 10 * MIN, [c.id, a1.id, b.id])
    a2 = make.entry(session, race, ann, make.now + 25 * MIN)  # version 2
    _play_round(session, race, make.now + 30 * MIN, [c.id, a2.id, b.id])

    m = matchups.racer_matchups(session, race, "ann")
    mine = {a1.id, a2.id}
    raced = [h for h in session.scalars(sa.select(Heat).order_by(Heat.rated_at, Heat.id))
             if mine & set(h.entry_ids)]
    assert [h.heat_id for h in m.heats] == [h.id for h in raced]
    record = {o.racer: (o.won, o.lost) for o in m.opponents}
    vs_bob = sum(1 for h in raced if b.id in h.entry_ids)
    vs_cy = sum(1 for h in raced if c.id in h.entry_ids)
    assert vs_bob and vs_cy and record == {"bob": (vs_bob, 0), "cy": (0, vs_cy)}
    assert all(h.position == (1 if h.opponents == ("bob",) else 2) for h in m.heats)
    assert [v.model for v in m.versions] == ["follower v1", "follower v2"]
    assert [p.label for p in m.history] == ["R1", "R2", "R3"]
    assert [p.model for p in m.history] == ["follower v1", "follower v1", "follower v2"]
    assert [v.point for v in m.versions] == [0, 2]
    last = session.scalars(sa.select(Rating).where(Rating.entry_id == a2.id)).one()
    assert (m.history[-1].mu, m.history[-1].sigma) == (last.mu, last.sigma)
    assert m.history[-1].conservative == pytest.approx(last.mu - 3 * last.sigma)
    chart = m.chart()
    assert [p["label"] for p in chart["points"]] == ["R1", "R2", "R3"]
    assert chart["versions"] == [{"model": "follower v1", "point": 0},
                                 {"model": "follower v2", "point": 2}]


def test_one_point_per_round(session: Session, make: Factory) -> None:
    """A newcomer plays extra heats while provisional; the chart keeps the round's last."""
    race = _race(session, make)
    entries = [make.entry(session, race, make.racer(session, f"r{k}"), make.now + k * MIN)
               for k in range(4)]
    _play_round(session, race, make.now + 10 * MIN, [e.id for e in entries])
    m = matchups.racer_matchups(session, race, "r0")
    rows = session.scalars(sa.select(RatingHistory).where(
        RatingHistory.entry_id == entries[0].id).order_by(RatingHistory.id)).all()
    assert len(rows) >= 2 and [p.label for p in m.history] == ["R1"]
    assert (m.history[0].mu, m.history[0].sigma) == (rows[-1].mu, rows[-1].sigma)


@pytest.mark.parametrize("name", ["nobody", "dee"])
def test_racer_without_entry_is_not_found(session: Session, make: Factory, name: str) -> None:
    race = _race(session, make)
    make.racer(session, "dee")
    with pytest.raises(NotFound):
        matchups.racer_matchups(session, race, name)


def test_no_heats_yet(session: Session, make: Factory) -> None:
    race = _race(session, make)
    make.entry(session, race, make.racer(session, "ann"))
    m = matchups.racer_matchups(session, race, "ann")
    assert (m.opponents, m.heats, m.history) == ([], [], [])
    assert [v.point for v in m.versions] == [None] and m.chart()["versions"] == []


def test_backfill_replays_the_rated_heats(empty_url: str, make: Factory) -> None:
    """Downgrading drops the history; upgrading again rebuilds exactly what record_heat wrote,
    skipping the heat in which every car failed."""
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    session = session_factory(engine)()
    try:
        race = _race(session, make)
        ann, bob, cy = (make.racer(session, n) for n in ("ann", "bob", "cy"))
        entries = [make.entry(session, race, u, make.now + k * MIN)
                   for k, u in enumerate((ann, bob, cy))]
        ids = [e.id for e in entries]
        _play_round(session, race, make.now + 10 * MIN, ids)
        failed = h2h.plan_round(session, race, make.now + 20 * MIN)
        for heat in failed:
            job = session.scalars(sa.select(EvaluationJob).where(
                EvaluationJob.heat_id == heat.id)).one()
            session.add(Result(job_id=job.id, status="policy_error",
                               data=_outcome([0, 1], failed=True)))
            h2h.record_heat(session, heat, _outcome([0, 1], failed=True),
                            now=make.now + 20 * MIN)
        _play_round(session, race, make.now + 30 * MIN, list(reversed(ids)))
        v2 = make.entry(session, race, ann, make.now + 35 * MIN)  # a new version, one round
        _play_round(session, race, make.now + 40 * MIN, [*ids, v2.id])
        session.commit()
        live = _history(session)
        assert live and len({r[1] for r in live}) < session.scalar(
            sa.select(sa.func.count()).select_from(Heat))  # the failed heats are not there
        session.close()

        command.downgrade(alembic_config(empty_url), BEFORE_HISTORY)
        assert "rating_history" not in sa.inspect(engine).get_table_names()
        upgrade_database(empty_url)
        assert _history(session) == live
        ratings = {r.entry_id: (r.mu, r.sigma) for r in session.scalars(sa.select(Rating))}
        last = {r[0]: (r[4], r[5]) for r in live}
        assert last == {e: v for e, v in ratings.items() if e in last}
        assert session.scalar(sa.select(sa.func.count()).select_from(Entry)) == 4
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) >= 3
    finally:
        session.close()
        engine.dispose()
