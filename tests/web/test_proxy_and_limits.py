"""What the site believes of the request behind a reverse proxy, and rate limits set from the
environment: forwarded addresses and schemes for ``PADDOCK_PROXY_HOPS`` hops only, forwarded
hosts and prefixes only with ``PADDOCK_TRUST_FORWARDED_HOST``; a malformed setting stops the
site before it serves anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request

from league.config import ConfigError
from tests.support.dbfixtures import PASSWORD
from tests.web.api_support import token_for

ROOT = Path(__file__).resolve().parents[2]
FORGED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "/phish",
          "X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6, 203.0.113.7"}


def _probe(app: Flask) -> Flask:
    """Add ``/_probe``: what the app believes of the request."""
    app.add_url_rule("/_probe", "probe", lambda: {
        "addr": request.remote_addr, "scheme": request.scheme, "host": request.host,
        "root": request.script_root})
    return app


def _believed(app: Flask, headers: dict[str, str]) -> dict[str, Any]:
    r = app.test_client().get("/_probe", headers=headers)
    assert r.status_code == 200
    body: dict[str, Any] = r.get_json()
    return body


@pytest.mark.parametrize("config, believed", [
    ({}, {"addr": "127.0.0.1", "scheme": "http", "host": "localhost", "root": ""}),
    ({"PADDOCK_PROXY_HOPS": "0"},
     {"addr": "127.0.0.1", "scheme": "http", "host": "localhost", "root": ""}),
    ({"PADDOCK_PROXY_HOPS": "1"},
     {"addr": "203.0.113.7", "scheme": "https", "host": "localhost", "root": ""}),
    ({"PADDOCK_PROXY_HOPS": "2"},
     {"addr": "6.6.6.6", "scheme": "http", "host": "localhost", "root": ""}),  # one proto
    ({"PADDOCK_PROXY_HOPS": "1", "PADDOCK_TRUST_FORWARDED_HOST": "1"},
     {"addr": "203.0.113.7", "scheme": "https", "host": "evil.example", "root": "/phish"}),
])
def test_forwarded_headers_are_believed_only_as_configured(
        make_app: Callable[..., Flask], config: dict[str, str],
        believed: dict[str, str]) -> None:
    assert _believed(_probe(make_app(**config)), FORGED) == believed


def test_a_forged_host_never_reaches_the_invite_link(make_app: Callable[..., Flask],
                                                     make: Any, session: Any,
                                                     login: Any) -> None:
    league = make.league(session, visibility="private")
    org = make.organizer(session, league)
    session.commit()
    path = "/organize/join/club?code=" + league.invite_code

    def invite_link(**config: Any) -> str:
        client = login(make_app(**config).test_client(), org)
        html = client.get("/organize/leagues/club", headers=FORGED).get_data(as_text=True)
        assert path in html
        return html.split('id="invite-link" readonly value="', 1)[1].split('"', 1)[0]

    assert invite_link(PADDOCK_PROXY_HOPS="1") == f"https://localhost{path}"
    assert invite_link(PADDOCK_PROXY_HOPS="1", PADDOCK_TRUST_FORWARDED_HOST="1") == \
        f"https://evil.example/phish{path}"  # the operator said the proxy sets them


def test_https_from_a_trusted_proxy_only(make_app: Callable[..., Flask]) -> None:
    https = {"X-Forwarded-Proto": "https"}
    direct = make_app().test_client().get("/leagues", headers=https)
    assert "Strict-Transport-Security" not in direct.headers
    proxied = make_app(PADDOCK_PROXY_HOPS="1").test_client().get("/leagues", headers=https)
    assert proxied.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_login_limit_comes_from_the_environment(make_app: Callable[..., Flask],
                                                    make: Any, session: Any) -> None:
    make.user(session, "ada")
    session.commit()
    client = make_app(RATELIMIT_ENABLED=True,
                      PADDOCK_RATELIMIT_LOGIN="2 per minute").test_client()
    for _ in range(2):
        assert client.post("/login", data={"login": "ada", "password": "nope"}
                           ).status_code == 200
    r = client.post("/login", data={"login": "ada", "password": PASSWORD})
    assert r.status_code == 429 and "the limit is 2 per 1 minute" in r.get_data(as_text=True)


def test_the_limit_counts_the_address_a_trusted_proxy_saw(make_app: Callable[..., Flask],
                                                          make: Any, session: Any) -> None:
    make.user(session, "ada")
    session.commit()
    client = make_app(RATELIMIT_ENABLED=True, PADDOCK_RATELIMIT_LOGIN="1 per minute",
                      PADDOCK_PROXY_HOPS="1").test_client()

    def attempt(forwarded_for: str) -> int:
        return client.post("/login", data={"login": "ada", "password": "nope"},
                           headers={"X-Forwarded-For": forwarded_for}).status_code

    assert attempt("203.0.113.7") == 200
    assert attempt("198.51.100.9") == 200  # another client behind the proxy
    assert attempt("1.2.3.4, 203.0.113.7") == 429  # what the client wrote is not believed


def test_the_api_limit_comes_from_the_environment(make_app: Callable[..., Flask], make: Any,
                                                  session: Any) -> None:
    ada = make.user(session, "ada")
    headers = {"Authorization": f"Bearer {token_for(session, ada)}"}
    client = make_app(RATELIMIT_ENABLED=True, PADDOCK_RATELIMIT_API="2 per minute").test_client()
    assert [client.get("/api/v1/me", headers=headers).status_code for _ in range(3)] == \
        [200, 200, 429]


def test_the_upload_limit_comes_from_the_environment(make_app: Callable[..., Flask]) -> None:
    app = make_app(PADDOCK_RATELIMIT_UPLOAD="7 per day")
    assert app.config["RATELIMIT_UPLOAD"] == "7 per day"
    assert app.config["RATELIMIT_SIGNUP"] == "5 per hour"  # the others keep their defaults


@pytest.mark.parametrize("config, message", [
    ({"PADDOCK_RATELIMIT_LOGIN": "ten a minute"},
     "PADDOCK_RATELIMIT_LOGIN must be a rate limit like '10 per minute'"),
    ({"PADDOCK_RATELIMIT_API": "0 per minute"},
     "PADDOCK_RATELIMIT_API must allow at least 1 request per period"),
    ({"PADDOCK_TRUST_FORWARDED_HOST": "1"},
     "PADDOCK_TRUST_FORWARDED_HOST needs a proxy in front of the website"),
])
def test_a_bad_setting_refuses_to_create_the_app(make_app: Callable[..., Flask],
                                                 config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(**config)


def test_a_bad_rate_limit_stops_the_website_at_start(tmp_path: Path) -> None:
    """As gunicorn starts it (``wsgi:app``): the process ends at once, naming the setting."""
    env = {**os.environ, "PADDOCK_INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
           "PADDOCK_RATELIMIT_UPLOAD": "lots per hour"}
    done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "ConfigError: PADDOCK_RATELIMIT_UPLOAD must be a rate limit like '10 per minute'" \
        in done.stderr and "'lots per hour'" in done.stderr

