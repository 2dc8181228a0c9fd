"""Configuration, read in one place: environment variables with defaults for a laptop.

Every process (web, scheduler, workers, the CLI) builds one :class:`Settings` with
:meth:`Settings.from_env` and passes it down; tests pass a mapping instead of the environment.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import os
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import limits

from evaluator.sandbox import SandboxOptions, available_cores

DEFAULT_INSTANCE_DIR = Path("instance")  # relative to the working directory, like Flask's
EXECUTORS = ("local", "ray")
SECRET_KEY_FILE = "secret_key"

DEFAULT_MAX_ATTEMPTS = 3  # deliveries of a job before it fails for good
DEFAULT_MAX_QUEUED_PER_RACER = 3  # a racer's time trials queued or running at once

# The website's rate limits, per signed-in user, API token or address, in Flask-Limiter's
# notation; each is overridden by PADDOCK_RATELIMIT_<NAME> (e.g. PADDOCK_RATELIMIT_LOGIN).
DEFAULT_RATE_LIMITS = {
    "login": "10 per minute; 60 per hour",
    "signup": "5 per hour",
    "upload": "20 per hour",
    "api": "300 per minute",
}
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


class ConfigError(ValueError):
    """Raised when a configuration value is malformed."""


# --- Mail (accounts: password resets, e-mail verification) -------------------------------
#: ``PADDOCK_SMTP_URL`` schemes: how the connection is secured, and the port when none is given
SMTP_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
DEFAULT_MAIL_FROM = "Paddock <paddock@localhost>"


@dataclass(frozen=True)
class SmtpServer:
    """Where mail is sent: ``PADDOCK_SMTP_URL``, e.g. ``smtps://user:pass@mail.example:465``."""

    host: str
    port: int
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    security: str = "plain"  #: "plain", "starttls" (upgrade after connecting) or "tls"


def parse_smtp_url(raw: str) -> SmtpServer | None:
    """The SMTP server of ``PADDOCK_SMTP_URL`` (None when empty): ``smtp://`` (no encryption,
    for a relay on the same machine), ``smtp+starttls://`` or ``smtps://``, with optional
    ``user:password@`` (percent-encoded) and ``:port``."""
    raw = raw.strip()
    if not raw:
        return None
    expected = ("PADDOCK_SMTP_URL must look like smtp://user:pass@host:port (schemes: "
                f"{', '.join(SMTP_SCHEMES)})")
    parts = urllib.parse.urlsplit(raw)
    if parts.scheme.lower() not in SMTP_SCHEMES or not parts.hostname:
        raise ConfigError(f"{expected}, got a URL with scheme {parts.scheme!r} and host "
                          f"{parts.hostname!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{expected}: nothing may follow the port")
    security, default_port = SMTP_SCHEMES[parts.scheme.lower()]
    try:
        port = parts.port or default_port
    except ValueError as err:
        raise ConfigError(f"{expected}: the port must be a number from 1 to 65535") from err
    return SmtpServer(host=parts.hostname, port=port,
                      username=urllib.parse.unquote(parts.username or ""),
                      password=urllib.parse.unquote(parts.password or ""), security=security)


def _site_url(raw: str) -> str:
    """``PADDOCK_SITE_URL``: ``http(s)://host[:port][/prefix]``, kept without a trailing ``/``."""
    value = raw.strip().rstrip("/")
    if not value:
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ConfigError(f"PADDOCK_SITE_URL must look like https://league.example, got {raw!r}")
    return value


def _mail_from(raw: str) -> str:
    """``PADDOCK_MAIL_FROM``: an address, optionally with a name (``Paddock <a@b.example>``)."""
    value = raw.strip() or DEFAULT_MAIL_FROM
    _, address = email.utils.parseaddr(value)
    if "@" not in address or any(c in value for c in "\r\n"):
        raise ConfigError(f"PADDOCK_MAIL_FROM must be an e-mail address such as "
                          f"'Paddock <league@example.org>', got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where the league keeps its data and how it runs evaluations."""

    database_url: str  #: SQLAlchemy URL (``DATABASE_URL``; default SQLite under instance/)
    storage_dir: Path  #: content-addressed models and replays (``PADDOCK_STORAGE_DIR``)
    secret_key: str  #: signs sessions and invite links (``SECRET_KEY``; generated if unset)
    executor: str = "local"  #: "local" worker processes or "ray" (``PADDOCK_EXECUTOR``)
    ray_address: str = ""  #: Ray cluster to submit to (``RAY_ADDRESS``; empty: start locally)
    workers: int = 2  #: local worker processes (``PADDOCK_WORKERS``)
    lease_s: float = 30.0  #: a claimed job's lease; heartbeats renew it (``PADDOCK_LEASE_S``)
    heartbeat_s: float = 5.0  #: how often a worker renews its leases
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  #: deliveries of a job before it fails for good
    poll_s: float = 0.2  #: how often an idle worker looks for work
    #: workers refuse to start, and evaluations to run, without the sandbox's required layers
    #: (``PADDOCK_SANDBOX_STRICT``; ``0`` or ``paddock worker --lenient-sandbox`` turns it off)
    sandbox_strict: bool = True
    sandbox_bwrap: bool = True  #: use bubblewrap when installed (PADDOCK_SANDBOX_BWRAP)
    #: fork a worker's new policy processes from its fork server (``PADDOCK_SANDBOX_FORK``;
    #: ``0``: start each on its own, as ``paddock evaluate`` does)
    sandbox_fork: bool = True
    #: wall-clock limit of one evaluation in seconds (``PADDOCK_EVALUATION_TIMEOUT_S``); 0:
    #: derived from each race (:func:`evaluator.sandbox.evaluation_limit_s`)
    evaluation_timeout_s: float = 0.0
    #: inference time one policy may use in one evaluation, seconds
    #: (``PADDOCK_INFERENCE_BUDGET_S``); 0: derived from each race
    #: (:func:`evaluator.sandbox.inference_budget_s`, the same at home)
    inference_budget_s: float = 0.0
    #: time-trial evaluations one racer may have queued or running across the league
    #: (``PADDOCK_MAX_QUEUED_PER_RACER``); an upload past it is refused; 0: no cap
    max_queued_per_racer: int = DEFAULT_MAX_QUEUED_PER_RACER
    #: where the website's rate-limit counters live: ``REDIS_URL`` when set (shared by every
    #: web process), else each process's memory
    ratelimit_storage: str = "memory://"
    #: reverse proxies in front of the website (``PADDOCK_PROXY_HOPS``): this many entries of
    #: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed; 0 believes none
    proxy_hops: int = 0
    #: believe ``X-Forwarded-Host`` and ``X-Forwarded-Prefix`` from the nearest proxy
    #: (``PADDOCK_TRUST_FORWARDED_HOST``; needs ``proxy_hops`` of 1 or more)
    trust_forwarded_host: bool = False
    #: the website's rate limits by name (login, signup, upload, api), Flask-Limiter's
    #: notation (``PADDOCK_RATELIMIT_<NAME>``, checked when read)
    rate_limits: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: the SMTP server mail goes through (``PADDOCK_SMTP_URL``); None: mail is written to the
    #: log and kept in the admins' outbox instead
    smtp: SmtpServer | None = None
    mail_from: str = DEFAULT_MAIL_FROM  #: the sender of the site's mail (``PADDOCK_MAIL_FROM``)
    #: new accounts must follow a link mailed to them before they change anything on the site
    #: (``PADDOCK_VERIFY_EMAIL``)
    verify_email: bool = False
    #: the site's public address links in mail are built on (``PADDOCK_SITE_URL``, e.g.
    #: ``https://league.example``); empty: the address of the request that sent the mail
    site_url: str = ""
    #: webhooks may point at private, loopback, link-local and reserved addresses
    #: (``PADDOCK_WEBHOOKS_ALLOW_PRIVATE``; off: only public addresses, checked on every
    #: address the name resolves to, when saved and when delivered)
    webhooks_allow_private: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 instance_dir: Path | None = None) -> Settings:
        """Settings from the environment (or ``environ``), with the laptop defaults."""
        env = os.environ if environ is None else environ
        inst = Path(env.get("PADDOCK_INSTANCE_DIR", instance_dir or DEFAULT_INSTANCE_DIR))
        url = env.get("DATABASE_URL") or f"sqlite:///{(inst / 'paddock.sqlite3').resolve()}"
        storage = Path(env.get("PADDOCK_STORAGE_DIR") or inst / "storage").resolve()
        executor = env.get("PADDOCK_EXECUTOR", "local")
        if executor not in EXECUTORS:
            raise ConfigError(f"PADDOCK_EXECUTOR must be one of {', '.join(EXECUTORS)}, "
                              f"got {executor!r}")
        hops, trust_host = _proxy_settings(env)
        return cls(
            database_url=url, storage_dir=storage,
            secret_key=env.get("SECRET_KEY") or _instance_secret(inst),
            executor=executor, ray_address=env.get("RAY_ADDRESS", ""),
            workers=_positive_int(env, "PADDOCK_WORKERS", 2),
            lease_s=_positive_float(env, "PADDOCK_LEASE_S", 30.0),
            sandbox_strict=env.get("PADDOCK_SANDBOX_STRICT", "1") != "0",
            sandbox_bwrap=env.get("PADDOCK_SANDBOX_BWRAP", "1") != "0",
            sandbox_fork=env.get("PADDOCK_SANDBOX_FORK", "1") != "0",
            evaluation_timeout_s=_seconds(env, "PADDOCK_EVALUATION_TIMEOUT_S", 0.0),
            inference_budget_s=_seconds(env, "PADDOCK_INFERENCE_BUDGET_S", 0.0),
            max_queued_per_racer=_count(env, "PADDOCK_MAX_QUEUED_PER_RACER",
                                        DEFAULT_MAX_QUEUED_PER_RACER),
            ratelimit_storage=env.get("REDIS_URL") or "memory://",
            proxy_hops=hops, trust_forwarded_host=trust_host,
            rate_limits={name: _rate_limit(env, f"PADDOCK_RATELIMIT_{name.upper()}", default)
                         for name, default in DEFAULT_RATE_LIMITS.items()},
            smtp=parse_smtp_url(env.get("PADDOCK_SMTP_URL", "")),
            mail_from=_mail_from(env.get("PADDOCK_MAIL_FROM", "")),
            verify_email=_flag(env, "PADDOCK_VERIFY_EMAIL", False),
            site_url=_site_url(env.get("PADDOCK_SITE_URL", "")),
            webhooks_allow_private=_flag(env, "PADDOCK_WEBHOOKS_ALLOW_PRIVATE", False),
        )

    def sandbox(self) -> SandboxOptions:
        """The sandbox options evaluations run with.

        Policy pipes busy-wait only when every worker's two processes (race and policy) can
        have a core each: with more, spinning processes take the CPU from the ones they wait
        for (two workers on two cores ran 3.2 time trials a second spinning, 11.8 without).
        """
        opts = SandboxOptions(strict=self.sandbox_strict, use_bwrap=self.sandbox_bwrap,
                              fork_server=self.sandbox_fork,
                              evaluation_timeout_s=self.evaluation_timeout_s,
                              inference_budget_s=self.inference_budget_s)
        if 2 * self.workers > available_cores():
            opts = dataclasses.replace(opts, spin_s=0.0, child_spin_s=0.0)
        return opts


def _instance_secret(instance_dir: Path) -> str:
    """A secret key generated once and kept under the instance directory."""
    path = instance_dir / SECRET_KEY_FILE
    if path.is_file():
        return path.read_text("utf-8").strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _count(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from err
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A duration of 0 seconds or more (0 may stand for "the default rule")."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from err
    if not value >= 0:
        raise ConfigError(f"{name} must be 0 or more seconds, got {raw!r}")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from err
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _proxy_settings(env: Mapping[str, str]) -> tuple[int, bool]:
    """Which forwarded headers the website believes: how many proxies' ``X-Forwarded-For``
    and ``-Proto`` (``PADDOCK_PROXY_HOPS``), and whether the nearest one's ``-Host`` and
    ``-Prefix`` (``PADDOCK_TRUST_FORWARDED_HOST``).

    A forwarded host or prefix changes every link the site writes (invite links, redirects),
    so it is believed only when asked for, and only behind a proxy that sets it.
    """
    hops = _count(env, "PADDOCK_PROXY_HOPS", 0)
    trust_host = _flag(env, "PADDOCK_TRUST_FORWARDED_HOST", False)
    if trust_host and hops == 0:
        raise ConfigError("PADDOCK_TRUST_FORWARDED_HOST needs a proxy in front of the website: "
                          "set PADDOCK_PROXY_HOPS to 1 or more, or unset it")
    return hops, trust_host


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit in Flask-Limiter's notation ("10 per minute; 60 per hour"), checked."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    try:
        items = limits.parse_many(value)
    except ValueError as err:
        raise ConfigError(f"{name} must be a rate limit like '10 per minute' or "
                          f"'10 per minute; 100 per day', got {raw!r}") from err
    if any(item.amount < 1 for item in items):
        raise ConfigError(f"{name} must allow at least 1 request per period, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")
    return word in TRUE_WORDS


LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO lines on stderr for the league's long-running processes (scheduler, workers),
    unless the process has set up logging already; APScheduler's own chatter (every run of
    every job) only when something goes wrong."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
