"""Jinja filters: times, dates and numbers the way racers read them."""

from __future__ import annotations

import datetime as dt

from flask import Flask


def race_time(seconds: float | None) -> str:
    """Seconds as ``m:ss.sss`` (``1:02.345``); a dash when there is no time."""
    if seconds is None:
        return "–"
    millis = round(seconds * 1000)
    minutes, millis = divmod(millis, 60_000)
    return f"{minutes}:{millis / 1000:06.3f}"


def gap(seconds: float | None) -> str:
    """A gap to the leader: ``+1.234`` (blank for the leader or when not comparable)."""
    if seconds is None or seconds == 0:
        return ""
    return f"+{seconds:.3f}"


def when(value: dt.datetime | None) -> str:
    """A stored (UTC) timestamp as ``2026-06-01 12:00 UTC``."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def iso(value: dt.datetime | None) -> str:
    """A stored (UTC) timestamp in ISO 8601 with its zone, for ``<time datetime=…>``."""
    return "" if value is None else value.replace(tzinfo=dt.UTC).isoformat()


def init_app(app: Flask) -> None:
    """Register the filters on ``app``."""
    app.add_template_filter(race_time)
    app.add_template_filter(gap)
    app.add_template_filter(when)
    app.add_template_filter(iso)
