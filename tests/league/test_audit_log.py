"""The audit log: each organizer or admin action on a league is recorded with who, when,
what, to what and why, in the same transaction; organizers and admins read it, nobody else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Forbidden
from league.models import AuditAction, AuditEvent, Role
from league.read import audit
from league.rules import leagues, members, races, seasons, submissions

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory


def _log(session: Session) -> list[tuple[str, str, str, str]]:
    return [(e.actor_name, str(e.action), e.target, e.reason) for e in session.scalars(
        sa.select(AuditEvent).order_by(AuditEvent.id))]


def test_every_organizer_action_is_recorded(session: Session, make: Factory) -> None:
    league = make.league(session, slug="quiet", visibility="private")
    olga = make.organizer(session, league)
    session.query(AuditEvent).delete()  # the factory's own set-up is not under test
    race = make.race(session, league, name="Sprint")
    ada = make.user(session, "ada")
    leagues.join_league(session, league, ada, league.invite_code)
    member = leagues.membership(session, league, ada)
    assert member is not None
    entry = make.entry(session, race, ada, name="fast")
    make.result(session, entry)
    leagues.update_league(session, league, olga, "Quiet Club", "", "private")
    division = leagues.add_division(session, league, olga, "Gold")
    leagues.rename_division(session, division, olga, "Golden")
    members.set_member_division(session, olga, member, division)
    races.update_race(session, race, olga, "Sunday Sprint", race.opens_at, race.closes_at)
    submissions.rerun_entry(session, entry, olga)
    submissions.disqualify_entry(session, entry, olga, "two models, one racer")
    seasons.close_race_now(session, race, olga)
    members.remove_member(session, olga, member)
    session.flush()
    log = _log(session)
    assert [(who, what) for who, what, _, _ in log] == [("org-quiet", str(a)) for a in (
        AuditAction.RACE_CREATED, AuditAction.LEAGUE_SETTINGS, AuditAction.DIVISION_ADDED,
        AuditAction.DIVISION_RENAMED, AuditAction.MEMBER_CHANGED, AuditAction.RACE_CHANGED,
        AuditAction.ENTRY_RERUN, AuditAction.ENTRY_DISQUALIFIED, AuditAction.RACE_CLOSED,
        AuditAction.MEMBER_REMOVED, AuditAction.INVITE_ROTATED)]
    by_action = {what: (target, reason) for _, what, target, reason in log}
    assert by_action["entry_disqualified"] == (
        f"entry {entry.id} (ada, fast v1) in race {race.id} (Sunday Sprint)",
        "two models, one racer")
    assert by_action["invite_rotated"] == ("league quiet (Quiet Club)", "ada was removed")
    events = {str(e.action): e for e in session.scalars(sa.select(AuditEvent))}
    assert events["league_settings"].details == {"changed": {"name": ["Quiet", "Quiet Club"]}}
    assert events["race_changed"].details == {"changed": {"name": ["Sprint", "Sunday Sprint"]}}
    assert events["member_changed"].details == {"division": ["Rookie", "Golden"]}  # joined: lowest


def test_nothing_is_recorded_when_nothing_changes_or_the_action_is_refused(
        session: Session, make: Factory) -> None:
    league = make.league(session)
    olga = make.organizer(session, league)
    session.query(AuditEvent).delete()
    leagues.update_league(session, league, olga, league.name, league.description,
                          league.visibility)
    with pytest.raises(Forbidden):
        leagues.reset_invite_code(session, league, make.user(session, "mallory"))
    assert _log(session) == []


def test_only_organizers_and_admins_read_the_log(session: Session, make: Factory) -> None:
    league = make.league(session)
    olga = make.organizer(session, league)
    for k in range(3):
        leagues.add_division(session, league, olga, f"D{k}")
    admin = make.user(session, "root", Role.ADMIN)
    events, total = audit.league_audit(session, league, olga, limit=2)
    assert total >= 3 and len(events) == 2
    assert [e.target for e in events][0].endswith("(D2)")  # newest first
    assert audit.league_audit(session, league, admin)[1] == total
    for outsider in (None, make.user(session, "ada")):
        with pytest.raises(Forbidden):
            audit.league_audit(session, league, outsider)
