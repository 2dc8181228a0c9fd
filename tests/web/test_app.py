"""The app itself: health check, proxies, error pages."""

from __future__ import annotations

from tests.support.dbfixtures import PASSWORD


def test_healthz_answers_when_the_database_does(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_data(as_text=True) == "ok\n"
    assert r.headers["Cache-Control"] == "no-store"


def test_error_pages_are_html_on_the_site_and_json_under_the_api(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "404" in page.get_data(as_text=True)
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.mimetype == "application/json"
    assert api.get_json()["error"]["code"] == "not_found"


def test_behind_a_proxy_the_forwarded_scheme_makes_cookies_secure(make_app, make, session):
    make.user(session, "ada")
    session.commit()
    direct = make_app().test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    r = direct.post("/login", data={"login": "ada", "password": PASSWORD}, headers=forwarded)
    assert "Secure" not in r.headers["Set-Cookie"]  # the header is not trusted by default
    proxied = make_app(PADDOCK_PROXY_HOPS=1).test_client()
    r = proxied.post("/login", data={"login": "ada", "password": PASSWORD}, headers=forwarded)
    assert "Secure" in r.headers["Set-Cookie"]
    assert "Strict-Transport-Security" in r.headers
