"""How things read on the site: times, dates and numbers the way racers read them, the names
of formats and ranking methods, and an entry's status badge (its words and CSS class).

Templates use them as filters (``race.format|format_label``) and globals (``Format``, the
race-settings vocabulary of :mod:`evaluator.race_settings`, so templates hold no literals of
it); the garage's templates also get the badge helpers (see :mod:`web.views.garage`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Flask, url_for

from evaluator.actions import ActionSpec
from evaluator.conditions import Conditions, ConditionsError, TrialConditions
from evaluator.errors import PaddockError
from evaluator.race_settings import FORMAT_LABELS, RANKING_LABELS, Format, Ranking, bot_name
from league.models import JobStatus, Race
from league.read.heats import EntryState, Standing
from league.rules import races
from league.rules.leaderboard import EntryStatus


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


def format_label(race_format: str) -> str:
    """What a race format is called ("Time trial", "Head-to-head")."""
    return FORMAT_LABELS.get(race_format, race_format)


def ranking_label(ranking: str) -> str:
    """What a ranking method is called, as a column title ("Total time", "Best lap")."""
    return RANKING_LABELS[ranking][0] if ranking in RANKING_LABELS else ranking


def status_label(status: EntryStatus, race_format: str = Format.TIME_TRIAL,
                 standing: Standing | None = None) -> str:
    """How an entry's status reads on a badge ("running, attempt 2", "finished 0:42.100").

    A head-to-head entry with its ``standing`` reads "racing" (the racer's latest entry),
    "replaced by v3" (a newer upload races instead) or "raced" (the race is closed).
    """
    if status.disqualified:
        return "disqualified"
    if status.status is None and standing is not None:
        if standing.state == EntryState.REPLACED:
            return f"replaced by v{standing.replaced_by}"
        return str(standing.state)
    if status.status is None:
        return "in the heats" if race_format == Format.HEAD_TO_HEAD else "not queued"
    if status.status == JobStatus.RUNNING:
        return f"running, attempt {status.attempts}"
    if status.status == JobStatus.FAILED:
        return f"failed ({status.failure_kind})" if status.failure_kind else "failed"
    if status.status == JobStatus.SUCCEEDED and status.result_status:
        label = status.result_status.replace("_", " ")
        if status.time_s is not None:
            label += f" {race_time(status.time_s)}"
        return label
    return str(status.status)


def status_class(status: EntryStatus) -> str:
    """The CSS class of an entry's status badge."""
    if status.disqualified:
        return "bad"
    if status.status == JobStatus.SUCCEEDED and status.result_status:
        return f"status-{status.result_status}"
    return f"status-{status.status}" if status.status else ""


def action_space_summary(metadata: Mapping[str, Any] | None) -> str:
    """A model's action space in a few words ("continuous: steering ±30°, 0.5-4 m/s")."""
    try:
        spec = ActionSpec.from_metadata(metadata or None)
    except (PaddockError, ValueError, TypeError, KeyError):
        return "unknown action space"
    if spec.kind == "discrete":
        return f"discrete: {len(spec.choices)} actions"
    (s_lo, s_hi), (v_lo, v_hi) = spec.steering_range, spec.speed_range
    return f"continuous: steering {s_lo:g}° to {s_hi:g}°, speed {v_lo:g}-{v_hi:g} m/s"


def conditions_summary(conditions: Mapping[str, Any] | None) -> str:
    """A race's conditions in a line (:meth:`evaluator.conditions.Conditions.describe`)."""
    try:
        return Conditions.parse(dict(conditions) if conditions is not None else None).describe()
    except ConditionsError:
        return "unknown"


def drawn_conditions(values: Mapping[str, Any] | None) -> str:
    """One trial's drawn conditions (:meth:`evaluator.conditions.TrialConditions.describe`);
    "–" for a trial stored without them."""
    if not values:
        return "–"
    try:
        return TrialConditions.from_dict(dict(values)).describe()
    except (KeyError, TypeError, ValueError):
        return "–"


def home_command(race: Race) -> str:
    """The command that evaluates a model at home exactly as ``race`` does (its settings
    fetched from this site by the race's number: :mod:`evaluator.race_fetch`)."""
    server = url_for("public.home", _external=True).rstrip("/")
    return f"paddock evaluate model.onnx --race {race.id} --server {server}"


def bot_names(bots: list[dict[str, Any]] | None) -> str:
    """A head-to-bot race's bot cars as the results and replays name them: "Bot 1 (1.6 m/s),
    Bot 2 (2 m/s)" (a dash for none)."""
    speeds = [b.get("speed") for b in bots or [] if isinstance(b, dict)]
    return ", ".join(bot_name(k, float(v)) for k, v in enumerate(speeds, start=1)
                     if isinstance(v, int | float)) or "–"


def practice_seed(race: Race) -> int:
    """The seed racers practise ``race`` on at home while its seed is secret
    (:func:`league.rules.races.practice_seed`)."""
    return races.practice_seed(race)


def track_secret(race: Race) -> bool:
    """Whether ``race``'s mystery track is still hidden (:func:`league.rules.races.track_secret`):
    lists shared by every viewer then say "mystery track" instead of its name."""
    return races.track_secret(race)


def init_app(app: Flask) -> None:
    """Register the filters, and the race-settings vocabulary as globals, on ``app``."""
    for f in (race_time, gap, when, iso, format_label, ranking_label, conditions_summary,
              drawn_conditions, practice_seed, bot_names):
        app.add_template_filter(f)
    app.add_template_test(track_secret)
    app.add_template_global(Format, "Format")
    app.add_template_global(home_command)
    app.add_template_global(Ranking, "Ranking")
