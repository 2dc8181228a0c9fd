"""The notifications page: choosing events and channels, the webhook URL (private and
malformed addresses refused on the page, the choices kept in the form), the secret, and
the operator's setting that allows private addresses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from league.models import NotificationSettings

if TYPE_CHECKING:
    from tests.support.dbfixtures import Factory

PUBLIC_HOOK = "https://93.184.215.14/hook"  # an address: no name to resolve in the tests


def _stored(session: Session, user_id: int) -> NotificationSettings | None:
    """The saved settings, read in a transaction of their own (on SQLite an open one would
    hold the write lock the app needs)."""
    session.expire_all()
    found = session.get(NotificationSettings, user_id)
    session.commit()
    return found


def _post(client: FlaskClient, url: str, **choices: list[str]) -> Any:
    data: dict[str, Any] = {"webhook_url": url, **choices}
    return client.post("/account/notifications", data=data)


def test_a_racer_saves_what_they_hear_about(client: FlaskClient, session: Session,
                                            make: Factory, login: Any) -> None:
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    page = client.get("/account/notifications").get_data(as_text=True)
    assert "An evaluation of my entry failed" in page and "made when you first save" in page
    answer = _post(client, PUBLIC_HOOK, evaluation_failed=["email", "webhook"],
                   lost_top_spot=["webhook"])
    assert answer.status_code == 302
    found = _stored(session, ada.id)
    assert found is not None and found.webhook_url == PUBLIC_HOOK
    assert found.subscriptions == {"evaluation_failed": ["email", "webhook"],
                                   "lost_top_spot": ["webhook"]}
    page = client.get("/account/notifications").get_data(as_text=True)
    assert found.webhook_secret in page and 'value="https://93.184.215.14/hook"' in page
    old = found.webhook_secret
    client.post("/account/notifications/secret")
    assert (_stored(session, ada.id) or found).webhook_secret != old
    assert "notifications page" in client.get("/account").get_data(as_text=True)


def test_bad_webhook_urls_are_refused_clearly(client: FlaskClient, session: Session,
                                              make: Factory, login: Any) -> None:
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    for url, says in [("http://127.0.0.1:8080/x", "public addresses only"),
                      ("http://10.0.0.5/x", "public addresses only"),
                      ("http://[::1]/x", "public addresses only"),
                      ("http://169.254.169.254/latest", "public addresses only"),
                      ("ftp://93.184.215.14/x", "must start with http"),
                      ("", "webhook URL is needed")]:
        answer = _post(client, url, race_closed=["webhook"])
        assert answer.status_code == 400, url
        page = answer.get_data(as_text=True)
        assert says in page, url
        # what the racer chose is still ticked
        assert re.search(r'name="race_closed" value="webhook"[^>]*checked', page), url
        assert not re.search(r'name="race_closed" value="email"[^>]*checked', page), url
    assert _stored(session, ada.id) is None


def test_the_operator_may_allow_private_addresses(make_app: Callable[..., Flask],
                                                  session: Session, make: Factory,
                                                  login: Any) -> None:
    client = make_app(PADDOCK_WEBHOOKS_ALLOW_PRIVATE="1").test_client()
    ada = make.user(session, "ada")
    session.commit()
    login(client, ada)
    assert _post(client, "http://127.0.0.1:8080/x", race_closed=["webhook"]).status_code == 302


def test_the_page_needs_a_login(client: FlaskClient) -> None:
    assert client.get("/account/notifications").status_code == 302
