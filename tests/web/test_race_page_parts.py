"""The race page's kept copies: page numbers normalised and bounded before a page is kept; the
part below the site's header and each heat of a heat list reused only while what they show is
unchanged, so a signed-in racer's page is as fresh as a newly rendered one."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from league.models import EvaluationJob, JobStatus, Race, RaceStatus
from league.read import cache
from league.rules import headtohead as h2h
from tests.league.test_heats_read import raced_heat
from tests.web.test_public_pages import page
from web import pagecache

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory


def _kept_pages(app: Flask, path: str) -> list[Any]:
    with app.app_context():
        return [k for k in pagecache.kept().pages.keys() if k[1] == path]


def _time_trial(session: Session, make: Factory, racers: int = 3) -> Race:
    race = make.race(session, name="Sprint")
    for k in range(racers):
        make.result(session, make.entry(session, race, make.racer(session, f"tt{k}")),
                    time_s=30.0 + k)
    session.commit()
    return race


def _head_to_head(session: Session, make: Factory, league: Any = None) -> tuple[Race, list[Any]]:
    race = make.race(session, league, format="head-to-head", seed=7, name="Duel")
    race.status = RaceStatus.OPEN
    entries = [make.entry(session, race, make.racer(session, f"r{k}")) for k in range(3)]
    session.commit()
    return race, entries


def test_spellings_of_a_page_number_share_one_kept_page(
        make_app: Callable[..., Flask], session: Session, make: Factory) -> None:
    race = _time_trial(session, make)
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    client = app.test_client()
    path = f"/races/{race.id}"
    pages = {page(client, f"{path}{q}") for q in ("", "?page=1", "?page=01", "?page=001",
                                                   "?page=0", "?page=-3", "?page=x")}
    assert len(pages) == 1 and "tt0" in pages.pop()
    assert [k[2] for k in _kept_pages(app, path)] == [1]


def test_pages_past_the_end_are_served_but_not_kept(
        make_app: Callable[..., Flask], session: Session, make: Factory) -> None:
    race = _time_trial(session, make)
    duel, _ = _head_to_head(session, make, race.league)
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    client = app.test_client()
    for n in (2, 7, 5000, 10**6, 10**30):
        assert "No rows on this page." in page(client, f"/races/{race.id}?page={n}")
        assert "No heats yet." in page(client, f"/races/{duel.id}?page={n}")
    assert _kept_pages(app, f"/races/{race.id}") == []
    assert _kept_pages(app, f"/races/{duel.id}") == []


def test_a_huge_page_number_reads_as_the_last_possible_page(
        client: Any, session: Session, make: Factory) -> None:
    duel, (a, b, _) = _head_to_head(session, make)
    raced_heat(session, [a, b])
    session.commit()
    for n in (10**6, 10**6 + 1, 10**30):
        html = page(client, f"/races/{duel.id}?page={n}")
        assert "No heats on this page." in html and "1 heat" not in html


def test_signed_in_pages_show_the_race_as_it_is_now(
        make_app: Callable[..., Flask], db: Database, session: Session, make: Factory,
        login: Any) -> None:
    race = _time_trial(session, make)
    ann = make.racer(session, "ann")
    session.commit()
    member = login(make_app(PUBLIC_PAGE_CACHE_S=3600).test_client(), ann)
    path = f"/races/{race.id}"
    assert "<h1>Sprint " in page(member, path)
    session.rollback()
    with db.engine.begin() as conn:  # as another process would: nothing told this one
        conn.execute(sa.update(Race).where(Race.id == race.id).values(name="Marathon",
                                                                      laps=7))
    html = page(member, path)
    assert "<h1>Marathon " in html and "<dt>Laps</dt><dd>7</dd>" in html
    assert 'class="nav-user">ann</a>' in html and 'name="csrf_token"' in html
    with member.session_transaction() as cookie:
        cookie["_flashes"] = [("message", "Entry received.")]
    assert "Entry received." in page(member, path)
    assert "Entry received." not in page(member, path)


def test_the_viewers_actions_are_their_own(
        make_app: Callable[..., Flask], session: Session, make: Factory, login: Any) -> None:
    race = _time_trial(session, make)
    race.status = RaceStatus.OPEN
    race.opens_at, race.closes_at = make.now, make.now.replace(year=make.now.year + 50)
    ann = make.racer(session, "ann")
    session.commit()
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    path = f"/races/{race.id}"
    visitor, member = app.test_client(), login(app.test_client(), ann)
    assert "to enter this race" in page(visitor, path)
    html = page(member, path)
    assert "Enter this race" in html and "to enter this race" not in html
    assert "to enter this race" in page(visitor, path)


def test_a_heat_shows_its_new_state_at_once(
        make_app: Callable[..., Flask], session: Session, make: Factory, login: Any) -> None:
    duel, entries = _head_to_head(session, make)
    heats = h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                             [(entries[0].id, entries[1].id)], make.now)
    viewer = make.racer(session, "ann")
    session.commit()
    member = login(make_app(PUBLIC_PAGE_CACHE_S=3600).test_client(), viewer)
    path = f"/races/{duel.id}"
    item = re.compile(rf'<li class="heat" data-heat="{heats[0].id}">.*?</li>', re.S)
    first = item.search(page(member, path))
    assert first is not None and ">queued<" in first.group(0)
    session.execute(sa.update(EvaluationJob).where(EvaluationJob.heat_id == heats[0].id)
                    .values(status=JobStatus.RUNNING))
    session.commit()
    second = item.search(page(member, path))
    assert second is not None and ">running<" in second.group(0)


def test_heat_lists_of_a_racer_are_kept_but_not_those_of_nobody(
        make_app: Callable[..., Flask], session: Session, make: Factory) -> None:
    duel, (a, b, _) = _head_to_head(session, make)
    raced_heat(session, [a, b])
    session.commit()
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    client = app.test_client()
    path = f"/races/{duel.id}"
    for query in ("?racer=r0", "?racer=%20r0%20", "?racer=r0&page=01"):
        assert "1 heat with r0, newest first." in page(client, path + query)
    for n in range(5):
        assert f"No heats with nobody{n}." in page(client, f"{path}?racer=nobody{n}")
    assert "No heats with r2." in page(client, f"{path}?racer=r2")
    assert sorted(k[2:] for k in _kept_pages(app, path)) == [(1, "r0")]


def test_other_pages_ignore_a_racer_filter(make_app: Callable[..., Flask], session: Session,
                                           make: Factory) -> None:
    league = make.league(session)
    session.commit()
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    client = app.test_client()
    for n in range(5):
        page(client, f"/leagues/{league.slug}?racer=someone{n}")
    assert len(_kept_pages(app, f"/leagues/{league.slug}")) == 1


def test_a_head_to_head_page_shows_another_process_change_within_the_verify_time(
        make_app: Callable[..., Flask], db: Database, session: Session, make: Factory,
        login: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    duel, entries = _head_to_head(session, make)
    heats = h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                             [(entries[0].id, entries[1].id)], make.now)
    viewer = make.racer(session, "ann")
    session.commit()
    app = make_app(PUBLIC_PAGE_CACHE_S=3600)
    member = login(app.test_client(), viewer)
    path = f"/races/{duel.id}"
    item = re.compile(rf'<li class="heat" data-heat="{heats[0].id}">.*?</li>', re.S)
    first = item.search(page(member, path))
    assert first is not None and ">queued<" in first.group(0)
    with app.app_context():
        assert any(k[1][:2] == ("h2h", duel.id) for k in pagecache.kept().parts.keys())
    session.rollback()
    with db.engine.begin() as conn:  # another process: no new row, this one is not told
        conn.execute(sa.update(EvaluationJob).where(EvaluationJob.heat_id == heats[0].id)
                     .values(status=JobStatus.RUNNING, attempts=1))
    monkeypatch.setattr(cache, "VERIFY_S", 0.0)  # the exact version is checked every time
    second = item.search(page(member, path))
    assert second is not None and ">running<" in second.group(0)


def test_a_new_heat_shows_at_once_on_a_kept_head_to_head_page(
        make_app: Callable[..., Flask], session: Session, make: Factory, login: Any) -> None:
    duel, entries = _head_to_head(session, make)
    h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 1,
                     [(entries[0].id, entries[1].id)], make.now)
    viewer = make.racer(session, "ann")
    session.commit()
    member = login(make_app(PUBLIC_PAGE_CACHE_S=3600).test_client(), viewer)
    path = f"/races/{duel.id}"
    assert page(member, path).count('<li class="heat" data-heat=') == 1
    assert page(member, path).count('<li class="heat" data-heat=') == 1  # the kept part
    later = h2h.create_heats(session, duel, h2h.ROUND_STAGE, h2h.ROUND_SEEDS, 2,
                             [(entries[1].id, entries[2].id)], make.now)
    session.commit()
    html = page(member, path)
    assert html.count('<li class="heat" data-heat=') == 2
    assert f'data-heat="{later[0].id}"' in html
