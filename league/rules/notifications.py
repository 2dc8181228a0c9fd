"""Notifications: what racers chose to be told about, queued with the event, delivered later.

An event (an evaluation finished or failed, a racer lost the top spot of a race, a race of
a league they belong to opened or closed) queues one :class:`Notification` row per
subscribed user and channel, in the transaction that records the event, so an event
rolled back tells nobody. The scheduler delivers them (:mod:`league.processes.notify`),
never a web request: :func:`due` reads what is due, :func:`record` keeps the outcome and
retries with backoff (:data:`BACKOFF`), giving up after :data:`MAX_ATTEMPTS`.

A new kind of event is a :class:`NotificationEvent` value, a sentence in :func:`message` and
a call of :func:`queue` where the event happens (as :func:`live_event_soon` for a live event
starting soon).

Webhook addresses must resolve to public addresses only (:func:`check_webhook_url`), when
saved and again before each delivery, unless the operator allows private ones
(``PADDOCK_WEBHOOKS_ALLOW_PRIVATE``). Payloads never name a race's track nor hold a seed.
Functions take a session and never commit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from league.errors import InvalidInput
from league.models import (
    DeliveryStatus,
    Entry,
    EvaluationJob,
    JobKind,
    Membership,
    Notification,
    NotificationChannel,
    NotificationEvent,
    NotificationSettings,
    Race,
    Result,
    User,
    utcnow,
)
from league.rules.race_history import ranked_changes
from league.rules.races import track_secret

#: what the settings page calls each event, in the order it lists them
EVENT_LABELS = {
    NotificationEvent.EVALUATION_FINISHED: "An evaluation of my entry finished",
    NotificationEvent.EVALUATION_FAILED: "An evaluation of my entry failed (with the reason)",
    NotificationEvent.LOST_TOP_SPOT: "I lost the top spot of a race",
    NotificationEvent.RACE_OPENED: "A race opened in one of my leagues",
    NotificationEvent.RACE_CLOSED: "A race closed in one of my leagues",
    NotificationEvent.LIVE_EVENT_SOON: "A live event in my leagues or races starts in 10 minutes",
}
#: the wait before each retry: after the 1st failed attempt, the 2nd, ...
BACKOFF = (dt.timedelta(seconds=30), dt.timedelta(minutes=2), dt.timedelta(minutes=10),
           dt.timedelta(hours=1))
MAX_ATTEMPTS = len(BACKOFF) + 1  #: attempts before a delivery is given up
URL_CHARS = 2000  #: NotificationSettings.webhook_url's length
ERROR_CHARS = 500  #: the last error kept on a delivery
DUE_BATCH = 50  #: deliveries one scheduler run takes on

Resolver = Callable[[str, int], Sequence[str]]


class WebhookRefused(InvalidInput):
    """Raised when a webhook URL is malformed or points at an address it may not reach."""


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as err:
        raise WebhookRefused(f"the webhook's host {host!r} does not resolve: {err}") from err
    return [str(info[4][0]) for info in infos]


def check_webhook_url(url: str, allow_private: bool,
                      resolve: Resolver = _resolve) -> tuple[urllib.parse.SplitResult, list[str]]:
    """The parts of webhook ``url`` and the addresses it resolves to; :class:`WebhookRefused`
    when it is not ``http(s)://host/...``, or when any address it resolves to is private,
    loopback, link-local, multicast, reserved or unspecified (unless ``allow_private``)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("a webhook URL must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        raise WebhookRefused("a webhook URL must not hold a user name or password")
    if len(url) > URL_CHARS:
        raise WebhookRefused(f"a webhook URL may have at most {URL_CHARS} characters")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise WebhookRefused(f"the webhook URL's port is not a number: {err}") from err
    addresses = list(resolve(parts.hostname, port))
    if not addresses:
        raise WebhookRefused(f"the webhook's host {parts.hostname!r} does not resolve")
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise WebhookRefused(
                    f"the webhook's host {parts.hostname!r} resolves to {ip}, a private, "
                    f"loopback, link-local or reserved address: webhooks go to public "
                    f"addresses only")
    return parts, addresses


def settings_of(session: Session, user: User) -> NotificationSettings:
    """``user``'s notification settings (new ones, with a webhook secret, the first time)."""
    found = session.get(NotificationSettings, user.id)
    if found is None:
        found = NotificationSettings(user_id=user.id, subscriptions={}, webhook_url="",
                                     webhook_secret=secrets.token_hex(32), updated_at=utcnow())
        session.add(found)
        session.flush()
    return found


def save_settings(session: Session, user: User, chosen: Mapping[str, Iterable[str]],
                  webhook_url: str, allow_private: bool,
                  resolve: Resolver = _resolve) -> NotificationSettings:
    """Keep what ``user`` wants to be told (``{event: channels}``) and their webhook URL;
    :class:`InvalidInput` (nothing kept) for an unknown event or channel, a webhook
    channel without a URL, or a URL :func:`check_webhook_url` refuses."""
    subscriptions: dict[str, list[str]] = {}
    for event, channels in chosen.items():
        if event not in set(NotificationEvent):
            raise InvalidInput(f"unknown event {event!r}")
        picked = sorted(set(channels))
        for channel in picked:
            if channel not in set(NotificationChannel):
                raise InvalidInput(f"unknown channel {channel!r}")
        if picked:
            subscriptions[event] = picked
    url = webhook_url.strip()
    if url:
        check_webhook_url(url, allow_private, resolve)
    elif any(NotificationChannel.WEBHOOK in c for c in subscriptions.values()):
        raise InvalidInput("a webhook URL is needed to be told by webhook")
    found = settings_of(session, user)
    found.subscriptions = subscriptions
    found.webhook_url = url
    found.updated_at = utcnow()
    session.flush()
    return found


def new_secret(session: Session, user: User) -> str:
    """Give ``user``'s webhook a new signing secret (the old one stops verifying)."""
    found = settings_of(session, user)
    found.webhook_secret = secrets.token_hex(32)
    session.flush()
    return found.webhook_secret


def queue(session: Session, user_ids: Iterable[int], event: NotificationEvent,
          payload: Mapping[str, Any], now: dt.datetime) -> list[Notification]:
    """One delivery per channel for each of ``user_ids`` subscribed to ``event``."""
    ids = sorted(set(user_ids))
    if not ids:
        return []
    queued = []
    for found in session.scalars(sa.select(NotificationSettings)
                                 .where(NotificationSettings.user_id.in_(ids))):
        for channel in found.subscriptions.get(event, []):
            if channel == NotificationChannel.WEBHOOK and not found.webhook_url:
                continue
            queued.append(Notification(
                user_id=found.user_id, event=event, channel=channel,
                payload={"event": str(event), **payload}, status=DeliveryStatus.PENDING,
                attempts=0, next_attempt_at=now, created_at=now, last_error=""))
    session.add_all(queued)
    session.flush()
    return queued


def _race_fields(race: Race) -> dict[str, Any]:
    return {"race": {"id": race.id, "name": race.name},
            "league": {"slug": race.league.slug, "name": race.league.name},
            "path": f"/races/{race.id}"}


def job_finished(session: Session, job: EvaluationJob, now: dt.datetime) -> None:
    """A time trial's result was recorded: tell its racer, and whoever it took the lead
    from."""
    if job.kind != JobKind.TIME_TRIAL or job.entry is None:
        return
    entry, result = job.entry, job.result
    if result is None:
        result = session.scalars(sa.select(Result).where(Result.job_id == job.id)).one()
    race = entry.race
    fields = _race_fields(race)
    queue(session, [entry.racer_id], NotificationEvent.EVALUATION_FINISHED,
          {**fields, "entry": entry.id, "model": _model(entry), "status": result.status,
           "laps": result.ranking_laps, "time_s": result.ranking_time_s}, now)
    if not _anyone_in_race_wants(session, race, NotificationEvent.LOST_TOP_SPOT):
        return  # spare the replay of the race's results
    changes = ranked_changes(session, race, until_result_id=result.id)
    change = changes[-1] if changes else None
    if change and change.result_id == result.id and change.previous_leader_id is not None:
        queue(session, [change.previous_leader_id], NotificationEvent.LOST_TOP_SPOT,
              {**fields, "leader": change.racer, "time_s": change.time_s,
               "laps": change.laps}, now)


def _anyone_in_race_wants(session: Session, race: Race, event: NotificationEvent) -> bool:
    """Whether a racer with an entry in ``race`` is subscribed to ``event``."""
    racers = sa.select(Entry.racer_id).where(Entry.race_id == race.id)
    return any(event in found for found in session.scalars(
        sa.select(NotificationSettings.subscriptions)
        .where(NotificationSettings.user_id.in_(racers))))


def job_failed(session: Session, job: EvaluationJob, now: dt.datetime) -> None:
    """A time trial failed for good: tell its racer why."""
    if job.kind != JobKind.TIME_TRIAL or job.entry is None:
        return
    entry = job.entry
    reason = job.failure_reason
    if track_secret(entry.race):  # a platform failure may name the track: not a mystery one
        for track in entry.race.all_tracks:
            reason = reason.replace(str(track["track"]), "the race's track")
    queue(session, [entry.racer_id], NotificationEvent.EVALUATION_FAILED,
          {**_race_fields(entry.race), "entry": entry.id, "model": _model(entry),
           "failure": str(job.failure_kind), "reason": reason}, now)


def race_moved(session: Session, race: Race, event: NotificationEvent,
               now: dt.datetime) -> None:
    """``race`` opened or closed: tell the members of its league."""
    members = session.scalars(sa.select(Membership.user_id)
                              .where(Membership.league_id == race.league_id))
    queue(session, members, event,
          {**_race_fields(race), "closes_at": race.closes_at.isoformat() + "Z"}, now)


def live_event_soon(session: Session, race: Race, event_id: int, title: str,
                    starts_at: dt.datetime, now: dt.datetime) -> None:
    """A live event of ``race`` starts soon: tell the members of its league and the racers
    with an entry in it."""
    members = session.scalars(sa.select(Membership.user_id)
                              .where(Membership.league_id == race.league_id)
                              .union(sa.select(Entry.racer_id)
                                     .where(Entry.race_id == race.id)))
    queue(session, members, NotificationEvent.LIVE_EVENT_SOON,
          {**_race_fields(race), "title": title, "event_id": event_id,
           "path": f"/events/{event_id}/watch", "starts_at": starts_at.isoformat() + "Z"}, now)


def _model(entry: Entry) -> str:
    return f"{entry.model.name} v{entry.model.version}"


def message(payload: Mapping[str, Any]) -> str:
    """The one sentence a notification says (a webhook's ``content``, a mail's subject)."""
    race = payload.get("race", {}).get("name", "?")
    league = payload.get("league", {}).get("name", "?")
    event = payload.get("event")
    time_s = payload.get("time_s")
    timing = f"{payload.get('laps')} lap(s) in {time_s:.3f} s" if time_s is not None else \
        f"{payload.get('laps')} lap(s)"
    if event == NotificationEvent.EVALUATION_FINISHED:
        return f"Your {payload.get('model')} in {race} was evaluated: " \
               f"{payload.get('status')}, {timing}."
    if event == NotificationEvent.EVALUATION_FAILED:
        return f"The evaluation of your {payload.get('model')} in {race} failed: " \
               f"{payload.get('reason')}"
    if event == NotificationEvent.LOST_TOP_SPOT:
        return f"{payload.get('leader')} took the lead of {race} from you ({timing})."
    if event == NotificationEvent.RACE_OPENED:
        return f"{race} is open in {league} until {payload.get('closes_at')}."
    if event == NotificationEvent.RACE_CLOSED:
        return f"{race} in {league} has closed: its results are final."
    if event == NotificationEvent.LIVE_EVENT_SOON:
        return f"Live in {league}: {payload.get('title')} ({race}) starts at " \
               f"{payload.get('starts_at')}. Watch: {payload.get('path')}"
    return f"{event} in {race}"


@dataclass(frozen=True)
class Due:
    """One delivery to attempt, with what the attempt needs (read before any network)."""

    id: int
    channel: NotificationChannel
    payload: dict[str, Any]
    attempts: int  #: attempts made before this one
    email: str
    webhook_url: str
    webhook_secret: str


def due(session: Session, now: dt.datetime, limit: int = DUE_BATCH) -> list[Due]:
    """The pending deliveries whose time has come, oldest first."""
    rows = session.execute(
        sa.select(Notification, User.email, NotificationSettings.webhook_url,
                  NotificationSettings.webhook_secret)
        .join(User, User.id == Notification.user_id)
        .outerjoin(NotificationSettings, NotificationSettings.user_id == Notification.user_id)
        .where(Notification.status == DeliveryStatus.PENDING,
               Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id).limit(limit))
    return [Due(n.id, NotificationChannel(n.channel), dict(n.payload), n.attempts, email,
                url or "", secret or "") for n, email, url, secret in rows]


def record(session: Session, delivery_id: int, error: str | None, now: dt.datetime, *,
           final: bool = False) -> Notification:
    """Keep the outcome of one attempt: sent (``error`` None), else retried after
    :data:`BACKOFF` or, after :data:`MAX_ATTEMPTS` or a ``final`` refusal, failed."""
    delivery = session.get_one(Notification, delivery_id)
    delivery.attempts += 1
    if error is None:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now
        delivery.last_error = ""
    else:
        delivery.last_error = " ".join(error.split())[:ERROR_CHARS]
        if final or delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
    session.flush()
    return delivery


def latest(session: Session, user: User, limit: int = 20) -> list[Notification]:
    """``user``'s latest deliveries, newest first (the settings page shows how they went)."""
    return list(session.scalars(sa.select(Notification).where(Notification.user_id == user.id)
                                .order_by(Notification.id.desc()).limit(limit)))
