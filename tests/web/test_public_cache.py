"""Pages kept for visitors: served again only while nothing they show has changed (or for a
moment, for changes made by another process); signed-in users always get a fresh page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from league.models import Race
from tests.web.test_public_pages import page
from web import pagecache

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _rename_elsewhere(db: Database, session: Session, race_id: int, name: str) -> None:
    """Rename a race the way another process would: no ORM events in this one."""
    session.rollback()
    with db.engine.begin() as conn:
        conn.execute(sa.update(Race).where(Race.id == race_id).values(name=name))


@pytest.fixture
def race_id(session: Session, make: Factory) -> int:
    race = make.race(session, name="First Name")
    make.result(session, make.entry(session, race, make.racer(session, "ann")), time_s=30.0)
    session.commit()
    return race.id


def test_visitors_get_the_kept_page_for_a_moment(
        make_app: Callable[..., Flask], db: Database, session: Session, race_id: int,
        login: Any, make: Factory) -> None:
    bob = make.racer(session, "bob")
    session.commit()
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    visitor, member = app.test_client(), login(app.test_client(), bob)
    assert "First Name" in page(visitor, f"/races/{race_id}")
    assert "First Name" in page(member, f"/races/{race_id}")
    _rename_elsewhere(db, session, race_id, "Second Name")
    assert "First Name" in page(visitor, f"/races/{race_id}")  # nothing told this process
    assert "Second Name" in page(member, f"/races/{race_id}")  # signed in: always fresh


def test_a_new_result_or_a_commit_here_renews_the_page(
        make_app: Callable[..., Flask], session: Session, race_id: int,
        make: Factory) -> None:
    client = make_app(PUBLIC_PAGE_CACHE_S=3600).test_client()
    assert "/racers/cy" not in page(client, f"/races/{race_id}")
    race = session.get(Race, race_id)
    assert race is not None
    make.result(session, make.entry(session, race, make.racer(session, "cy")), time_s=20.0)
    session.commit()
    assert "/racers/cy" in page(client, f"/races/{race_id}")
    race.name = "Renamed Here"
    session.commit()
    assert "Renamed Here" in page(client, f"/races/{race_id}")


def test_the_cache_can_be_turned_off(make_app: Callable[..., Flask], db: Database,
                                     session: Session, race_id: int) -> None:
    client = make_app(PUBLIC_PAGE_CACHE_S=0).test_client()
    assert "First Name" in page(client, f"/races/{race_id}")
    _rename_elsewhere(db, session, race_id, "Second Name")
    assert "Second Name" in page(client, f"/races/{race_id}")


def test_pages_with_a_message_are_never_kept(make_app: Callable[..., Flask],
                                             race_id: int) -> None:
    client = make_app(PUBLIC_PAGE_CACHE_S=3600).test_client()
    page(client, f"/races/{race_id}")
    with client.session_transaction() as cookie:
        cookie["_flashes"] = [("message", "You are logged out.")]
    assert "You are logged out." in page(client, f"/races/{race_id}")
    assert "You are logged out." not in page(client, f"/races/{race_id}")


CHECK_INSTALL = """
import sys
from sqlalchemy import event
from sqlalchemy.orm import Session
from league.read import browse, cache, garage
import web
def installed():
    return event.contains(Session, "after_commit", cache._after_commit)
before = installed()
web.create_app({"DATABASE_URL": sys.argv[1], "PADDOCK_STORAGE_DIR": sys.argv[2],
                "SECRET_KEY": "x"})
print(before, installed())
"""


def test_nothing_is_installed_on_import_create_app_installs(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", CHECK_INSTALL,
                          f"sqlite:///{tmp_path / 'league.sqlite3'}", str(tmp_path / "storage")],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["False", "True"], run.stderr


def test_apps_keep_their_own_pages(make_app: Callable[..., Flask], race_id: int) -> None:
    first, second = make_app(PUBLIC_PAGE_CACHE_S=3600), make_app(PUBLIC_PAGE_CACHE_S=3600)
    page(first.test_client(), f"/races/{race_id}")
    with first.app_context():
        assert [k[1] for k in pagecache.kept().pages.keys()] == [f"/races/{race_id}"]
        assert len(pagecache.kept().fragments.keys()) == 1  # the leaderboard's rows
    with second.app_context():
        assert pagecache.kept().pages.keys() == []
