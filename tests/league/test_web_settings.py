"""The website's settings read from the environment: proxies whose forwarded headers are
believed, and rate limits; every malformed value refused with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from league.config import DEFAULT_RATE_LIMITS, ConfigError, Settings


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"SECRET_KEY": "k", **env}, instance_dir=tmp_path)


def test_defaults_trust_no_proxy_and_keep_the_shipped_limits(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert (s.proxy_hops, s.trust_forwarded_host) == (0, False)
    assert s.rate_limits == DEFAULT_RATE_LIMITS


@pytest.mark.parametrize("env, hops, trust", [
    ({"PADDOCK_PROXY_HOPS": "1"}, 1, False),
    ({"PADDOCK_PROXY_HOPS": "2", "PADDOCK_TRUST_FORWARDED_HOST": "1"}, 2, True),
    ({"PADDOCK_PROXY_HOPS": "1", "PADDOCK_TRUST_FORWARDED_HOST": " Yes "}, 1, True),
    ({"PADDOCK_PROXY_HOPS": "1", "PADDOCK_TRUST_FORWARDED_HOST": "off"}, 1, False),
    ({"PADDOCK_PROXY_HOPS": "0", "PADDOCK_TRUST_FORWARDED_HOST": ""}, 0, False),
])
def test_proxy_settings(tmp_path: Path, env: dict[str, str], hops: int, trust: bool) -> None:
    s = _settings(tmp_path, **env)
    assert (s.proxy_hops, s.trust_forwarded_host) == (hops, trust)


@pytest.mark.parametrize("env, message", [
    ({"PADDOCK_PROXY_HOPS": "-1"}, "PADDOCK_PROXY_HOPS must be 0 or more, got -1"),
    ({"PADDOCK_PROXY_HOPS": "one"}, "PADDOCK_PROXY_HOPS must be a whole number, got 'one'"),
    ({"PADDOCK_PROXY_HOPS": "1", "PADDOCK_TRUST_FORWARDED_HOST": "maybe"},
     "PADDOCK_TRUST_FORWARDED_HOST must be 1 or 0 .*got 'maybe'"),
    ({"PADDOCK_TRUST_FORWARDED_HOST": "1"},
     "PADDOCK_TRUST_FORWARDED_HOST needs a proxy in front of the website: set "
     "PADDOCK_PROXY_HOPS to 1 or more"),
])
def test_bad_proxy_settings_are_refused(tmp_path: Path, env: dict[str, str],
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, **env)


def test_rate_limits_from_the_environment(tmp_path: Path) -> None:
    s = _settings(tmp_path, PADDOCK_RATELIMIT_LOGIN=" 3 per minute; 30 per hour ",
                  PADDOCK_RATELIMIT_SIGNUP="1/day", PADDOCK_RATELIMIT_UPLOAD="100 per 2 hours",
                  PADDOCK_RATELIMIT_API="")
    assert s.rate_limits == {"login": "3 per minute; 30 per hour", "signup": "1/day",
                             "upload": "100 per 2 hours",
                             "api": DEFAULT_RATE_LIMITS["api"]}  # empty: the default


@pytest.mark.parametrize("name", ["LOGIN", "SIGNUP", "UPLOAD", "API"])
@pytest.mark.parametrize("value, message", [
    ("ten a minute", "must be a rate limit like '10 per minute'"),
    ("10 per fortnight", "must be a rate limit like"),
    ("10 per minute;;", "must be a rate limit like"),
    ("10", "must be a rate limit like"),
    ("0 per minute", "must allow at least 1 request per period"),
    ("5 per hour; 0 per day", "must allow at least 1 request per period"),
])
def test_bad_rate_limits_are_refused(tmp_path: Path, name: str, value: str,
                                     message: str) -> None:
    with pytest.raises(ConfigError, match=f"PADDOCK_RATELIMIT_{name} {message}.*{value!r}"):
        _settings(tmp_path, **{f"PADDOCK_RATELIMIT_{name}": value})
