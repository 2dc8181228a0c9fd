"""Atom 1.0 feeds (RFC 4287): a league's latest news and a race's leaderboard changes.

What they list is :mod:`league.read.feeds`'s; this module writes it as Atom with the
standard library's ``xml.etree``. Links are absolute, built on ``PADDOCK_SITE_URL`` when set.
A private league's feeds are a 404 for anyone who may not see the league, like its pages.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, request, url_for

from league.read import feeds
from web.helpers import get_league_or_404, get_race_or_404, session, settings

bp = Blueprint("feeds", __name__)
ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"


@bp.route("/leagues/<slug>/feed.atom")
def league_feed(slug: str) -> Response:
    """A league's races opened and closed and its entries evaluated, newest first."""
    league = get_league_or_404(slug)
    items = feeds.league_items(session(), league)
    return _atom(f"{league.name} · Paddock", ("public.league", {"slug": league.slug}),
                 ("feeds.league_feed", {"slug": league.slug}), items, league.created_at)


@bp.route("/races/<int:race_id>/feed.atom")
def race_feed(race_id: int) -> Response:
    """A race's leaderboard changes, newest first."""
    race = get_race_or_404(race_id)
    items = feeds.race_items(session(), race)
    return _atom(f"{race.name} · {race.league.name} · Paddock",
                 ("races.race", {"race_id": race.id}), ("feeds.race_feed", {"race_id": race.id}),
                 items, race.opens_at)


def _absolute(endpoint: str, values: dict[str, Any], anchor: str | None = None) -> str:
    base = settings().site_url or request.host_url.rstrip("/")
    return base + url_for(endpoint, _anchor=anchor, **values)


def _stamp(when: dt.datetime) -> str:
    """An Atom date (RFC 3339, UTC): every stored time is UTC without tzinfo."""
    return when.replace(microsecond=0).isoformat() + "Z"


def _atom(title: str, page: tuple[str, dict[str, Any]], own: tuple[str, dict[str, Any]],
          items: Sequence[feeds.Item], since: dt.datetime) -> Response:
    """The Atom document of a feed: its id is the page it follows."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    page_url = _absolute(*page)
    _text(feed, "id", page_url)
    _text(feed, "title", title)
    _text(feed, "updated", _stamp(items[0].updated if items else since))
    ET.SubElement(feed, f"{{{ATOM_NS}}}link", rel="self", type=ATOM_TYPE,
                  href=_absolute(*own))
    ET.SubElement(feed, f"{{{ATOM_NS}}}link", rel="alternate", type="text/html", href=page_url)
    author = ET.SubElement(feed, f"{{{ATOM_NS}}}author")
    _text(author, "name", "Paddock")
    for item in items:
        entry = ET.SubElement(feed, f"{{{ATOM_NS}}}entry")
        _text(entry, "id", _absolute(*page, anchor=item.key))
        _text(entry, "title", item.title)
        _text(entry, "updated", _stamp(item.updated))
        ET.SubElement(entry, f"{{{ATOM_NS}}}link", rel="alternate", type="text/html",
                      href=_absolute("races.race", {"race_id": item.race_id}))
        _text(entry, "summary", item.summary)
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return Response(body, content_type=f"{ATOM_TYPE}; charset=utf-8")


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}").text = text
