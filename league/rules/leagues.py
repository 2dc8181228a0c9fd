"""Leagues, divisions, seasons and memberships: what organizers create and manage (their
races: :mod:`league.rules.races`).

Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import Conflict, Forbidden, InvalidInput, NotFound
from league.models import (
    DEFAULT_POINTS,
    AuditAction,
    Division,
    League,
    MemberRole,
    Membership,
    Role,
    Season,
    User,
    Visibility,
)
from league.rules import audit
from league.rules.text import clean_description, clean_name

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
INVITE_BYTES = 12
MAX_DIVISIONS = 20
MAX_POINTS = 1_000_000  # season points for one place
MAX_POINTS_PLACES = 1000


def _invite_code() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


def _code_matches(league: League, code: str | None) -> bool:
    """Whether ``code`` is the league's current invite code (compared in constant time)."""
    return bool(code) and secrets.compare_digest(str(code).encode(),
                                                 league.invite_code.encode())


def slug_from_name(name: str) -> str:
    """A slug suggested for a league name: its ASCII letters and digits joined by '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")
    return slug if len(slug) >= 3 else f"{slug}-league".lstrip("-")


def create_league(session: Session, creator: User, slug: str, name: str,
                  description: str = "", visibility: Visibility | str = Visibility.PUBLIC,
                  divisions: Sequence[str] = ("Division 1",)) -> League:
    """A league with its first divisions (tier order as given); the creator organizes it."""
    if creator.role not in (Role.ORGANIZER, Role.ADMIN):
        raise Forbidden("only organizers can create leagues")
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise InvalidInput("a slug is 3-64 lowercase letters, digits and '-'")
    name = clean_name(name, "a league name", 120)
    description = clean_description(description)
    divisions = [clean_name(d, "a division name", 80) for d in divisions]
    if not 1 <= len(divisions) <= MAX_DIVISIONS:
        raise InvalidInput(f"a league has 1 to {MAX_DIVISIONS} divisions")
    try:
        visibility = Visibility(visibility)
    except ValueError as err:
        raise InvalidInput("visibility must be public, unlisted or private") from err
    if session.scalar(sa.select(League.id).where(League.slug == slug)) is not None:
        raise Conflict(f"the slug {slug!r} is taken")
    league = League(slug=slug, name=name, description=description,
                    visibility=visibility, invite_code=_invite_code(), created_by_id=creator.id)
    session.add(league)
    session.flush()
    for tier, div in enumerate(divisions, start=1):
        session.add(Division(league_id=league.id, name=div, tier=tier))
    session.add(Membership(league_id=league.id, user_id=creator.id,
                           role=MemberRole.ORGANIZER))
    session.flush()
    return league


def get_league(session: Session, slug: str, viewer: User | None = None) -> League:
    """A league by slug, if ``viewer`` may see it (private leagues: members and admins)."""
    league = session.scalar(sa.select(League).where(League.slug == slug))
    if league is None or not can_view(session, league, viewer):
        raise NotFound(f"no league {slug!r}")
    return league


# Built once: read on every page a signed-in user opens in a league (see race_for_page).
_MEMBERSHIP = sa.select(Membership).where(Membership.league_id == sa.bindparam("league_id"),
                                          Membership.user_id == sa.bindparam("user_id"))


def membership(session: Session, league: League, user: User | None) -> Membership | None:
    """``user``'s membership of ``league``, if any."""
    if user is None:
        return None
    found: Membership | None = session.scalar(_MEMBERSHIP, {"league_id": league.id,
                                                            "user_id": user.id})
    return found


def can_view(session: Session, league: League, user: User | None) -> bool:
    """Public and unlisted leagues are visible to all; private ones to members and admins."""
    if league.visibility != Visibility.PRIVATE:
        return True
    if user is not None and user.role == Role.ADMIN:
        return True
    return membership(session, league, user) is not None


def can_manage(session: Session, league: League, user: User | None) -> bool:
    """Organizers of the league and admins manage it."""
    if user is None:
        return False
    if user.role == Role.ADMIN:
        return True
    return manages(user, membership(session, league, user))


def manages(user: User, member: Membership | None) -> bool:
    """Whether ``user``, whose membership of a league is ``member``, manages that league
    (the rule of :func:`can_manage`, for a caller that has the membership at hand)."""
    return user.role == Role.ADMIN or (member is not None
                                       and member.role == MemberRole.ORGANIZER)


def require_manager(session: Session, league: League, user: User | None) -> None:
    """Raise :class:`Forbidden` unless ``user`` manages ``league``."""
    if not can_manage(session, league, user):
        raise Forbidden("only this league's organizers can do that")


def joins_by_invite(league: League) -> bool:
    """Whether joining ``league`` needs its invite code: unlisted and private leagues do,
    public ones are open to any signed-in racer."""
    return league.visibility != Visibility.PUBLIC


def check_invite(league: League, invite_code: str | None) -> None:
    """Raise :class:`Forbidden` unless ``invite_code`` lets its holder join ``league`` (any
    code for a public league; the current one for unlisted and private leagues)."""
    if joins_by_invite(league) and not _code_matches(league, invite_code):
        raise Forbidden(f"this league is {league.visibility}: joining needs its current invite "
                        "link, and this link has no code or an old one; ask the league's "
                        "organizers for the current link")


def join_league(session: Session, league: League, user: User,
                invite_code: str | None = None) -> Membership:
    """Join a league (unlisted and private ones need the current invite code, see
    :func:`check_invite`); new racers start in the lowest division."""
    existing = membership(session, league, user)
    if existing is not None:
        return existing
    check_invite(league, invite_code)
    bottom = session.scalar(sa.select(Division).where(Division.league_id == league.id)
                            .order_by(Division.tier.desc()).limit(1))
    m = Membership(league_id=league.id, user_id=user.id,
                   division_id=bottom.id if bottom else None)
    session.add(m)
    session.flush()
    return m


def get_league_to_join(session: Session, slug: str, viewer: User | None,
                       invite_code: str | None = None) -> League:
    """A league ``viewer`` may see, or a private one whose current invite code they hold.

    Seeing a league is not joining it: :func:`check_invite` says whether the code does."""
    league = session.scalar(sa.select(League).where(League.slug == slug))
    if league is None or not (can_view(session, league, viewer)
                              or _code_matches(league, invite_code)):
        raise NotFound("no such league, or the invite link is out of date: ask the league's "
                       "organizers for the current one")
    return league


def update_league(session: Session, league: League, user: User, name: str,
                  description: str, visibility: Visibility | str,
                  telemetry_public: bool | None = None) -> None:
    """Change a league's name, description, visibility and whether its telemetry is public
    (None: as it is); its slug stays, so links keep working."""
    require_manager(session, league, user)
    name = clean_name(name, "a league name", 120)
    description = clean_description(description)
    try:
        visibility = Visibility(visibility)
    except ValueError as err:
        raise InvalidInput("visibility must be public, unlisted or private") from err
    public = league.telemetry_public if telemetry_public is None else bool(telemetry_public)
    changed = {k: [str(getattr(league, k)), str(v)] for k, v in
               (("name", name), ("description", description), ("visibility", visibility),
                ("telemetry_public", public))
               if getattr(league, k) != v}
    league.name, league.description, league.visibility = name, description, visibility
    league.telemetry_public = public
    if changed:
        audit.record(session, league, user, AuditAction.LEAGUE_SETTINGS, _league_words(league),
                     changed=changed)


def _league_words(league: League) -> str:
    """A league in the audit log's words."""
    return f"league {league.slug} ({league.name})"


def reset_invite_code(session: Session, league: League, user: User, reason: str = "") -> str:
    """A new invite code; links with the old one stop working (members stay members)."""
    require_manager(session, league, user)
    league.invite_code = _invite_code()
    audit.record(session, league, user, AuditAction.INVITE_ROTATED, _league_words(league),
                 reason)
    return league.invite_code


def add_division(session: Session, league: League, user: User, name: str) -> Division:
    """Add a division below the existing ones."""
    require_manager(session, league, user)
    lowest = session.scalar(sa.select(sa.func.max(Division.tier))
                            .where(Division.league_id == league.id)) or 0
    if lowest >= MAX_DIVISIONS:
        raise InvalidInput(f"a league has at most {MAX_DIVISIONS} divisions")
    name = clean_name(name, "a division name", 80, required=False)
    div = Division(league_id=league.id, name=name or f"Division {lowest + 1}",
                   tier=lowest + 1)
    session.add(div)
    session.flush()
    audit.record(session, league, user, AuditAction.DIVISION_ADDED,
                 f"division {div.id} ({div.name})", tier=div.tier)
    return div


def get_division(session: Session, league: League, division_id: int) -> Division:
    """A division of ``league`` by id."""
    div = session.get(Division, division_id)
    if div is None or div.league_id != league.id:
        raise NotFound(f"no division {division_id} in this league")
    return div


def rename_division(session: Session, division: Division, user: User, name: str) -> None:
    """Rename a division (its tier stays)."""
    require_manager(session, division.league, user)
    before, division.name = division.name, clean_name(name, "a division name", 80)
    if division.name != before:
        audit.record(session, division.league, user, AuditAction.DIVISION_RENAMED,
                     f"division {division.id} ({division.name})", name=[before, division.name])


def create_season(session: Session, league: League, user: User, name: str,
                  starts_at: dt.datetime, ends_at: dt.datetime,
                  points_table: Sequence[int] | None = None, promote: int = 2,
                  relegate: int = 2, movement_in_percent: bool = False) -> Season:
    """A season; ``promote``/``relegate`` are racers per division (or percent)."""
    require_manager(session, league, user)
    if ends_at <= starts_at:
        raise InvalidInput("a season must end after it starts")
    table = list(DEFAULT_POINTS if points_table is None else points_table)
    if not 1 <= len(table) <= MAX_POINTS_PLACES or \
            any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= MAX_POINTS
                for p in table) or table != sorted(table, reverse=True):
        raise InvalidInput(f"a points table is a list of 1 to {MAX_POINTS_PLACES} whole "
                           f"numbers from 0 to {MAX_POINTS}, highest first")
    limit = 100 if movement_in_percent else 1000
    for label, value in (("promote", promote), ("relegate", relegate)):
        if not 0 <= value <= limit:
            raise InvalidInput(f"{label} must be 0 to {limit}")
    name = clean_name(name, "a season name", 80, required=False)
    season = Season(league_id=league.id, name=name or "Season", starts_at=starts_at,
                    ends_at=ends_at, points_table=table, promote=promote, relegate=relegate,
                    movement_in_percent=movement_in_percent)
    session.add(season)
    session.flush()
    audit.record(session, league, user, AuditAction.SEASON_CREATED,
                 f"season {season.id} ({season.name})", starts_at=starts_at.isoformat(),
                 ends_at=ends_at.isoformat(), points_table=table, promote=promote,
                 relegate=relegate, movement_in_percent=movement_in_percent)
    return season
