"""Helpers of the API tests: a client that checks every response against the OpenAPI
document the app serves, tokens, open races, and running a queued evaluation.

Every response an API test receives goes through :func:`check_response`: its status must be
one the document declares for that path and method, and a JSON body must validate against the
schema declared for that status (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import jsonschema
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from evaluator.submit import Part, encode_multipart
from league.config import Settings
from league.models import League, Race, User, utcnow
from league.processes.worker import Worker
from league.rules import accounts
from league.storage import Storage
from tests.support.dbfixtures import Database, Factory

PREFIX = "/api/v1"


def token_for(session: Session, user: User, name: str = "test") -> str:
    """A new personal token of ``user`` (committed)."""
    _, plain = accounts.create_token(session, user, name)
    session.commit()
    return plain


def open_race(session: Session, make: Factory, league: League | None = None,
              **kw: Any) -> Race:
    """A race taking entries now (the factory's default window is a fixed date)."""
    now = utcnow()
    kw.setdefault("opens_at", now - dt.timedelta(days=1))
    kw.setdefault("closes_at", now + dt.timedelta(days=7))
    return make.race(session, league, **kw)


def evaluate_queued(db: Database, storage: Storage) -> int:
    """Run the oldest queued evaluation as a worker does (in this process); its job id."""
    settings = Settings(database_url=db.url, storage_dir=storage.root, secret_key="test")
    worker = Worker(settings, "api-test-worker")
    try:
        job_id = worker.run_once()
    finally:
        worker.close()
    assert job_id is not None, "no queued evaluation"
    return job_id


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def operation_for(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The operation object the document declares for a request."""
    assert path.startswith(PREFIX), path
    local = path[len(PREFIX):].split("?", 1)[0]
    matches = [t for t in doc["paths"] if _template_regex(t).match(local)]
    # A literal segment beats a parameter (/me/entries is not /me/{x}).
    matches.sort(key=lambda t: t.count("{"))
    assert matches, f"{path} is not in the OpenAPI document"
    op: dict[str, Any] | None = doc["paths"][matches[0]].get(method.lower())
    assert op is not None, f"{method} {path} is not in the OpenAPI document"
    return op


def check_response(doc: dict[str, Any], method: str, path: str, r: TestResponse) -> None:
    """Fail unless the response is one the document declares, body and all."""
    op = operation_for(doc, method, path)
    declared = op["responses"].get(str(r.status_code))
    assert declared is not None, (
        f"{method} {path} answered {r.status_code}, which the document does not declare: "
        f"{r.get_data(as_text=True)[:300]}")
    content = declared.get("content", {})
    assert r.mimetype in content, f"{method} {path}: {r.mimetype} not in {list(content)}"
    if r.mimetype == "application/json":
        schema = {**content["application/json"]["schema"], "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(r.get_json())
    if r.status_code == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    if r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limited":
        assert int(r.headers["Retry-After"]) >= 0


class ApiClient:
    """A test client of the API that checks every response against the served document."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        r = client.get(f"{PREFIX}/openapi.json")
        assert r.status_code == 200 and r.mimetype == "application/json"
        self.doc: dict[str, Any] = r.get_json()

    def request(self, method: str, path: str, token: str | None = None,
                headers: dict[str, str] | None = None, **kw: Any) -> TestResponse:
        """Send a request to ``/api/v1`` + ``path`` and check the response."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        full = PREFIX + path
        r = self.client.open(full, method=method, headers=headers, **kw)
        check_response(self.doc, method, full, r)
        return r

    def get(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        """GET, checked."""
        return self.request("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> TestResponse:
        """POST, checked."""
        return self.request("POST", path, token, **kw)

    def upload(self, race_id: int, data: bytes, token: str | None, *,
               metadata: bytes | str | None = None, name: str | None = None) -> TestResponse:
        """POST a model to a race as ``multipart/form-data``."""
        parts = [Part("model", data, "model.onnx")]
        if isinstance(metadata, bytes):
            parts.append(Part("metadata", metadata, "model_metadata.json", "application/json"))
        elif metadata is not None:
            parts.append(Part("metadata", metadata.encode()))
        if name is not None:
            parts.append(Part("name", name.encode()))
        body, content_type = encode_multipart(parts)  # the encoder of `paddock submit`
        return self.post(f"/races/{race_id}/entries", token, data=body,
                         content_type=content_type)


def error_of(r: TestResponse) -> tuple[int, str, str]:
    """(status, code, message) of an error response."""
    body = r.get_json()
    return r.status_code, body["error"]["code"], body["error"]["message"]
