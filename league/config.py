"""Configuration, read in one place: environment variables with defaults for a laptop.

Every process (web, scheduler, workers, the CLI) builds one :class:`Settings` with
:meth:`Settings.from_env` and passes it down; tests pass a mapping instead of the environment.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from evaluator.sandbox import SandboxOptions, available_cores

DEFAULT_INSTANCE_DIR = Path("instance")  # relative to the working directory, like Flask's
EXECUTORS = ("local", "ray")
SECRET_KEY_FILE = "secret_key"

DEFAULT_MAX_ATTEMPTS = 3  # deliveries of a job before it fails for good


class ConfigError(ValueError):
    """Raised when a configuration value is malformed."""


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
    sandbox_strict: bool = False  #: missing sandbox layers are an error (PADDOCK_SANDBOX_STRICT)
    sandbox_bwrap: bool = True  #: use bubblewrap when installed (PADDOCK_SANDBOX_BWRAP)
    #: where the website's rate-limit counters live: ``REDIS_URL`` when set (shared by every
    #: web process), else each process's memory
    ratelimit_storage: str = "memory://"
    proxy_hops: int = 0  #: reverse proxies in front of the website (``PADDOCK_PROXY_HOPS``)

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
        return cls(
            database_url=url, storage_dir=storage,
            secret_key=env.get("SECRET_KEY") or _instance_secret(inst),
            executor=executor, ray_address=env.get("RAY_ADDRESS", ""),
            workers=_positive_int(env, "PADDOCK_WORKERS", 2),
            lease_s=_positive_float(env, "PADDOCK_LEASE_S", 30.0),
            sandbox_strict=env.get("PADDOCK_SANDBOX_STRICT", "0") == "1",
            sandbox_bwrap=env.get("PADDOCK_SANDBOX_BWRAP", "1") != "0",
            ratelimit_storage=env.get("REDIS_URL") or "memory://",
            proxy_hops=_count(env, "PADDOCK_PROXY_HOPS", 0),
        )

    def sandbox(self) -> SandboxOptions:
        """The sandbox options evaluations run with.

        Policy pipes busy-wait only when every worker's two processes (race and policy) can
        have a core each: with more, spinning processes take the CPU from the ones they wait
        for (two workers on two cores ran 3.2 time trials a second spinning, 11.8 without).
        """
        opts = SandboxOptions(strict=self.sandbox_strict, use_bwrap=self.sandbox_bwrap)
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


LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO lines on stderr for the league's long-running processes (scheduler, workers),
    unless the process has set up logging already; APScheduler's own chatter (every run of
    every job) only when something goes wrong."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
