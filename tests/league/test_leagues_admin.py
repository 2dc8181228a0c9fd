"""What organizers change after creating a league: its settings, divisions, members, races;
joining with an invite code; the entries list of a race."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Conflict, Forbidden, InvalidInput, NotFound
from league.models import MemberRole, Membership, RaceStatus, User, Visibility
from league.rules import leagues, members, races, submissions

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

DAY = dt.timedelta(days=1)


@pytest.mark.parametrize("name, slug", [
    ("Club Racing", "club-racing"), ("  Étoile  du Nord!! ", "etoile-du-nord"),
    ("F1", "f1-league"), ("東京", "league"), ("x" * 100, "x" * 64),
])
def test_slug_from_name(name: str, slug: str) -> None:
    assert leagues.slug_from_name(name) == slug
    assert leagues.SLUG_RE.match(slug)


def test_update_league(session: Session, make: Factory) -> None:
    league = make.league(session)
    org = make.organizer(session, league)
    leagues.update_league(session, league, org, " New  name ", "About\u200b us", "private")
    assert (league.name, league.description, league.visibility) == \
        ("New name", "About us", Visibility.PRIVATE)
    with pytest.raises(InvalidInput, match="visibility"):
        leagues.update_league(session, league, org, "x", "", "secret")
    with pytest.raises(InvalidInput, match="league name"):
        leagues.update_league(session, league, org, "  ", "", "public")
    with pytest.raises(Forbidden):
        leagues.update_league(session, league, make.racer(session, "eve"), "x", "", "public")


def test_rename_division(session: Session, make: Factory) -> None:
    league = make.league(session)
    org = make.organizer(session, league)
    pro = leagues.get_division(session, league, league.divisions[0].id)
    leagues.rename_division(session, pro, org, "Elite")
    assert [d.name for d in league.divisions] == ["Elite", "Rookie"]
    with pytest.raises(InvalidInput):
        leagues.rename_division(session, pro, org, "")
    other = make.league(session, slug="other")
    with pytest.raises(NotFound):
        leagues.get_division(session, league, other.divisions[0].id)
    with pytest.raises(Forbidden):
        leagues.rename_division(session, pro, make.organizer(session, other), "Mine")


def test_join_with_the_current_invite_code_only(session: Session, make: Factory) -> None:
    league = make.league(session, visibility="private")
    org = make.organizer(session, league)
    ann = make.racer(session, "ann")
    old = league.invite_code
    assert leagues.get_league_to_join(session, "club", ann, old) is league
    for code in (None, "", "wrong", "é-not-ascii"):
        with pytest.raises(NotFound, match="invite link is out of date"):
            leagues.get_league_to_join(session, "club", ann, code)
        with pytest.raises(Forbidden):
            leagues.join_league(session, league, ann, code)
    leagues.reset_invite_code(session, league, org)
    with pytest.raises(NotFound):
        leagues.get_league_to_join(session, "club", ann, old)
    m = leagues.join_league(session, league, ann, league.invite_code)
    assert m.division_id == league.divisions[-1].id  # the lowest division
    assert leagues.get_league_to_join(session, "club", ann) is league  # a member now
    with pytest.raises(NotFound):
        leagues.get_league_to_join(session, "nowhere", ann)


def _members(session: Session, league_id: int) -> dict[str, tuple[str, int | None]]:
    rows = session.execute(sa.select(User.name, Membership.role, Membership.division_id)
                           .join(User, User.id == Membership.user_id)
                           .where(Membership.league_id == league_id))
    return {name: (str(role), div) for name, role, div in rows}


def test_member_roles_divisions_and_removal(session: Session, make: Factory) -> None:
    league = make.league(session)
    org = make.organizer(session, league)
    pro = league.divisions[0]
    ann = make.racer(session, "ann")
    leagues.join_league(session, league, ann)
    m = members.get_member(session, league, ann.id)
    members.update_member(session, org, m, "organizer", pro)
    assert _members(session, league.id)["ann"] == ("organizer", pro.id)
    assert members.organizer_count(session, league) == 2
    members.set_member_division(session, org, m, None)
    assert m.division_id is None
    with pytest.raises(InvalidInput, match="role"):
        members.set_member_role(session, org, m, "owner")
    other = make.league(session, slug="other")
    with pytest.raises(InvalidInput, match="another league"):
        members.set_member_division(session, org, m, other.divisions[0])
    # ann, now an organizer, demotes the founder; then nobody may demote or remove her
    founder = members.get_member(session, league, org.id)
    members.set_member_role(session, ann, founder, MemberRole.MEMBER)
    with pytest.raises(Conflict, match="at least one organizer"):
        members.set_member_role(session, ann, m, "member")
    with pytest.raises(Conflict, match="at least one organizer"):
        members.remove_member(session, ann, m)
    with pytest.raises(Forbidden):
        members.remove_member(session, org, m)  # org is a plain member now
    members.remove_member(session, ann, founder)
    assert set(_members(session, league.id)) == {"ann"}
    with pytest.raises(NotFound):
        members.get_member(session, league, org.id)


def test_list_members_order_and_pages(session: Session, make: Factory) -> None:
    league = make.league(session)
    pro, rookie = league.divisions
    for name, div in (("cy", None), ("bob", rookie), ("ann", pro)):
        user = make.racer(session, name)
        leagues.join_league(session, league, user).division_id = div.id if div else None
    session.flush()
    rows, total = members.list_members(session, league)
    assert [m.user.name for m in rows] == ["org-club", "ann", "bob", "cy"] and total == 4
    rows, total = members.list_members(session, league, offset=1, limit=2)
    assert [m.user.name for m in rows] == ["ann", "bob"] and total == 4


def test_update_race_window_any_time_rules_only_without_entries(session: Session,
                                                                make: Factory) -> None:
    league = make.league(session)
    org = make.organizer(session, league)
    race = make.race(session, league, laps=3)
    season = leagues.create_season(session, league, org, "S", make.now - DAY, make.now + 60 * DAY)
    changed = races.update_race(session, race, org, "Sprint", race.opens_at,
                                  race.closes_at + DAY, season=season,
                                  divisions=[league.divisions[0]], laps=5,
                                  max_entries_per_day=2, now=make.now)
    assert set(changed) == {"name", "closes_at", "season_id", "laps", "max_entries_per_day",
                            "divisions"}
    assert (race.laps, race.max_entries_per_day, race.season_id) == (5, 2, season.id)
    racer = make.racer(session, "ann")
    make.entry(session, race, racer)
    with pytest.raises(Conflict, match="laps"):
        races.update_race(session, race, org, "Sprint", race.opens_at, race.closes_at,
                            season=season, divisions=race.divisions, laps=4)
    assert race.laps == 5
    # the settings that do not change results still may; omitted ones keep their value
    races.update_race(session, race, org, "Sprint", race.opens_at, race.closes_at + DAY,
                        season=None, max_entries_per_day=None, now=make.now)
    assert (race.laps, race.season_id, race.max_entries_per_day, race.divisions) == \
        (5, None, None, [])
    with pytest.raises(InvalidInput, match="close after"):
        races.update_race(session, race, org, "x", race.closes_at, race.opens_at)
    race.status = RaceStatus.CLOSED
    with pytest.raises(Conflict, match="closed"):
        races.update_race(session, race, org, "x", race.opens_at, race.closes_at)


def test_update_race_moving_the_opening_reschedules(session: Session, make: Factory) -> None:
    race = make.race(session)
    org = make.organizer(session, race.league)
    race.status = RaceStatus.OPEN
    races.update_race(session, race, org, "", make.now + DAY, make.now + 3 * DAY,
                        now=make.now)
    assert race.status == RaceStatus.SCHEDULED and race.name == "oval"
    with pytest.raises(Forbidden):
        races.update_race(session, race, make.racer(session, "eve"), "", race.opens_at,
                            race.closes_at)


def test_race_entries_newest_first_with_status(session: Session, make: Factory) -> None:
    race = make.race(session)
    org = make.organizer(session, race.league)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    first = make.entry(session, race, ann, make.now)
    make.result(session, first, 31.5)
    second = make.entry(session, race, bob, make.now + DAY)
    submissions.disqualify_entry(session, second, org, "copied model")
    rows, total = races.race_entries(session, race, limit=1)
    assert total == 2 and [e.id for e, _ in rows] == [second.id]
    assert rows[0][1].disqualified and "copied model" in rows[0][1].reason
    rows, _ = races.race_entries(session, race, offset=1)
    assert [(e.id, s.time_s, str(s.status)) for e, s in rows] == [(first.id, 31.5,
                                                                    "succeeded")]
