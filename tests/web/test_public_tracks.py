"""The tracks gallery, a track's page and its SVG drawing (no script, cached by digest)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from evaluator.track_library import import_track, library_names, load_track
from tests.web.test_public_pages import page
from web import trackdraw

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory


def test_gallery_shows_every_library_track(client: FlaskClient) -> None:
    html = page(client, "/tracks")
    for name in library_names():
        track = load_track(name)
        assert f'href="/tracks/{name}"' in html
        assert f'src="/tracks/{name}.svg?v={track.digest[:32]}"' in html
        assert f"{track.length:.1f} m" in html
    assert html.count('<article class="card track-card">') == len(library_names())


def test_track_page_lists_the_visible_races(client: FlaskClient, session: Session,
                                           make: Factory) -> None:
    make.race(session, make.league(session, slug="open-club"), name="Oval Open")
    make.race(session, make.league(session, slug="inner", visibility="private"),
              name="Oval Secret")
    make.race(session, make.league(session, slug="kidneys"), name="Kidney Cup", track="kidney")
    session.commit()
    html = page(client, "/tracks/oval")
    track = load_track("oval")
    assert "Paddock Oval" in html and track.digest in html
    assert f"{track.length:.2f} m along the centerline" in html
    assert "Oval Open" in html and "Oval Secret" not in html and "Kidney Cup" not in html
    assert "No race uses this track" in page(client, "/tracks/speedway")


def test_track_svg_is_a_cached_drawing_without_script(client: FlaskClient) -> None:
    track = load_track("royal-park")
    r = client.get("/tracks/royal-park.svg")
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    svg = r.get_data(as_text=True)
    assert svg.startswith("<?xml") and "<svg" in svg and "</svg>" in svg
    assert 'class="surface"' in svg and 'class="centerline"' in svg
    assert "stroke-dasharray" in svg and 'class="start-line"' in svg
    assert 'class="direction"' in svg
    assert not re.search(r"<script|javascript:|\son\w+=|href=", svg, re.I)
    etag = track.digest[:32]
    assert r.headers["ETag"] == f'"{etag}"'
    assert r.headers["Cache-Control"] == "public, max-age=3600"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    versioned = client.get(f"/tracks/royal-park.svg?v={etag}")
    assert "max-age=31536000" in versioned.headers["Cache-Control"]
    again = client.get("/tracks/royal-park.svg", headers={"If-None-Match": f'"{etag}"'})
    assert again.status_code == 304 and again.data == b""


@pytest.mark.parametrize("path", ["/tracks/nope", "/tracks/nope.svg", "/tracks/oval.csv",
                                  "/tracks/..%2F..%2Fetc%2Fpasswd", "/tracks/Oval.svg",
                                  "/tracks/%2Ftmp%2Fx.npy.svg"])
def test_unknown_or_path_like_tracks_are_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_imported_tracks_join_the_gallery_escaped(client: FlaskClient, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PADDOCK_TRACKS_DIR", str(tmp_path / "tracks"))
    source = tmp_path / "loop.csv"
    source.write_text(load_track("oval").to_csv(), "utf-8")
    import_track(source, "club-loop", description="<script>alert(1)</script> our loop")
    html = page(client, "/tracks")
    assert 'href="/tracks/club-loop"' in html and "imported on this site" in html
    detail = page(client, "/tracks/club-loop")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; our loop" in detail
    assert "(imported)" in detail
    svg = client.get("/tracks/club-loop.svg").get_data(as_text=True)
    assert "<title>club-loop</title>" in svg and "<script" not in svg


def test_drawings_refuse_active_content() -> None:
    assert trackdraw.FORBIDDEN.search('<svg><a href="javascript:alert(1)">')
    assert trackdraw.FORBIDDEN.search('<rect onload="x()"/>')
    assert not trackdraw.FORBIDDEN.search(trackdraw.drawing(load_track("oval")).svg)
    assert trackdraw.find_track("../oval") is None and trackdraw.find_track("oval.csv") is None
