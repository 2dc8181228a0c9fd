"""League members: who is in a league, with which role and in which division.

Organizers manage the members of their league; a league always keeps at least one organizer,
so nobody can demote or remove the last one. Removal sticks: in a league joined by invite,
removing a member changes the invite code. Functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from league.errors import Conflict, InvalidInput, NotFound
from league.models import AuditAction, Division, League, MemberRole, Membership, User
from league.rules import audit
from league.rules.leagues import joins_by_invite, require_manager, reset_invite_code

LAST_ORGANIZER = ("a league keeps at least one organizer: make another member an organizer "
                  "first")


def list_members(session: Session, league: League, *, offset: int = 0,
                 limit: int | None = None) -> tuple[Sequence[Membership], int]:
    """One page of a league's members and how many there are.

    Organizers come first, then members by division (top tier first, no division last),
    then by when they joined.
    """
    total = session.scalar(sa.select(sa.func.count(Membership.id))
                           .where(Membership.league_id == league.id)) or 0
    stmt = (sa.select(Membership)
            .outerjoin(Division, Division.id == Membership.division_id)
            .where(Membership.league_id == league.id)
            .options(selectinload(Membership.user), selectinload(Membership.division))
            .order_by(sa.case((Membership.role == MemberRole.ORGANIZER, 0), else_=1),
                      sa.case((Division.tier.is_(None), 1), else_=0), Division.tier,
                      Membership.joined_at, Membership.id)
            .offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all(), total


def get_member(session: Session, league: League, user_id: int) -> Membership:
    """The membership of user ``user_id`` in ``league``."""
    m = session.scalar(sa.select(Membership).where(Membership.league_id == league.id,
                                                   Membership.user_id == user_id))
    if m is None:
        raise NotFound("that user is not a member of this league")
    return m


def organizer_count(session: Session, league: League) -> int:
    """How many organizers ``league`` has."""
    return session.scalar(sa.select(sa.func.count(Membership.id)).where(
        Membership.league_id == league.id, Membership.role == MemberRole.ORGANIZER)) or 0


def _locked_organizer_count(session: Session, league: League) -> int:
    """:func:`organizer_count`, with the league's organizer memberships locked until the
    transaction ends (``FOR UPDATE`` on PostgreSQL; SQLite's writers hold the database lock
    anyway): two organizers demoting each other at the same moment cannot both see a second
    organizer left."""
    return len(session.scalars(sa.select(Membership.id).where(
        Membership.league_id == league.id, Membership.role == MemberRole.ORGANIZER)
        .with_for_update()).all())


def set_member_role(session: Session, user: User, member: Membership,
                    role: MemberRole | str) -> None:
    """Make a member an organizer of the league, or an organizer a plain member again."""
    require_manager(session, member.league, user)
    try:
        role = MemberRole(role)
    except ValueError as err:
        raise InvalidInput("a member's role is member or organizer") from err
    if member.role == MemberRole.ORGANIZER and role != MemberRole.ORGANIZER and \
            _locked_organizer_count(session, member.league) <= 1:
        raise Conflict(LAST_ORGANIZER)
    if member.role != role:
        audit.record(session, member.league, user, AuditAction.MEMBER_CHANGED,
                     _member_words(member), role=[str(member.role), str(role)])
    member.role = role


def set_member_division(session: Session, user: User, member: Membership,
                        division: Division | None) -> None:
    """Move a member to another division of the league (None: no division)."""
    require_manager(session, member.league, user)
    if division is not None and division.league_id != member.league_id:
        raise InvalidInput("that division belongs to another league")
    new = division.id if division is not None else None
    if member.division_id != new:
        before = member.division.name if member.division is not None else None
        audit.record(session, member.league, user, AuditAction.MEMBER_CHANGED,
                     _member_words(member),
                     division=[before, division.name if division is not None else None])
    member.division_id = new


def _member_words(member: Membership) -> str:
    """A member in the audit log's words."""
    return f"member {member.user.name}"


def update_member(session: Session, user: User, member: Membership, role: MemberRole | str,
                  division: Division | None) -> None:
    """Set a member's role and division at once (nothing changes if either is refused)."""
    set_member_role(session, user, member, role)
    set_member_division(session, user, member, division)


def remove_member(session: Session, user: User, member: Membership) -> str | None:
    """Remove a member from the league; their entries and season points stay on record.

    In a league joined by invite (unlisted or private) the invite code changes too, or the
    removed racer would walk straight back in with the link they joined by; members stay
    members, and the organizers share the new link. Returns the new code, or None for a
    public league, which anyone may join.
    """
    league = member.league
    require_manager(session, league, user)
    if member.role == MemberRole.ORGANIZER and _locked_organizer_count(session, league) <= 1:
        raise Conflict(LAST_ORGANIZER)
    audit.record(session, league, user, AuditAction.MEMBER_REMOVED, _member_words(member),
                 role=str(member.role))
    # Before the removal: an organizer who removes themselves manages the league until then.
    code = (reset_invite_code(session, league, user, f"{member.user.name} was removed")
            if joins_by_invite(league) else None)
    session.delete(member)
    session.flush()
    return code
