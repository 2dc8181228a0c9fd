"""Who may join a league and enter its races, and removal that sticks: a public league is
open to every racer; unlisted and private ones are joined with the current invite code, and
removing a member of one changes that code."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy.orm import Session

from league.errors import Conflict, Forbidden, NotFound
from league.models import Entry, League, MemberRole, User
from league.rules import leagues, members, submissions
from league.storage import Storage

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

BY_INVITE = ("unlisted", "private")


def _league_with_member(session: Session, make: Factory,
                        visibility: str) -> tuple[League, User, User]:
    """``club`` with its organizer and ann, who joined with the invite code."""
    league = make.league(session, visibility=visibility)
    ann = make.racer(session, "ann")
    leagues.join_league(session, league, ann, league.invite_code)
    return league, make.organizer(session, league), ann


@pytest.mark.parametrize("visibility", BY_INVITE)
def test_a_removed_member_cannot_rejoin_with_the_old_link(session: Session, make: Factory,
                                                          visibility: str) -> None:
    league, org, ann = _league_with_member(session, make, visibility)
    bob = make.racer(session, "bob")
    leagues.join_league(session, league, bob, league.invite_code)
    old = league.invite_code
    new = members.remove_member(session, org, members.get_member(session, league, ann.id))
    assert new is not None and new != old and league.invite_code == new
    assert leagues.membership(session, league, ann) is None
    assert leagues.membership(session, league, bob) is not None  # the others stay
    with pytest.raises(Forbidden, match="needs its current invite link"):
        leagues.join_league(session, league, ann, old)
    assert leagues.membership(session, league, ann) is None
    leagues.join_league(session, league, ann, new)  # let back in by the organizers
    assert leagues.membership(session, league, ann) is not None


def test_removal_from_a_private_league_hides_it_from_the_old_link(session: Session,
                                                                  make: Factory) -> None:
    league, org, ann = _league_with_member(session, make, "private")
    old = league.invite_code
    members.remove_member(session, org, members.get_member(session, league, ann.id))
    with pytest.raises(NotFound, match="invite link is out of date"):
        leagues.get_league_to_join(session, league.slug, ann, old)


def test_removal_from_a_public_league_keeps_its_code(session: Session, make: Factory) -> None:
    league, org, ann = _league_with_member(session, make, "public")
    old = league.invite_code
    assert members.remove_member(session, org,
                                 members.get_member(session, league, ann.id)) is None
    assert league.invite_code == old


def test_an_organizer_who_leaves_a_private_league_rotates_its_code(session: Session,
                                                                   make: Factory) -> None:
    league, org, ann = _league_with_member(session, make, "private")
    members.set_member_role(session, org, members.get_member(session, league, ann.id),
                            MemberRole.ORGANIZER)
    old = league.invite_code
    assert members.remove_member(session, org, members.get_member(session, league, org.id))
    assert league.invite_code != old and leagues.membership(session, league, org) is None


def test_a_refused_removal_changes_nothing(session: Session, make: Factory) -> None:
    league, org, ann = _league_with_member(session, make, "private")
    old = league.invite_code
    with pytest.raises(Conflict, match="at least one organizer"):
        members.remove_member(session, org, members.get_member(session, league, org.id))
    with pytest.raises(Forbidden):
        members.remove_member(session, ann, members.get_member(session, league, org.id))
    assert league.invite_code == old


@pytest.mark.parametrize("visibility", BY_INVITE)
def test_joining_needs_the_current_code(session: Session, make: Factory,
                                        visibility: str) -> None:
    league = make.league(session, visibility=visibility)
    ann = make.racer(session, "ann")
    for code in (None, "", "wrong", league.invite_code[:-1]):
        with pytest.raises(Forbidden, match=f"this league is {visibility}: joining needs"):
            leagues.join_league(session, league, ann, code)
        with pytest.raises(Forbidden):
            leagues.check_invite(league, code)
    assert leagues.membership(session, league, ann) is None
    assert leagues.join_league(session, league, ann, league.invite_code).user_id == ann.id


def test_an_unlisted_league_is_seen_by_anyone_but_joined_by_invite(session: Session,
                                                                   make: Factory) -> None:
    league = make.league(session, visibility="unlisted")
    ann = make.racer(session, "ann")
    assert leagues.get_league(session, "club", None) is league
    assert leagues.get_league_to_join(session, "club", ann) is league  # seeing, not joining
    assert leagues.joins_by_invite(league)


def test_a_public_league_is_open_to_join(session: Session, make: Factory) -> None:
    league = make.league(session)
    ann = make.racer(session, "ann")
    assert not leagues.joins_by_invite(league)
    leagues.check_invite(league, None)
    assert leagues.join_league(session, league, ann).user_id == ann.id


@pytest.mark.parametrize("visibility", BY_INVITE)
def test_only_members_enter_races_of_leagues_joined_by_invite(
        session: Session, storage: Storage, make: Factory, visibility: str) -> None:
    league = make.league(session, visibility=visibility)
    race = make.race(session, league)
    ann, bob = make.racer(session, "ann"), make.racer(session, "bob")
    with pytest.raises(Forbidden,
                       match=f"only members enter the races of this {visibility} league"):
        submissions.submit_entry(session, storage, race, ann, make.policy(), now=make.now)
    leagues.join_league(session, league, bob, league.invite_code)
    entry = submissions.submit_entry(session, storage, race, bob, make.policy(), now=make.now)
    assert isinstance(entry, Entry) and entry.racer_id == bob.id
    members.remove_member(session, make.organizer(session, league),
                          members.get_member(session, league, bob.id))
    with pytest.raises(Forbidden, match="only members enter"):  # removed: no more entries
        submissions.submit_entry(session, storage, race, bob, make.policy(), now=make.now)


def test_anyone_enters_a_public_leagues_race(session: Session, storage: Storage,
                                             make: Factory) -> None:
    race = make.race(session, make.league(session))
    ann = make.racer(session, "ann")
    entry = submissions.submit_entry(session, storage, race, ann, make.policy(), now=make.now)
    assert entry.racer_id == ann.id
