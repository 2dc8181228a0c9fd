"""How things read on the site: times, format and ranking names, entry status badges."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from evaluator.race_settings import FORMATS, RANKINGS, Format
from league.models import FailureKind, JobStatus
from league.rules.leaderboard import EntryStatus
from web import filters

NEVER_QUEUED = EntryStatus(entry_id=1, status=None, job_id=None, attempts=0, queued_at=None,
                           started_at=None, finished_at=None, failure_kind=None, reason="",
                           result_id=None, result_status=None, time_s=None, disqualified=False)


def _status(**changes: object) -> EntryStatus:
    return dataclasses.replace(NEVER_QUEUED, **changes)  # type: ignore[arg-type]


def test_times_and_dates() -> None:
    assert filters.race_time(62.3454) == "1:02.345" and filters.race_time(None) == "–"
    assert filters.gap(1.2345) == "+1.234" and filters.gap(0.0) == ""
    when = dt.datetime(2026, 6, 1, 12, 0)
    assert filters.when(when) == "2026-06-01 12:00 UTC"
    assert filters.iso(when) == "2026-06-01T12:00:00+00:00"


def test_bot_names_read_as_in_results_and_replays() -> None:
    assert filters.bot_names([{"speed": 1.6}, {"speed": 2}]) == "Bot 1 (1.6 m/s), Bot 2 (2 m/s)"
    assert filters.bot_names([]) == "–"


def test_every_format_and_ranking_method_has_a_name() -> None:
    assert [filters.format_label(f) for f in FORMATS] == ["Time trial", "Head-to-head",
                                                          "Head-to-bot"]
    assert filters.format_label("head-to-head") == "Head-to-head"  # as the database holds it
    assert [filters.ranking_label(r) for r in RANKINGS] == \
        ["Total time", "Best lap", "Average lap"]
    assert filters.format_label("relay") == "relay"  # unknown: shown as it is


@pytest.mark.parametrize("status, race_format, label, css", [
    (NEVER_QUEUED, Format.TIME_TRIAL, "not queued", ""),
    (NEVER_QUEUED, Format.HEAD_TO_HEAD, "in the heats", ""),
    (NEVER_QUEUED, Format.HEAD_TO_BOT, "not queued", ""),  # evaluated like a time trial
    (_status(status=JobStatus.QUEUED, attempts=1), Format.TIME_TRIAL, "queued",
     "status-queued"),
    (_status(status=JobStatus.RUNNING, attempts=2), Format.TIME_TRIAL, "running, attempt 2",
     "status-running"),
    (_status(status=JobStatus.FAILED, failure_kind=FailureKind.TIMEOUT), Format.TIME_TRIAL,
     "failed (timeout)", "status-failed"),
    (_status(status=JobStatus.SUCCEEDED, result_status="finished", time_s=62.5),
     Format.TIME_TRIAL, "finished 1:02.500", "status-finished"),
    (_status(status=JobStatus.SUCCEEDED, result_status="policy_error"), Format.TIME_TRIAL,
     "policy error", "status-policy_error"),
    (_status(status=JobStatus.SUCCEEDED, result_status="finished", disqualified=True),
     Format.TIME_TRIAL, "disqualified", "bad"),
])
def test_status_badges(status: EntryStatus, race_format: str, label: str, css: str) -> None:
    assert filters.status_label(status, race_format) == label
    assert filters.status_class(status) == css


def test_action_space_summary() -> None:
    discrete = {"action_space_type": "discrete", "action_space": [
        {"steering_angle": -30, "speed": 1.0}, {"steering_angle": 30, "speed": 1.0},
        {"steering_angle": 0, "speed": 2.0}]}
    assert filters.action_space_summary(discrete) == "discrete: 3 actions"
    continuous = {"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -20, "high": 25}, "speed": {"low": 0.5, "high": 3.5}}}
    assert filters.action_space_summary(continuous) == \
        "continuous: steering -20° to 25°, speed 0.5-3.5 m/s"
    assert filters.action_space_summary({"action_space_type": "odd"}) == "unknown action space"
