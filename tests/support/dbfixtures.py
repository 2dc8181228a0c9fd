"""League fixtures: a fresh database on SQLite and on PostgreSQL, sessions, storage, factories.

Every test that takes ``db`` (or anything built on it) runs once per backend. PostgreSQL tests
get a throwaway database created for this test run (``paddock_test_<random>``) on the server
at ``PADDOCK_TEST_POSTGRES`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``,
used only to create and drop it); tables are emptied between tests. Set
``PADDOCK_TEST_BACKENDS=sqlite`` to skip PostgreSQL on a machine without it.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import league.models as m
from evaluator.actions import ActionSpec
from evaluator.metadata import ModelMetadata
from evaluator.observation import I_HEADING, I_OFFSET, OBS_DIM
from evaluator.onnx_io import mlp_policy
from league.db import Base, make_engine, session_factory
from league.rules import accounts, leagues, races
from league.storage import Storage

POSTGRES_ADMIN_URL = os.environ.get("PADDOCK_TEST_POSTGRES",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b for b in os.environ.get("PADDOCK_TEST_BACKENDS", "sqlite,postgresql").split(",")
            if b]
PASSWORD = "correct horse battery"


def _create_pg_database() -> str:
    """A new empty PostgreSQL database; returns its URL."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"paddock_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
        hide_password=False)


def _drop_pg_database(url: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = sa.make_url(url).database
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One throwaway PostgreSQL database per test process (dropped at the end)."""
    url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)


@dataclass
class Database:
    """A database for one test: its URL, engine and session factory."""

    backend: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database with every table, on each backend in turn."""
    backend = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'league.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    try:
        yield Database(backend, url, engine, session_factory(engine))
    finally:
        if backend == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new database without any table (for migrations), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """A session on the test database; the test commits when it wants to."""
    s = db.factory()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    """Content-addressed storage in a temporary directory."""
    return Storage(tmp_path / "storage")


def policy_bytes(speed: float = 2.0, name: str = "follower") -> bytes:
    """A valid policy file: follows the centerline at ``speed`` m/s."""
    meta = ModelMetadata(ActionSpec.continuous(speed=(speed, speed)), name=name)
    w = np.zeros((2, OBS_DIM), dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = -2.0, -1.0
    return mlp_policy([(w, np.zeros(2, dtype=np.float32))], meta).SerializeToString()


#: The action space of :func:`discrete_policy_bytes`: (steering degrees, speed m/s).
DISCRETE_ACTIONS = ((-20.0, 1.5), (20.0, 1.5), (0.0, 3.0), (0.0, 0.5))


def discrete_policy_bytes(name: str = "chooser") -> bytes:
    """A valid discrete policy over :data:`DISCRETE_ACTIONS` that only ever chooses action 0
    or 1 (steering back to the centerline at 1.5 m/s): actions 2 and 3 are never chosen."""
    meta = ModelMetadata(ActionSpec.discrete(DISCRETE_ACTIONS), name=name)
    w = np.zeros((len(DISCRETE_ACTIONS), OBS_DIM), dtype=np.float32)
    b = np.array([10.0, 10.0, -10.0, -10.0], dtype=np.float32)
    w[0, I_HEADING], w[0, I_OFFSET] = 2.0, 1.0  # right when the car points or sits left
    w[1, I_HEADING], w[1, I_OFFSET] = -2.0, -1.0
    return mlp_policy([(w, b)], meta).SerializeToString()


class Factory:
    """Plain factories for league objects (``make.user(session, ...)`` in tests)."""

    now = dt.datetime(2026, 6, 1, 12, 0, 0)

    def policy(self, speed: float = 2.0, name: str = "follower") -> bytes:
        """A valid policy file (see :func:`policy_bytes`)."""
        return policy_bytes(speed, name)

    def discrete_policy(self, name: str = "chooser") -> bytes:
        """A valid discrete policy file (see :func:`discrete_policy_bytes`)."""
        return discrete_policy_bytes(name)

    def user(self, session: Session, name: str = "racer", role: str = "racer",
             **kw: Any) -> m.User:
        """A user (password ``PASSWORD``)."""
        email = kw.pop("email", f"{name.lower()}@example.org")
        return accounts.create_user(session, name, email, kw.pop("password", PASSWORD), role)

    def league(self, session: Session, organizer: m.User | None = None, slug: str = "club",
               **kw: Any) -> m.League:
        """A league with two divisions, organized by ``organizer`` (created if missing)."""
        organizer = organizer or self.user(session, f"org-{slug}", "organizer")
        kw.setdefault("divisions", ("Pro", "Rookie"))
        return leagues.create_league(session, organizer, slug, kw.pop("name", slug.title()),
                                     **kw)

    def organizer(self, session: Session, league: m.League) -> m.User:
        """The user who created ``league``."""
        user = session.get(m.User, league.created_by_id)
        assert user is not None
        return user

    def race(self, session: Session, league: m.League | None = None, **kw: Any) -> m.Race:
        """An open one-lap, one-trial time trial on the oval. Its seed is published, as the
        seeds of races made before seeds were secret are (``seed_public=False``: a new
        race's secret seed, as the form and the API make it)."""
        league = league or self.league(session)
        settings = {"track": "oval", "laps": 1, "trials": 1, "seed_public": True, **kw}
        opens = settings.pop("opens_at", self.now - dt.timedelta(days=1))
        closes = settings.pop("closes_at", self.now + dt.timedelta(days=7))
        return races.create_race(session, league, self.organizer(session, league),
                                   settings.pop("name", "Race"), opens, closes, **settings)

    def racer(self, session: Session, name: str = "racer") -> m.User:
        """A racer who cannot log in (no password hashing: fast, for domain tests)."""
        user = m.User(name=name, email=f"{name.lower()}@example.org", password_hash="!")
        session.add(user)
        session.flush()
        return user

    def entry(self, session: Session, race: m.Race, racer: m.User,
              submitted_at: dt.datetime | None = None, name: str = "follower") -> m.Entry:
        """An entry without a file or a job (for tests of what happens after evaluation)."""
        version = 1 + len(session.scalars(sa.select(m.PolicyModel.id).where(
            m.PolicyModel.owner_id == racer.id, m.PolicyModel.name == name)).all())
        model = m.PolicyModel(owner_id=racer.id, name=name, version=version, sha256="0" * 64,
                              size_bytes=1, model_metadata={}, validation={})
        session.add(model)
        session.flush()
        entry = m.Entry(race_id=race.id, racer_id=racer.id, model_id=model.id,
                        submitted_at=submitted_at or self.now)
        session.add(entry)
        session.flush()
        return entry

    def result(self, session: Session, entry: m.Entry, time_s: float | None = 30.0,
               laps: int = 1, status: str = "finished",
               job_status: m.JobStatus = m.JobStatus.SUCCEEDED, **kw: Any) -> m.Result:
        """A time-trial job of ``entry`` (succeeded by default) with a hand-made result."""
        job = m.EvaluationJob(kind=m.JobKind.TIME_TRIAL, entry_id=entry.id, status=job_status)
        session.add(job)
        session.flush()
        data = {"status": status, "ranking": entry.race.ranking, "ranking_time_s": time_s,
                "ranking_laps": laps, "trials": [], "error": None, **kw.pop("data", {})}
        result = m.Result(job_id=job.id, entry_id=entry.id, status=status,
                          ranking_time_s=time_s, ranking_laps=laps, data=data, **kw)
        session.add(result)
        session.flush()
        return result


@pytest.fixture
def make() -> Factory:
    """The factories."""
    return Factory()
