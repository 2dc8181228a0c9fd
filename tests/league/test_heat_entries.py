"""A heat's entry links (``heat_entries``): written with the heat, removed with it, and
backfilled for the heats of an existing database by their migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from league.db import alembic_config, make_engine, session_factory, upgrade_database
from league.models import Heat, HeatEntry, RaceStatus
from league.read import heats as heat_list
from league.rules import headtohead as h2h

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

BEFORE_LINKS = "5b7e2c9d4a13"  # the revision before heat_entries


def _links(session: Session) -> set[tuple[int, int]]:
    return {(h, e) for h, e in session.execute(sa.select(HeatEntry.heat_id, HeatEntry.entry_id))}


def test_links_follow_the_heats_entries(session: Session, make: Factory) -> None:
    race = make.race(session, format="head-to-head", seed=7)
    a, b, c = (make.entry(session, race, make.racer(session, n)) for n in ("ann", "bob", "cy"))
    made = h2h.create_heats(session, race, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                            [(a.id, b.id), (b.id, c.id)], make.now)
    session.commit()
    assert _links(session) == {(made[0].id, a.id), (made[0].id, b.id), (made[1].id, b.id),
                               (made[1].id, c.id)}
    made[1].entry_ids = [c.id, a.id]
    session.commit()
    assert _links(session) == {(made[0].id, a.id), (made[0].id, b.id), (made[1].id, c.id),
                               (made[1].id, a.id)}
    session.delete(made[0])
    session.commit()
    assert _links(session) == {(made[1].id, c.id), (made[1].id, a.id)}


def test_upgrade_backfills_the_links_of_existing_heats(empty_url: str, make: Factory) -> None:
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    session = session_factory(engine)()
    try:
        race = make.race(session, format="head-to-head", seed=7)
        race.status = RaceStatus.OPEN
        entries = [make.entry(session, race, make.racer(session, f"r{k}")) for k in range(4)]
        ids = [e.id for e in entries]
        made = h2h.create_heats(session, race, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                                [(ids[0], ids[1]), (ids[2], ids[3]), (ids[1], ids[2])],
                                make.now)
        session.commit()
        live = _links(session)
        assert len(live) == 6
        race_id = race.id
        session.close()

        command.downgrade(alembic_config(empty_url), BEFORE_LINKS)
        assert "heat_entries" not in sa.inspect(engine).get_table_names()
        heats = sa.table("heats", sa.column("id", sa.Integer), sa.column("race_id"),
                         sa.column("round_no"), sa.column("stage"), sa.column("seed"),
                         sa.column("entry_ids", sa.JSON), sa.column("created_at"))
        with engine.begin() as conn:  # a heat of a deleted entry, written without links
            late = conn.execute(heats.insert().values(
                race_id=race_id, round_no=2, stage="round", seed=1,
                entry_ids=[ids[3], ids[3], 10**9], created_at=make.now)
                .returning(heats.c.id)).scalar_one()
        upgrade_database(empty_url)
        assert _links(session) == live | {(late, ids[3])}
        found = session.get(type(race), race_id)
        assert found is not None
        rows, total = heat_list.race_heats(session, found, racer="r3")
        assert total == 2 and [r.heat_id for r in rows] == [late, made[1].id]
        assert session.scalar(sa.select(sa.func.count()).select_from(Heat)) == 4
    finally:
        session.close()
        engine.dispose()
