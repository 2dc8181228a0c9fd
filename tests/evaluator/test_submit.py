"""``paddock submit`` against a real server: the app served by Werkzeug on a free port, with an
evaluation worker running in the test process for ``--wait``."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from evaluator import cli
from evaluator.race import run_race
from evaluator.sandbox import SandboxOptions
from evaluator.submit import Client, Part, RateLimited, SubmitError, encode_multipart, wait_for
from evaluator.validate import validate_policy
from league.cli import main as paddock_main
from league.config import Settings
from league.models import Entry, Race, utcnow
from league.processes.worker import Worker
from league.rules import accounts
from league.rules.races import race_config
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory
from web import create_app
from web.extensions import db as flask_db


@pytest.fixture
def server(db: Database, storage: Storage) -> Iterator[str]:
    """The league's website and API on 127.0.0.1, on a free port; its base URL."""
    app = create_app({"DATABASE_URL": db.url, "PADDOCK_STORAGE_DIR": str(storage.root),
                      "SECRET_KEY": "test", "RATELIMIT_ENABLED": False})
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()
        with app.app_context():
            flask_db.session.remove()
            flask_db.engine.dispose()


@pytest.fixture
def worker(db: Database, storage: Storage) -> Iterator[None]:
    """An evaluation worker running in a thread of the test process."""
    settings = Settings(database_url=db.url, storage_dir=storage.root, secret_key="test",
                        poll_s=0.05)
    w = Worker(settings, "submit-test-worker")
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        w.close()


def _race(session: Session, make: Factory, **kw: Any) -> tuple[str, str]:
    """An open race's id and a racer's token (committed; the session holds no lock)."""
    now = utcnow()
    race = make.race(session, opens_at=now - dt.timedelta(days=1),
                     closes_at=now + dt.timedelta(days=1), **kw)
    _, token = accounts.create_token(session, make.user(session, "ann"), "cli")
    race_id = str(race.id)
    session.commit()
    return race_id, token


def _model(tmp_path: Path, data: bytes, name: str = "policy.onnx") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_submit_uploads_and_prints_the_entry(server: str, session: Session, make: Factory,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    race_id, token = _race(session, make)
    model = _model(tmp_path, make.policy())
    status = cli.main(["submit", model, "--race", race_id, "--server", server,
                       "--token", token])
    out = capsys.readouterr().out
    entry_id = session.scalar(sa.select(Entry.id))
    session.rollback()  # end the read: on SQLite a transaction holds the write lock
    assert status == 0 and entry_id is not None
    assert out == f"entry {entry_id} submitted to race {race_id} (follower v1): queued\n"
    meta = tmp_path / "model_metadata.json"
    meta.write_text(json.dumps({"action_space_type": "continuous", "action_space": {
        "steering_angle": {"low": -30, "high": 30}, "speed": {"low": 2, "high": 2}}}))
    status = paddock_main(["submit", model, "--race", race_id, "--server",
                           server + "/api/v1/", "--token", token, "--metadata", str(meta),
                           "--name", "My Car", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert status == 0 and (body["model"]["name"], body["race_id"]) == ("My Car", int(race_id))
    assert body["model"]["metadata"]["action_space"]["speed"] == {"low": 2, "high": 2}


def test_submit_waits_for_the_result_it_would_get_at_home(
        server: str, worker: None, session: Session, make: Factory, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    race_id, token = _race(session, make, trials=2)
    data = make.policy()
    config = race_config(session.get_one(Race, int(race_id)))
    session.rollback()
    monkeypatch.setenv("PADDOCK_TOKEN", token)
    monkeypatch.setenv("PADDOCK_SERVER", server)
    status = cli.main(["submit", _model(tmp_path, data), "--race", race_id, "--wait",
                       "--interval", "0.1", "--json"])
    printed = json.loads(capsys.readouterr().out)
    # at home with a generous action deadline: the same result unless the default one is
    # missed, which a loaded machine can make a good policy do (the rules are tested here)
    home = run_race(config, [validate_policy(data)], record=False,
                    options=SandboxOptions(action_timeout_s=1.0)).to_dict()
    assert status == 0 and printed == home
    status = cli.main(["submit", _model(tmp_path, data), "--race", race_id, "--wait",
                       "--interval", "0.1"])
    lines = capsys.readouterr().out.splitlines()
    # the same file again is the version it already is
    assert status == 0 and lines[0].endswith("(follower v1); waiting for its evaluation...")
    assert lines[1].startswith("entry ") and f"{home['ranking_time_s']:.3f} s" in lines[1]
    assert [line.split(":")[0] for line in lines[2:]] == ["  trial 1", "  trial 2"]


def test_a_failed_evaluation_is_an_error(server: str, worker: None, session: Session,
                                         make: Factory, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    race_id, token = _race(session, make)
    # The track "changed" since the race was created: the evaluation cannot run.
    session.execute(sa.update(Race).values(track_digest="0" * 64))
    session.commit()
    status = cli.main(["submit", _model(tmp_path, make.policy()), "--race", race_id,
                       "--server", server, "--token", token, "--wait", "--interval", "0.1"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("paddock: error: entry ") and " failed (infrastructure): track " \
        "'oval' has changed since race" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message, code", [
    (["--token", "pdk_wrong"], "paddock: error: the API token is unknown or revoked "
                               "(HTTP 401)\n", 1),
    (["--race", "999999"], "paddock: error: no race 999999 (HTTP 404)\n", 1),
    (["--model-bytes"], "paddock: error: model refused: ", 1),
    (["--server", "ftp://example.org"], "paddock: error: --server must be an http(s) URL", 2),
    (["--server", "http://127.0.0.1:9"], "paddock: error: cannot reach http://127.0.0.1:9", 1),
    (["--no-token"], "paddock: error: give an API token with --token or $PADDOCK_TOKEN\n", 2),
    (["--no-file"], "paddock: error: ", 2),
], ids=["bad token", "no race", "refused model", "bad url", "unreachable", "no token",
        "no file"])
def test_submit_fails_in_one_line(server: str, session: Session, make: Factory,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch, args: list[str],
                                  message: str, code: int) -> None:
    monkeypatch.delenv("PADDOCK_TOKEN", raising=False)
    race_id, token = _race(session, make)
    model = _model(tmp_path, b"garbage" if args == ["--model-bytes"] else make.policy())
    argv = {"--race": race_id, "--server": server, "--token": token}
    flags = [a for a in args if a.startswith("--") and a not in (
        "--model-bytes", "--no-token", "--no-file")]
    for flag in flags:
        argv[flag] = args[args.index(flag) + 1]
    if "--no-token" in args:
        del argv["--token"]
    if "--no-file" in args:
        model = str(tmp_path / "missing.onnx")
    status = cli.main(["submit", model, *[x for kv in argv.items() for x in kv]])
    captured = capsys.readouterr()
    assert (status, captured.out) == (code, "")
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert session.scalar(sa.select(sa.func.count(Entry.id))) == 0


class _Stub(Client):
    """A client answering from a list (an entry, or an exception to raise)."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__("http://league.example", "pdk_x")
        self.answers = answers

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def _entry(status: str | None, job_id: int | None = 7) -> dict[str, Any]:
    return {"id": 1, "status": {"status": status, "job_id": job_id, "disqualified": False}}


def test_waiting_backs_off_when_limited_and_gives_up_in_time() -> None:
    clock = [0.0]
    pauses: list[float] = []

    def sleep(s: float) -> None:
        pauses.append(s)
        clock[0] += s

    stub = _Stub([_entry("queued"), RateLimited("slow down", 5.0), _entry("running"),
                  _entry("succeeded")])
    done = wait_for(stub, 1, interval_s=1.0, timeout_s=60.0, clock=lambda: clock[0],
                    sleep=sleep)
    assert done["status"]["status"] == "succeeded" and pauses == [1.0, 5.0, 1.0]
    stub = _Stub([_entry("queued")] * 10)
    with pytest.raises(SubmitError, match="gave up waiting for entry 1 after 2.5 s"):
        wait_for(stub, 1, interval_s=1.0, timeout_s=2.5, clock=lambda: clock[0], sleep=sleep)
    assert wait_for(_Stub([_entry(None, None)]), 1, interval_s=1.0, timeout_s=1.0,
                    sleep=sleep)["status"]["job_id"] is None


def test_the_multipart_body_is_what_a_server_parses() -> None:
    body, content_type = encode_multipart([Part("model", b"\x00\r\n--x", "m.onnx"),
                                           Part("name", "Zoë".encode())])
    boundary = content_type.split("boundary=", 1)[1]
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.endswith(f"--{boundary}--\r\n".encode())
    assert b'name="model"; filename="m.onnx"\r\nContent-Type: application/octet-stream' in body
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    env = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    _, form, files = parse_form_data(env)
    data = files["model"].read()
    files["model"].close()
    assert data == b"\x00\r\n--x" and form["name"] == "Zoë"
    with pytest.raises(SubmitError, match="quotes or line breaks"):
        encode_multipart([Part("model", b"", 'evil".onnx')])
