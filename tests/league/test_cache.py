"""The per-process caches of leaderboards and standings: same value until the version moves.

Every test here runs with the cache installed (:func:`league.read.cache.install`), as in the
web process: a commit through any session of this process moves the generation.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import Entry
from league.read import cache
from league.rules import leagues, seasons
from league.rules.leaderboard import race_leaderboard
from league.rules.seasons import season_standings
from tests.support.live import knockout_race

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory

DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.install()
    cache.clear()


def test_installing_twice_counts_a_commit_once(session: Session, make: Factory) -> None:
    race = make.race(session)
    session.commit()
    cache.install()
    generation = cache.data_stamp(session)[0]
    race.name = "Renamed"
    session.commit()
    assert cache.data_stamp(session)[0] == generation + 1
    session.commit()  # nothing changed: the generation stays
    assert cache.data_stamp(session)[0] == generation + 1


def test_lru_keeps_the_most_recently_used() -> None:
    kept: cache.Lru[str, int] = cache.Lru(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # now the most recently used
    kept.put("c", 3)
    assert kept.keys() == ["a", "c"] and kept.get("b") is None
    kept.clear()
    assert kept.keys() == []


def test_leaderboard_is_computed_once_per_version(session: Session, make: Factory) -> None:
    race = make.race(session)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    make.result(session, make.entry(session, race, ann), time_s=30.0)
    session.commit()
    first = cache.race_leaderboard_cached(session, race)
    assert first == race_leaderboard(session, race)
    assert cache.race_leaderboard_cached(session, race) is first  # same object: not recomputed
    make.result(session, make.entry(session, race, bob), time_s=20.0)  # a new result
    session.commit()
    second = cache.race_leaderboard_cached(session, race)
    assert [r.racer for r in second] == ["bob", "ann"]
    race.ranking = "best-lap"  # settings are part of the version
    assert cache.race_leaderboard_cached(session, race) is not second


def test_a_commit_in_this_process_invalidates(session: Session, make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=30.0)
    session.commit()
    assert len(cache.race_leaderboard_cached(session, race)) == 1
    entry.disqualified_at = make.now  # no new id anywhere: the generation moves
    session.commit()
    assert cache.race_leaderboard_cached(session, race) == []


def test_other_processes_changes_show_after_the_exact_check(
        session: Session, make: Factory, db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session, "ann"))
    make.result(session, entry, time_s=30.0)
    session.commit()
    assert len(cache.race_leaderboard_cached(session, race)) == 1
    entry_id = entry.id
    session.rollback()  # (SQLite: let the other connection take the write lock)
    with db.engine.begin() as conn:  # like another process: no ORM events here
        conn.execute(sa.update(Entry).where(Entry.id == entry_id)
                     .values(disqualified_at=make.now))
    monkeypatch.setattr(cache, "VERIFY_S", 3600.0)
    assert len(cache.race_leaderboard_cached(session, race)) == 1  # within VERIFY_S: kept
    monkeypatch.setattr(cache, "VERIFY_S", 0.0)
    assert cache.race_leaderboard_cached(session, race) == []  # checked: recomputed


def test_standings_cache(session: Session, make: Factory) -> None:
    league = make.league(session)
    season = leagues.create_season(session, league, make.organizer(session, league), "S",
                                   make.now - DAY, make.now + 30 * DAY)
    pro = league.divisions[0]
    ann = make.racer(session, "ann")
    leagues.join_league(session, league, ann).division_id = pro.id
    race = make.race(session, league, season=season)
    make.result(session, make.entry(session, race, ann), time_s=30.0)
    session.commit()
    assert cache.season_standings_cached(session, season, pro) == []
    seasons.close_race(session, race, make.now)
    session.commit()
    rows = cache.season_standings_cached(session, season, pro)
    assert rows == season_standings(session, season, pro) and rows[0].points == 25
    assert cache.season_standings_cached(session, season, pro) is rows
    assert cache.season_standings_cached(session, season, None) == []


def test_values_are_kept_per_database(session: Session, make: Factory, db: Database) -> None:
    race = make.race(session)
    make.result(session, make.entry(session, race, make.racer(session, "ann")), time_s=30.0)
    session.commit()
    assert len(cache.race_leaderboard_cached(session, race)) == 1
    other = sa.create_engine(db.url)
    try:
        with Session(other) as second:
            again = second.get(type(race), race.id)
            assert again is not None
            assert cache.race_leaderboard_cached(second, again) is not \
                cache.race_leaderboard_cached(session, race)
    finally:
        other.dispose()


def test_a_statement_brings_the_data_stamp_along(session: Session, make: Factory) -> None:
    """A page's first read carries the stamp (``with_data_stamp``): the transaction then
    reads no stamp of its own, and holds the one it was given, which is the database's."""
    race = make.race(session)
    make.result(session, make.entry(session, race, make.racer(session, "ann")), time_s=30.0)
    session.commit()
    race_id, expected = race.id, cache.data_stamp(session)
    session.rollback()  # a new transaction: no stamp read yet

    statements: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = session.connection().engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        row = session.connection().execute(cache.with_data_stamp(
            sa.select(Entry.id).where(Entry.race_id == race_id))).one()
        assert cache.take_data_stamp(session, row) == (row[0],)
        assert cache.data_stamp(session) == expected
        assert len(statements) == 1  # the stamp came with the entry, in one statement

        # a stamp the transaction already holds is kept: never a newer one on older data
        other = (*row[:1], *(0 for _ in expected[1:]))
        cache.take_data_stamp(session, other)
        assert cache.data_stamp(session) == expected
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def test_a_head_to_head_race_is_checked_once_for_its_table_and_bracket(
        session: Session, make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rating table's exact check and the bracket's, due together on a race page, read
    the race's version once per transaction; a new transaction reads it again."""
    race, _ = knockout_race(session, make, rated=4, knockout_size=4)
    session.commit()
    table, bracket = cache.rating_table_cached(session, race), \
        cache.knockout_bracket_cached(session, race)
    session.rollback()  # a new transaction, as the next page view's
    monkeypatch.setattr(cache, "VERIFY_S", 0.0)  # every read checks the exact version
    reads: list[int] = []
    monkeypatch.setattr(cache, "_read_head_to_head_version",
                        lambda s, r, read=cache._read_head_to_head_version:
                        reads.append(r.id) or read(s, r))
    for _ in range(2):
        assert cache.rating_table_cached(session, race) is table
        assert cache.knockout_bracket_cached(session, race) is bracket
    assert reads == [race.id]
    session.rollback()  # a new transaction
    assert cache.rating_table_cached(session, race) is table
    assert reads == [race.id, race.id]
