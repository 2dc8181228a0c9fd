"""A race's conditions: new races get ``standard``, organizers choose others, they are frozen
once a race has entries, and the migration gives existing races ``none`` (as they ran)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from evaluator.conditions import PRESETS
from league.db import alembic_config, make_engine, session_factory, upgrade_database
from league.errors import Conflict, InvalidInput
from league.models import Race
from league.rules import races

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

BEFORE_CONDITIONS = "04025b2f1f3f"  # the revision before races.conditions


def test_new_races_get_standard_conditions(session: Session, make: Factory) -> None:
    race = make.race(session)
    assert race.conditions == PRESETS["standard"].to_dict()
    assert races.race_config(race).conditions == PRESETS["standard"]


def test_organizers_choose_conditions(session: Session, make: Factory) -> None:
    hard = make.race(session, conditions="hard")
    assert races.race_config(hard).conditions == PRESETS["hard"]
    custom = make.race(session, make.league(session, slug="other"),
                       conditions={"preset": "custom", "grip_pct": 8.0})
    assert custom.conditions == {**PRESETS["none"].to_dict(), "preset": "custom",
                                 "grip_pct": 8.0}
    with pytest.raises(InvalidInput, match="grip_pct must be a number from 0 to 25"):
        make.race(session, hard.league, conditions={"grip_pct": 40})
    with pytest.raises(InvalidInput, match="conditions must be one of none, standard, hard"):
        make.race(session, hard.league, conditions="stormy")


def test_conditions_freeze_once_a_race_has_entries(session: Session, make: Factory) -> None:
    race = make.race(session)
    organizer = make.organizer(session, race.league)
    changed = races.update_race(session, race, organizer, race.name, race.opens_at,
                                race.closes_at, conditions="hard")
    assert changed == ["conditions"] and race.conditions["preset"] == "hard"
    make.entry(session, race, make.racer(session, "ann"))
    with pytest.raises(Conflict, match=r"\(conditions\)"):
        races.update_race(session, race, organizer, race.name, race.opens_at,
                          race.closes_at, conditions="none")
    # Other changes keep the conditions as they are.
    races.update_race(session, race, organizer, "Renamed", race.opens_at, race.closes_at)
    assert race.conditions["preset"] == "hard"


def test_upgrade_gives_existing_races_no_conditions(empty_url: str, make: Factory) -> None:
    upgrade_database(empty_url)
    engine = make_engine(empty_url)
    session = session_factory(engine)()
    try:
        race_id = make.race(session).id
        session.commit()
        session.close()
        command.downgrade(alembic_config(empty_url), BEFORE_CONDITIONS)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("races")}
        assert "conditions" not in columns and "seed" in columns
        upgrade_database(empty_url)
        found = session.get(Race, race_id)
        assert found is not None and found.conditions == PRESETS["none"].to_dict()
        assert races.race_config(found).conditions == PRESETS["none"]
    finally:
        session.close()
        engine.dispose()
