"""A racer in a head-to-head race: record per opponent, heats raced, rating over time."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from evaluator.race_settings import Format
from league.read import matchups
from web.helpers import get_race_or_404, or_404, session
from web.links import links

bp = Blueprint("matchups", __name__)


@bp.route("/races/<int:race_id>/racers/<name>")
def racer(race_id: int, name: str) -> str:
    """One racer's matchups in a head-to-head race; 404 for other formats, racers without an
    entry, and races the viewer may not see."""
    race = get_race_or_404(race_id)
    if race.format != Format.HEAD_TO_HEAD:
        abort(404)
    found = or_404(matchups.racer_matchups, session(), race, name)
    return render_template("public/matchups.html", race=race, m=found, chart=found.chart(),
                           links=links())
