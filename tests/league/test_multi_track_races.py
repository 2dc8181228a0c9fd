"""Races on several tracks in the league: scheduling them (digests recorded, bad lists
refused), the columns of a combined result, and the leaderboard's per-track times and sum.

The results are combined by the evaluator's own :func:`evaluator.multi_track.combine` from
hand-made per-track blocks; real evaluations are in tests/web/test_multi_track_pages.py.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.orm import Session

from evaluator.multi_track import combine
from evaluator.results import DNF, FINISHED, POLICY_ERROR
from evaluator.track_library import load_track
from league.errors import Conflict, InvalidInput
from league.models import Entry, Race
from league.rules import races
from league.rules.jobs import result_columns
from league.rules.leaderboard import race_leaderboard

if TYPE_CHECKING:
    from conftest import Factory

TRACKS = ("oval", "kidney")


def two_track_race(session: Session, make: Factory, **kw: Any) -> Race:
    return make.race(session, extra_tracks=["kidney"], **kw)


# ----------------------------------------------------------------------- scheduling
def test_a_race_records_every_tracks_digest(session: Session, make: Factory) -> None:
    race = make.race(session, extra_tracks=["kidney", "speedway"])
    assert race.extra_tracks == [
        {"track": "kidney", "track_digest": load_track("kidney").digest},
        {"track": "speedway", "track_digest": load_track("speedway").digest}]
    assert [t["track"] for t in race.all_tracks] == ["oval", "kidney", "speedway"]
    assert race.config()["extra_tracks"] == ["kidney", "speedway"]
    assert races.race_config(race).tracks == ("oval", "kidney", "speedway")


def test_a_one_track_race_reads_as_before(session: Session, make: Factory) -> None:
    race = make.race(session)
    assert race.extra_tracks == [] and "extra_tracks" not in race.config()
    assert "extra_tracks" not in races.race_config(race).to_dict()


@pytest.mark.parametrize(("settings", "words"), [
    ({"extra_tracks": ["oval"]}, "tracks: each track once; oval is listed twice"),
    ({"extra_tracks": ["kidney", "pinwheel", "speedway", "switchback", "brake-point"]},
     "tracks: a race has at most 5 tracks, got 6"),
    ({"extra_tracks": ["nowhere"]}, "tracks: unknown track 'nowhere'"),
    ({"extra_tracks": ["../x"]}, "tracks: '../x' is not a library or imported track name"),
    ({"extra_tracks": ["kidney"], "format": "head-to-head"},
     "tracks: several tracks are for time trials"),
    ({"extra_tracks": ["kidney"], "mystery_track": True}, "tracks: a mystery track is one"),
], ids=["twice", "six", "unknown", "path", "head-to-head", "mystery"])
def test_bad_track_lists_are_refused(session: Session, make: Factory,
                                     settings: dict[str, Any], words: str) -> None:
    league = make.league(session)
    with pytest.raises(InvalidInput) as err:
        make.race(session, league, **settings)
    assert str(err.value).startswith(words), err.value


def test_the_tracks_freeze_once_a_race_has_entries(session: Session, make: Factory) -> None:
    race = two_track_race(session, make)
    org = make.organizer(session, race.league)
    window = (race.opens_at, race.closes_at)
    changed = races.update_race(session, race, org, race.name, *window,
                                extra_tracks=["kidney", "pinwheel"])
    assert changed == ["extra_tracks"] and len(race.extra_tracks) == 2
    make.entry(session, race, make.racer(session))
    with pytest.raises(Conflict, match="extra_tracks"):
        races.update_race(session, race, org, race.name, *window, extra_tracks=["kidney"])
    # settings left out keep their value: the tracks stay
    races.update_race(session, race, org, "Renamed", *window)
    assert [t["track"] for t in race.extra_tracks] == ["kidney", "pinwheel"]


def test_the_apis_track_list_names_the_first_track_first() -> None:
    assert races.listed_tracks("oval", None) == []
    assert races.listed_tracks("oval", ["oval", "kidney"]) == ["kidney"]
    with pytest.raises(InvalidInput, match="the first of the tracks is the race's track"):
        races.listed_tracks("oval", ["kidney", "oval"])
    with pytest.raises(InvalidInput, match="list the race's tracks"):
        races.listed_tracks("oval", [])


# ------------------------------------------------------------------------- results
def block(track: str, time_s: float | None, status: str = FINISHED, *, trial: int = 1,
          incidents: int = 0) -> dict[str, Any]:
    """A one-track result (the shape of ``RaceResult.to_dict()``) with one trial."""
    finished = time_s is not None and status == FINISHED
    return {"track": track, "track_digest": load_track(track).digest, "seed": 1,
            "status": status if not finished else FINISHED,
            "ranking_time_s": time_s if finished else None,
            "ranking_laps": 1 if finished else 0, "ranked_trial": 1 if finished else None,
            "spread": {}, "error": "it crashed" if status == POLICY_ERROR else None,
            "trials": [{"trial": 1, "seed": 2, "status": status, "laps_completed": int(finished),
                        "lap_times_s": [time_s] if finished else [], "total_time_s": time_s,
                        "best_lap_s": time_s, "off_track_count": incidents,
                        "collision_count": 0, "penalty_s": 5.0 * incidents,
                        "reason": "" if finished else "time cap of 20 s reached"}]}


def combined(race: Race, *times: float | None, status: str = DNF) -> dict[str, Any]:
    blocks = [block(name, t, status if t is None else FINISHED, incidents=k)
              for k, (name, t) in enumerate(zip(TRACKS, times, strict=True))]
    return combine(races.race_config(race), blocks)


def record(session: Session, make: Factory, race: Race, name: str,
           data: dict[str, Any]) -> Entry:
    """An entry of racer ``name`` whose evaluation stored ``data``."""
    entry = make.entry(session, race, make.racer(session, name),
                       submitted_at=make.now - dt.timedelta(minutes=len(name)))
    cols = result_columns(data)
    make.result(session, entry, cols.pop("ranking_time_s"), cols.pop("ranking_laps"),
                cols.pop("status"), data=data, **cols)
    return entry


def test_a_combined_results_columns_come_from_each_tracks_ranked_trial(
        session: Session, make: Factory) -> None:
    race = two_track_race(session, make)
    cols = result_columns(combined(race, 10.0, 12.0))
    assert (cols["status"], cols["ranking_time_s"], cols["ranking_laps"]) == (
        FINISHED, 22.0, 2)
    assert (cols["best_lap_s"], cols["off_track_count"], cols["penalty_s"]) == (10.0, 1, 5.0)
    unfinished = result_columns(combined(race, 10.0, None))
    assert (unfinished["status"], unfinished["ranking_time_s"]) == (DNF, None)


def test_the_leaderboard_ranks_by_the_sum_and_shows_each_track(session: Session,
                                                               make: Factory) -> None:
    race = two_track_race(session, make)
    record(session, make, race, "slow", combined(race, 11.0, 13.0))
    record(session, make, race, "fast", combined(race, 12.0, 10.0))  # slower on track 1
    record(session, make, race, "one", combined(race, 5.0, None))
    record(session, make, race, "crash", combined(race, 4.0, None, status=POLICY_ERROR))
    record(session, make, race, "half", combined(race, 9.0, None))
    record(session, make, race, "none", combined(race, None, None))
    rows = race_leaderboard(session, race)
    assert [(r.racer, r.rank, r.time_s, r.track_times_s) for r in rows] == [
        ("fast", 1, 22.0, (12.0, 10.0)),
        ("slow", 2, 24.0, (11.0, 13.0)),
        ("crash", None, None, (4.0, None)),  # one track, the smallest time of those
        ("one", None, None, (5.0, None)),
        ("half", None, None, (9.0, None)),
        ("none", None, None, (None, None))]
    assert rows[1].gap_s == 2.0
    assert rows[3].reason == "finished 1 of 2 tracks; kidney: time cap of 20 s reached"
    assert rows[2].reason == "finished 1 of 2 tracks; kidney: it crashed"
    assert rows[0].to_dict()["track_times_s"] == [12.0, 10.0]


def test_a_one_track_leaderboard_has_no_track_columns(session: Session,
                                                      make: Factory) -> None:
    race = make.race(session)
    entry = make.entry(session, race, make.racer(session))
    make.result(session, entry, 30.0)
    (row,) = race_leaderboard(session, race)
    assert (row.rank, row.time_s, row.track_times_s) == (1, 30.0, ())
