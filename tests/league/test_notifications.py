"""Notifications: events queue deliveries in their own transaction (an evaluation finishing
or failing through the real job functions, a lead lost, a race opening), and the
scheduler's delivery step posts signed webhooks to a real local receiver, retries after a
500 with backoff on a controlled clock, gives up in the end, refuses private addresses
unless the operator allows them, and mails through the outbox without SMTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.config import Settings
from league.models import (
    DeliveryStatus,
    EvaluationJob,
    FailureKind,
    JobKind,
    Notification,
    NotificationEvent,
    OutboxMail,
    RaceStatus,
    User,
)
from league.processes import notify
from league.rules import jobs, leagues, notifications, seasons
from league.rules.notifications import WebhookRefused
from league.storage import Storage

if TYPE_CHECKING:
    from tests.support.dbfixtures import Database, Factory

NOW = dt.datetime(2026, 6, 1, 12, 0, 0)
ALL = {e: ["webhook"] for e in NotificationEvent}


@dataclass
class Receiver:
    """A local HTTP server that records what it receives and answers ``statuses`` in turn
    (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = box.statuses.pop(0) if box.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hook?from=paddock"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


def _settings(db: Database, tmp_path: Path, **kw: Any) -> Settings:
    return Settings(database_url=db.url, storage_dir=tmp_path / "storage", secret_key="k",
                    site_url="https://league.example", **kw)


def _fake_dns(host: str, port: int) -> list[str]:
    """A public address for the tests' made-up hosts; an address stays itself."""
    return [host] if host[0].isdigit() else ["93.184.215.14"]


def _subscribe(session: Session, user: User, url: str,
               chosen: dict[Any, list[str]] | None = None) -> str:
    found = notifications.save_settings(session, user, chosen or ALL, url, allow_private=True,
                                        resolve=_fake_dns)
    return found.webhook_secret


def _finish(session: Session, storage: Storage, make: Factory, race: Any, racer: User,
            time_s: float) -> EvaluationJob:
    """An entry of ``racer`` evaluated through the real job functions (claimed, completed)."""
    entry = make.entry(session, race, racer)
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry.id)
    session.add(job)
    session.flush()
    claimed = jobs.claim_job(session, "w1", 30.0, now=NOW)
    assert claimed is not None and claimed.id == job.id
    result = {"status": "finished", "ranking": race.ranking, "ranking_time_s": time_s,
              "ranking_laps": 1, "ranked_trial": 1,
              "trials": [{"trial": 1, "status": "finished", "laps_completed": 1,
                          "best_lap_s": time_s}]}
    assert jobs.complete_job(session, job.id, "w1", result, [], storage, now=NOW)
    return job


def _deliver(session: Session, db: Database, settings: Settings,
             now: dt.datetime) -> dict[str, int]:
    """The scheduler's delivery step at ``now``, the test's own transaction ended first (on
    SQLite it holds the write lock)."""
    session.commit()
    return notify.deliver_due(db.factory, settings, now)


def _queued(session: Session, user: User) -> list[Notification]:
    return list(session.scalars(sa.select(Notification).where(Notification.user_id == user.id)
                                .order_by(Notification.id)))


def test_a_finished_evaluation_is_delivered_signed(session: Session, db: Database,
                                                   storage: Storage, make: Factory,
                                                   receiver: Receiver, tmp_path: Path) -> None:
    race = make.race(session, name="Dock Dash", mystery_track=True, track="royal-park",
                     seed=424242, seed_public=False)
    ada = make.racer(session, "ada")
    secret = _subscribe(session, ada, receiver.url)
    _finish(session, storage, make, race, ada, 41.25)
    [queued] = _queued(session, ada)
    assert queued.event == NotificationEvent.EVALUATION_FINISHED
    session.commit()

    counts = _deliver(session, db, _settings(db, tmp_path, webhooks_allow_private=True), NOW)
    assert counts == {"sent": 1, "retry": 0, "failed": 0}
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-paddock-signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "evaluation_finished"
    assert payload["content"] == payload["text"] and "41.250 s" in payload["content"]
    assert payload["race"] == {"id": race.id, "name": "Dock Dash"}
    assert payload["url"] == f"https://league.example/races/{race.id}"
    assert headers["x-paddock-timestamp"] == payload["sent_at"] == "2026-06-01T12:00:00Z"
    assert "royal" not in body.decode().lower() and "424242" not in body.decode()
    session.expire_all()
    assert _queued(session, ada)[0].status == DeliveryStatus.SENT


def test_a_500_is_retried_with_backoff_then_given_up(session: Session, db: Database,
                                                     storage: Storage, make: Factory,
                                                     receiver: Receiver,
                                                     tmp_path: Path) -> None:
    race = make.race(session)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, receiver.url)
    _finish(session, storage, make, race, ada, 40.0)
    session.commit()
    settings = _settings(db, tmp_path, webhooks_allow_private=True)
    receiver.statuses = [500]
    assert _deliver(session, db, settings, NOW)["retry"] == 1
    [row] = _queued(session, ada)
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert row.next_attempt_at == NOW + notifications.BACKOFF[0]
    assert "HTTP 500" in row.last_error
    # not yet due: nothing is sent
    assert _deliver(session, db, settings, NOW + dt.timedelta(seconds=29)) == \
        {"sent": 0, "retry": 0, "failed": 0}
    assert len(receiver.received) == 1
    assert _deliver(session, db, settings, NOW + dt.timedelta(seconds=30))["sent"] == 1
    assert len(receiver.received) == 2

    # a receiver that always fails: each retry waits longer, then the delivery is given up
    _finish(session, storage, make, race, ada, 39.0)
    session.commit()
    receiver.statuses = [500] * notifications.MAX_ATTEMPTS
    clock = NOW
    for wait in (dt.timedelta(0), *notifications.BACKOFF):
        clock += wait
        _deliver(session, db, settings, clock)
    session.expire_all()
    last = _queued(session, ada)[-1]
    assert (last.status, last.attempts) == (DeliveryStatus.FAILED, notifications.MAX_ATTEMPTS)
    assert len(receiver.received) == 2 + notifications.MAX_ATTEMPTS


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "::1", "169.254.169.254",
                                     "192.168.0.7", "0.0.0.0", "fc00::1"])
def test_private_addresses_are_refused(address: str) -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", address]  # one bad address is enough to refuse

    with pytest.raises(WebhookRefused, match="public addresses only"):
        notifications.check_webhook_url("https://hooks.example/x", False, resolve)
    notifications.check_webhook_url("https://hooks.example/x", True, resolve)  # allowed
    notifications.check_webhook_url("https://hooks.example/x", False,
                                    lambda host, port: ["93.184.215.14"])


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "hooks.example/x", "http:///x",
                                 "https://user:pw@hooks.example/x", "https://h.example:99999/"])
def test_malformed_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused):
        notifications.check_webhook_url(url, True, lambda host, port: ["93.184.215.14"])


def test_delivery_to_a_loopback_receiver_is_refused_unless_allowed(
        session: Session, db: Database, storage: Storage, make: Factory, receiver: Receiver,
        tmp_path: Path) -> None:
    race = make.race(session)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, receiver.url)  # saved while the operator allowed it
    _finish(session, storage, make, race, ada, 40.0)
    session.commit()
    counts = _deliver(session, db, _settings(db, tmp_path), NOW)
    assert counts == {"sent": 0, "retry": 0, "failed": 1}
    assert receiver.received == []
    [row] = _queued(session, ada)
    assert row.status == DeliveryStatus.FAILED and "127.0.0.1" in row.last_error


def test_taking_the_lead_tells_the_previous_leader(session: Session, storage: Storage,
                                                   make: Factory) -> None:
    race = make.race(session, name="Dock Dash")
    ada, bo = make.racer(session, "ada"), make.racer(session, "bo")
    _subscribe(session, ada, "https://hooks.example/ada")
    _finish(session, storage, make, race, ada, 40.0)
    _finish(session, storage, make, race, bo, 45.0)  # second: ada still leads
    assert [n.event for n in _queued(session, ada)] == [NotificationEvent.EVALUATION_FINISHED]
    _finish(session, storage, make, race, bo, 38.5)
    lost = _queued(session, ada)[-1]
    assert lost.event == NotificationEvent.LOST_TOP_SPOT
    assert lost.payload["leader"] == "bo"
    assert notifications.message(lost.payload) == \
        "bo took the lead of Dock Dash from you (1 lap(s) in 38.500 s)."


def test_a_failed_evaluation_says_why(session: Session, make: Factory) -> None:
    race = make.race(session)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, "https://hooks.example/ada")
    entry = make.entry(session, race, ada)
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=entry.id)
    session.add(job)
    session.flush()
    jobs.claim_job(session, "w1", 30.0, now=NOW)
    jobs.fail_job(session, job.id, "w1", FailureKind.VALIDATION, "the model has no outputs",
                  now=NOW)
    [row] = _queued(session, ada)
    assert row.event == NotificationEvent.EVALUATION_FAILED
    assert "the model has no outputs" in notifications.message(row.payload)


def test_a_failure_does_not_name_a_mystery_track(session: Session, make: Factory) -> None:
    race = make.race(session, track="royal-park", mystery_track=True)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, "https://hooks.example/ada")
    job = EvaluationJob(kind=JobKind.TIME_TRIAL, entry_id=make.entry(session, race, ada).id)
    session.add(job)
    session.flush()
    jobs.claim_job(session, "w1", 30.0, now=NOW)
    jobs.fail_job(session, job.id, "w1", FailureKind.INFRASTRUCTURE,
                  "track 'royal-park' has changed since the race was created", now=NOW)
    [row] = _queued(session, ada)
    assert "royal-park" not in json.dumps(row.payload)
    assert "the race's track" in row.payload["reason"]


def test_an_event_rolled_back_tells_nobody(session: Session, storage: Storage,
                                           make: Factory) -> None:
    race = make.race(session)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, "https://hooks.example/ada")
    session.commit()
    _finish(session, storage, make, race, ada, 40.0)
    session.rollback()
    assert _queued(session, ada) == []


def test_a_race_opening_is_mailed_to_members_through_the_outbox(
        session: Session, db: Database, make: Factory, tmp_path: Path) -> None:
    league = make.league(session)
    race = make.race(session, league, name="Night Sprint", opens_at=NOW,
                     closes_at=NOW + dt.timedelta(days=2))
    race.status = RaceStatus.SCHEDULED
    ada, outsider = make.racer(session, "ada"), make.racer(session, "zed")
    leagues.join_league(session, league, ada)
    for user in (ada, outsider):
        notifications.save_settings(session, user, {NotificationEvent.RACE_OPENED: ["email"]},
                                    "", allow_private=False)
    assert [r.id for r in seasons.open_due_races(session, NOW)] == [race.id]
    assert [n.event for n in _queued(session, ada)] == [NotificationEvent.RACE_OPENED]
    assert _queued(session, outsider) == []
    session.commit()
    assert _deliver(session, db, _settings(db, tmp_path), NOW)["sent"] == 1
    [mail] = session.scalars(sa.select(OutboxMail)).all()
    assert mail.recipient == "ada@example.org" and "Night Sprint is open" in mail.subject
    assert f"https://league.example/races/{race.id}" in mail.body


def test_settings_refuse_what_cannot_be_delivered(session: Session, make: Factory) -> None:
    ada = make.racer(session, "ada")
    with pytest.raises(notifications.InvalidInput, match="webhook URL is needed"):
        notifications.save_settings(session, ada, ALL, "", allow_private=False)
    with pytest.raises(notifications.InvalidInput, match="unknown event"):
        notifications.save_settings(session, ada, {"lunch": ["email"]}, "", allow_private=False)
    with pytest.raises(WebhookRefused):
        notifications.save_settings(session, ada, ALL, "http://127.0.0.1:9/x",
                                    allow_private=False)
    assert session.get(notifications.NotificationSettings, ada.id) is None


def test_the_scheduler_step_delivers(session: Session, db: Database, storage: Storage,
                                     make: Factory, receiver: Receiver, tmp_path: Path) -> None:
    from league.processes import scheduler

    race = make.race(session)
    ada = make.racer(session, "ada")
    _subscribe(session, ada, receiver.url)
    _finish(session, storage, make, race, ada, 40.0)
    session.commit()
    scheduler.configure(_settings(db, tmp_path, webhooks_allow_private=True))
    try:
        assert scheduler.deliver_notifications()["sent"] == 1
    finally:
        scheduler.close()
    assert len(receiver.received) == 1
