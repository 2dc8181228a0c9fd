"""The demo league that ``paddock demo`` (``make run``) seeds into an empty database.

A living league a newcomer can watch and try: a public "Paddock Demo League" with two
divisions and an active season; the shipped bots entered as demo racers in two time trials
and a head-to-head race; an organizer and a racer login. The opening time trial closes a
minute after seeding, so its season points show in the standings as soon as the workers have
raced it. Seeding happens once: a database that already has the demo league is left alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.models import (
    Division,
    League,
    LiveEventKind,
    Membership,
    Race,
    Role,
    Season,
    User,
    utcnow,
)
from league.rules import accounts, leagues, live, races, seasons, submissions
from league.storage import Storage

DEMO_SLUG = "paddock-demo"
DEMO_PASSWORD = "paddock-demo"  # of the demo logins; printed by ``paddock demo``
ORGANIZER = "organizer"
RACER = "racer"
ADMIN = "admin"  # sees the site's outbox: the demo's mail (password resets, sign-ups)
# The shipped bots race as demo racers, two per division (division tier: 1 is the top).
BOTS = (("ace-bot", "ace", 1), ("pro-bot", "pro", 1),
        ("amateur-bot", "amateur", 2), ("rookie-bot", "rookie", 2))
OPENING_CLOSES_AFTER = dt.timedelta(seconds=60)  # then its season points are awarded
RACE_WINDOW = dt.timedelta(days=14)
HEAD_TO_HEAD_ROUND_S = 30
#: the demo's live event (a showcase of the Royal Park time trial's best runs) starts then
SHOWCASE_STARTS_AFTER = dt.timedelta(minutes=3)
SHOWCASE_RUNS = 4


@dataclass(frozen=True)
class DemoLogin:
    """A demo account to print."""

    name: str
    password: str
    role: str


def bot_model(bot: str) -> bytes:
    """The ONNX bytes of a shipped bot (``rookie``, ``amateur``, ``pro``, ``ace``)."""
    return resources.files("evaluator").joinpath("bots", f"{bot}.onnx").read_bytes()


def is_seeded(session: Session) -> bool:
    """Whether the demo league exists already."""
    return session.scalar(sa.select(League.id).where(League.slug == DEMO_SLUG)) is not None


def demo_logins() -> list[DemoLogin]:
    """The logins the demo creates."""
    return [DemoLogin(ORGANIZER, DEMO_PASSWORD, Role.ORGANIZER.value),
            DemoLogin(RACER, DEMO_PASSWORD, Role.RACER.value),
            DemoLogin(ADMIN, DEMO_PASSWORD, Role.ADMIN.value)]


def seed_demo(session: Session, storage: Storage, now: dt.datetime | None = None) -> League | None:
    """Seed the demo league, its people, races and entries; None when it exists already.

    The evaluations of the time-trial entries are queued here; the head-to-head race plays
    its first round when the scheduler next looks; a live event airs the Royal Park time
    trial's best runs a few minutes after the start.
    """
    if is_seeded(session):
        return None
    now = now or utcnow()
    organizer = _login(session, ORGANIZER, Role.ORGANIZER)
    racer = _login(session, RACER, Role.RACER)
    _login(session, ADMIN, Role.ADMIN)
    league = leagues.create_league(
        session, organizer, DEMO_SLUG, "Paddock Demo League",
        description=("A league that runs by itself: the shipped bots race two time trials "
                     "and a head-to-head race.\nLog in as the racer to upload a model of your "
                     "own, or as the organizer to schedule races."),
        divisions=("Pro", "Rookie"))
    divisions = {d.tier: d for d in session.scalars(
        sa.select(Division).where(Division.league_id == league.id))}
    season = leagues.create_season(session, league, organizer, "Demo Season",
                                   now - dt.timedelta(days=1), now + dt.timedelta(days=30),
                                   points_table=[25, 18, 15, 12], promote=1, relegate=1)
    seasons.start_due_seasons(session, now)
    leagues.join_league(session, league, racer)
    racers = []
    for name, bot, tier in BOTS:
        user = _bot_racer(session, name)
        member = leagues.join_league(session, league, user)
        member.division_id = divisions[tier].id
        racers.append((user, bot))
    demo_races = _races(session, league, organizer, season, now)
    seasons.open_due_races(session, now)
    for race in demo_races:
        for user, bot in racers:
            submissions.submit_entry(session, storage, race, user, bot_model(bot),
                                     model_name=f"{bot}-bot", now=now)
    live.schedule(session, demo_races[1], organizer, live.Plan(
        "Royal Park showcase", LiveEventKind.SHOWCASE,
        (now + SHOWCASE_STARTS_AFTER).replace(microsecond=0), size=SHOWCASE_RUNS), now)
    return league


def _races(session: Session, league: League, organizer: User, season: Season,
           now: dt.datetime) -> list[Race]:
    opens = now - dt.timedelta(minutes=1)
    common: dict[str, Any] = {"laps": 3, "trials": 3, "ranking": "total"}
    return [
        races.create_race(session, league, organizer, "Opening Sprint", opens,
                            now + OPENING_CLOSES_AFTER, season=season, track="oval", **common),
        races.create_race(session, league, organizer, "Royal Park Time Trial", opens,
                            now + RACE_WINDOW, season=season, track="royal-park", **common),
        races.create_race(session, league, organizer, "Speedway Head-to-Head", opens,
                            now + RACE_WINDOW, track="speedway", format="head-to-head",
                            season=season, round_interval_s=HEAD_TO_HEAD_ROUND_S),
    ]


def _login(session: Session, name: str, role: Role) -> User:
    existing = session.scalar(sa.select(User).where(User.name == name))
    if existing is not None:
        return existing
    return accounts.create_user(session, name, f"{name}@demo.paddock.invalid", DEMO_PASSWORD,
                                role)


def _bot_racer(session: Session, name: str) -> User:
    """A demo racer nobody can log in as (its password hash matches no password)."""
    user = session.scalar(sa.select(User).where(User.name == name))
    if user is None:
        user = User(name=name, email=f"{name}@demo.paddock.invalid", password_hash="!",
                    role=Role.RACER)
        session.add(user)
        session.flush()
    return user


def members(session: Session, league: League) -> list[Membership]:
    """The demo league's memberships (for the launcher's summary and the tests)."""
    return list(session.scalars(sa.select(Membership).where(Membership.league_id == league.id)))
