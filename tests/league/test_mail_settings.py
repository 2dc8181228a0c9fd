"""Mail settings: PADDOCK_SMTP_URL, PADDOCK_MAIL_FROM, PADDOCK_SITE_URL, PADDOCK_VERIFY_EMAIL."""

from __future__ import annotations

import pytest

from league.config import DEFAULT_MAIL_FROM, ConfigError, Settings, SmtpServer


def _settings(**env: str) -> Settings:
    return Settings.from_env({"SECRET_KEY": "x", "DATABASE_URL": "sqlite://", **env})


def test_defaults_keep_mail_in_the_outbox() -> None:
    s = _settings()
    assert (s.smtp, s.mail_from, s.site_url, s.verify_email) == (None, DEFAULT_MAIL_FROM, "",
                                                                   False)


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://127.0.0.1:2525", SmtpServer("127.0.0.1", 2525)),
    ("smtp+starttls://mail.example", SmtpServer("mail.example", 587, security="starttls")),
    ("smtps://league%40example.org:p%3Ass@mail.example",
     SmtpServer("mail.example", 465, "league@example.org", "p:ss", "tls")),
])
def test_smtp_urls(url: str, expected: SmtpServer) -> None:
    smtp = _settings(PADDOCK_SMTP_URL=url).smtp
    assert smtp == expected
    assert expected.password == "" or expected.password not in repr(smtp)  # never logged


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PADDOCK_SMTP_URL", "http://mail.example", "scheme 'http'"),
    ("PADDOCK_SMTP_URL", "smtp://", "host None"),
    ("PADDOCK_SMTP_URL", "smtp://mail.example:99999", "port must be a number"),
    ("PADDOCK_SMTP_URL", "smtp://mail.example/inbox", "nothing may follow the port"),
    ("PADDOCK_MAIL_FROM", "Paddock", "must be an e-mail address"),
    ("PADDOCK_SITE_URL", "league.example", "must look like https://"),
    ("PADDOCK_VERIFY_EMAIL", "maybe", "must be 1 or 0"),
])
def test_malformed_mail_settings_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=name) as err:
        _settings(**{name: value})
    assert message in str(err.value)


def test_site_url_and_sender() -> None:
    s = _settings(PADDOCK_SITE_URL="https://league.example/paddock/",
                  PADDOCK_MAIL_FROM="Paddock League <league@example.org>",
                  PADDOCK_VERIFY_EMAIL="yes")
    assert (s.site_url, s.mail_from, s.verify_email) == (
        "https://league.example/paddock", "Paddock League <league@example.org>", True)
