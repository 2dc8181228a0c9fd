"""The operator commands of ``paddock``: db upgrade, user and token create, scheduler, worker."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import league.processes
from league import cli, db
from league.config import Settings
from league.models import ApiToken, Role, User
from league.processes import worker
from league.rules import accounts

if TYPE_CHECKING:
    from conftest import Database

PASSWORD = "correct horse battery"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment for the league's settings (no database chosen yet)."""
    for name in ("DATABASE_URL", "PADDOCK_EXECUTOR", "PADDOCK_WORKERS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "test-secret")
    monkeypatch.setenv("PADDOCK_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("PADDOCK_STORAGE_DIR", str(tmp_path / "storage"))
    return monkeypatch


@pytest.fixture
def on_db(env: pytest.MonkeyPatch, db: Database) -> Database:
    """The environment pointing at the test database (with every table)."""
    env.setenv("DATABASE_URL", db.url)
    return db


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(argv)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("paddock: error: ")
    return lines[0]


def _user(db: Database, name: str) -> User | None:
    with db.factory() as session:
        return session.scalar(sa.select(User).where(User.name == name))


def test_db_upgrade_migrates_and_is_idempotent(env: pytest.MonkeyPatch, empty_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("DATABASE_URL", empty_url)
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert out.count("database at revision") == 2
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    assert "users" in sa.inspect(engine).get_table_names()


def test_db_upgrade_creates_the_default_sqlite_database(env: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    instance = tmp_path / "new" / "instance"
    env.setenv("PADDOCK_INSTANCE_DIR", str(instance))
    assert cli.main(["db", "upgrade"]) == 0
    assert (instance / "paddock.sqlite3").is_file()


def test_user_create(on_db: Database, env: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["user", "create", "alice", "--email", "Alice@Example.org", "--password-stdin",
            "--role", "organizer"]
    assert _run(argv, env, PASSWORD + "\n") == 0
    assert "created organizer alice" in capsys.readouterr().out
    user = _user(on_db, "alice")
    assert user is not None and user.role == Role.ORGANIZER
    assert user.email == "alice@example.org"
    with on_db.factory() as session:
        assert accounts.authenticate(session, "alice", PASSWORD) is not None


def test_user_create_refusals(on_db: Database, env: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    base = ["user", "create", "bob", "--email", "bob@example.org", "--password-stdin"]
    assert _run(base, env, PASSWORD + "\n") == 0
    capsys.readouterr()
    assert _run(base, env, PASSWORD + "\n") == cli.EXIT_FAILURE
    assert "already registered" in _error_line(capsys)
    assert _run(["user", "create", "carol", "--email", "nope", "--password-stdin"], env,
                PASSWORD) == cli.EXIT_USAGE
    assert "not an e-mail address" in _error_line(capsys)
    assert _run(["user", "create", "carol", "--email", "c@example.org", "--password-stdin"],
                env, "short\n") == cli.EXIT_USAGE
    assert "password" in _error_line(capsys)
    assert _run(["user", "create", "carol", "--email", "c@example.org"], env) == cli.EXIT_USAGE
    assert "--password-stdin" in _error_line(capsys)
    assert _user(on_db, "carol") is None


def test_token_create(on_db: Database, env: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    with on_db.factory() as session:
        accounts.create_user(session, "dana", "dana@example.org", PASSWORD)
        session.commit()
    assert _run(["token", "create", "DANA", "--label", "laptop"], env) == 0
    captured = capsys.readouterr()
    plain = captured.out.strip()
    assert plain.startswith(accounts.TOKEN_PREFIX) and "\n" not in plain
    assert "shown only this once" in captured.err and plain not in captured.err
    with on_db.factory() as session:
        found = accounts.find_token(session, plain)
        assert found is not None and found.user.name == "dana"
        token = session.scalar(sa.select(ApiToken))
        assert token is not None and token.name == "laptop"
    assert _run(["token", "create", "nobody"], env) == cli.EXIT_FAILURE
    assert "no user named 'nobody'" in _error_line(capsys)
    # A scope and a lifetime of the operator's choosing.
    assert _run(["token", "create", "dana", "--label", "ci", "--scope", "read",
                 "--expires", "never"], env) == 0
    captured = capsys.readouterr()
    assert "(read, never expires)" in captured.err
    with on_db.factory() as session:
        ci = session.scalar(sa.select(ApiToken).where(ApiToken.name == "ci"))
        assert ci is not None and ci.scope == "read" and ci.expires_at is None
        laptop = session.scalar(sa.select(ApiToken).where(ApiToken.name == "laptop"))
        assert laptop is not None and laptop.scope == "submit" and laptop.expires_at is not None


def test_unreachable_database_is_one_line(env: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert _run(["token", "create", "dana"], env) == cli.EXIT_FAILURE
    assert "database error" in _error_line(capsys)
    assert cli.main(["db", "upgrade"]) == cli.EXIT_FAILURE
    assert "database error" in _error_line(capsys)
    assert cli.main(["scheduler"]) == cli.EXIT_FAILURE
    assert "database error" in _error_line(capsys)


def test_unmigrated_database_says_what_to_do(env: pytest.MonkeyPatch, empty_url: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("DATABASE_URL", empty_url)
    assert _run(["token", "create", "dana"], env) == cli.EXIT_FAILURE
    assert "paddock db upgrade" in _error_line(capsys)


def test_bad_configuration_is_one_line(env: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("PADDOCK_EXECUTOR", "cloud")
    assert cli.main(["db", "upgrade"]) == cli.EXIT_USAGE
    assert "PADDOCK_EXECUTOR" in _error_line(capsys)
    env.setenv("PADDOCK_EXECUTOR", "local")
    env.setenv("DATABASE_URL", "not a url")
    assert cli.main(["db", "upgrade"]) == cli.EXIT_USAGE
    assert "DATABASE_URL" in _error_line(capsys)


def test_evaluator_commands_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tracks", "list", "--json"]) == 0
    assert '"oval"' in capsys.readouterr().out
    assert cli.main(["validate", "/nonexistent.onnx"]) != 0
    assert _error_line(capsys)


def test_scheduler_and_worker_delegate(env: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, Any]] = []
    fake_scheduler = types.SimpleNamespace(run=lambda s: calls.append(("scheduler", s)))
    env.setitem(sys.modules, "league.processes.scheduler", fake_scheduler)
    env.setattr(league.processes, "scheduler", fake_scheduler, raising=False)
    env.setattr(worker, "cmd_worker", lambda args: calls.append(("worker", args)) or 0)
    assert cli.main(["scheduler"]) == 0
    assert cli.main(["worker", "--workers", "5", "--once"]) == 0
    assert [c[0] for c in calls] == ["scheduler", "worker"]
    assert isinstance(calls[0][1], Settings)
    assert calls[1][1].workers == 5 and calls[1][1].once
    env.setenv("PADDOCK_WORKERS", "zero")
    assert cli.main(["worker"]) == cli.EXIT_USAGE
    assert "PADDOCK_WORKERS" in _error_line(capsys)
    assert len(calls) == 2


def test_console_script(tmp_path: Path) -> None:
    """The installed ``paddock`` script runs the league's commands, in a real process."""
    script = Path(sys.executable).with_name("paddock")
    if not script.exists():
        pytest.skip("the paddock console script is not installed")
    env = {**os.environ, "SECRET_KEY": "test", "PADDOCK_INSTANCE_DIR": str(tmp_path / "inst")}
    env.pop("DATABASE_URL", None)

    def paddock(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)

    db.upgrade_database(f"sqlite:///{tmp_path / 'inst' / 'paddock.sqlite3'}")
    proc = paddock("user", "create", "erin", "--email", "erin@example.org", "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    proc = paddock("token", "create", "erin")
    assert proc.returncode == 0 and proc.stdout.startswith(accounts.TOKEN_PREFIX)
    proc = paddock("token", "create", "frank")
    assert proc.returncode == cli.EXIT_FAILURE
    assert proc.stderr.strip() == "paddock: error: no user named 'frank'"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'inst' / 'paddock.sqlite3'}")
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count(ApiToken.id))) == 1
    engine.dispose()
