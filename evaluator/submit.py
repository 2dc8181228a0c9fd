"""``paddock submit``: upload a model to a league race through its JSON API, and optionally
wait for the evaluation and print its result.

Standard library only (``urllib`` and a hand-built ``multipart/form-data`` body), so a racer
who can run ``paddock evaluate`` needs nothing more. Every failure is one line
``paddock: error: ...`` on stderr, with the server's own message when it refused, and a
non-zero exit.

``--json`` prints the entry as the API returns it; with ``--wait`` it prints the evaluation's
``result`` instead: exactly the object ``paddock evaluate --json`` prints, so the league's
result can be compared with the one at home.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_PREFIX = "/api/v1"
TOKEN_ENV = "PADDOCK_TOKEN"
SERVER_ENV = "PADDOCK_SERVER"
EXIT_FAILED = 1  # the server refused, or the evaluation failed
EXIT_USAGE = 2  # bad flags or a file that cannot be read
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting (the entry is submitted all the same)
DEFAULT_INTERVAL_S = 2.0  # between two looks at the entry while waiting
DEFAULT_TIMEOUT_S = 1800.0  # give up waiting after this long
REQUEST_TIMEOUT_S = 120.0  # one HTTP request (an upload is validated before the answer)
FINAL = ("succeeded", "failed", "cancelled")
USER_AGENT = "paddock-submit"


class SubmitError(Exception):
    """Raised when the upload or the wait cannot go on; the message is one line."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Part:
    """One field of a multipart form: text, or a file's bytes with its name."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str = "application/octet-stream"


def encode_multipart(parts: Sequence[Part]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (RFC 7578) and its Content-Type header."""
    boundary = f"paddock-{uuid.uuid4().hex}"
    out = bytearray()
    for part in parts:
        if any(ch in part.name + (part.filename or "") for ch in '"\r\n'):
            raise SubmitError(f"a form field or file name may not contain quotes or line "
                              f"breaks: {part.filename or part.name!r}", EXIT_USAGE)
        disposition = f'form-data; name="{part.name}"'
        head = ""
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
            head = f"Content-Type: {part.content_type}\r\n"
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{head}\r\n"
                .encode())
        out += part.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class Client:
    """The few calls ``paddock submit`` makes to a league's API."""

    def __init__(self, server: str, token: str, *, timeout_s: float = REQUEST_TIMEOUT_S,
                 opener: Callable[..., Any] = urllib.request.urlopen) -> None:
        base = server.strip().rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[:-len(API_PREFIX)]
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SubmitError(f"--server must be an http(s) URL like https://paddock.example, "
                              f"got {server!r}", EXIT_USAGE)
        self.base = base + API_PREFIX
        self.token = token
        self.timeout_s = timeout_s
        self.opener = opener

    def submit(self, race_id: int, model: bytes, model_name: str,
               metadata: bytes | None = None, name: str | None = None) -> dict[str, Any]:
        """Upload a model to a race; the new entry."""
        parts = [Part("model", model, model_name)]
        if metadata is not None:
            parts.append(Part("metadata", metadata, "model_metadata.json", "application/json"))
        if name:
            parts.append(Part("name", name.encode("utf-8")))
        body, content_type = encode_multipart(parts)
        return self.call("POST", f"/races/{race_id}/entries", body, content_type)

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str | None = None) -> dict[str, Any]:
        """One request; the JSON answer, or :class:`SubmitError` with the server's message."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                   "User-Agent": USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=body, headers=headers,
                                     method=method)
        try:
            with self.opener(req, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read().decode("utf-8"))
                return answer
        except urllib.error.HTTPError as err:
            raise _refusal(err) from err
        except urllib.error.URLError as err:
            raise SubmitError(f"cannot reach {self.base}: {err.reason}") from err
        except (OSError, ValueError) as err:  # a dropped connection, an answer not JSON
            raise SubmitError(f"{method} {self.base}{path} failed: {err}") from err


class RateLimited(SubmitError):
    """Raised when the server asks to slow down; ``retry_after_s`` says for how long."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _refusal(err: urllib.error.HTTPError) -> SubmitError:
    """The server's error message, as one line."""
    try:
        message = str(json.loads(err.read().decode("utf-8"))["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        message = str(err.reason)
    line = f"{message} (HTTP {err.code})"
    if err.code == 429:
        try:
            retry = float(err.headers.get("Retry-After", ""))
        except ValueError:
            retry = DEFAULT_INTERVAL_S
        return RateLimited(line, max(retry, 0.0))
    return SubmitError(line)


def wait_for(client: Client, entry_id: int, *, interval_s: float, timeout_s: float,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll an entry until its evaluation is finished (or disqualified); the entry."""
    deadline = clock() + timeout_s
    while True:
        try:
            entry = client.call("GET", f"/entries/{entry_id}")
        except RateLimited as err:
            pause = max(err.retry_after_s, interval_s)
        else:
            status = entry["status"]
            if status["status"] in FINAL or status["disqualified"] or status["job_id"] is None:
                return entry
            pause = interval_s
        if clock() + pause > deadline:
            raise SubmitError(f"gave up waiting for entry {entry_id} after {timeout_s:g} s; "
                              f"it is still being evaluated (check again later)")
        sleep(pause)


def cmd_submit(args: argparse.Namespace) -> int:
    """Upload a model to a race; with ``--wait``, follow its evaluation to the result."""
    try:
        return _submit(args)
    except SubmitError as err:
        print(f"paddock: error: {err}", file=sys.stderr)
        return err.status


def _submit(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    server = args.server or os.environ.get(SERVER_ENV, "")
    if not token:
        raise SubmitError(f"give an API token with --token or ${TOKEN_ENV}", EXIT_USAGE)
    if not server:
        raise SubmitError(f"give the league's address with --server or ${SERVER_ENV}",
                          EXIT_USAGE)
    model = _read(args.model)
    metadata = _read(args.metadata) if args.metadata else None
    client = Client(server, token)
    entry = client.submit(args.race, model, Path(args.model).name, metadata, args.name)
    if not args.wait:
        _print_entry(entry, args.json)
        return 0
    if not args.json:
        print(f"entry {entry['id']} submitted to race {entry['race_id']} "
              f"({entry['model']['name']} v{entry['model']['version']}); waiting for its "
              "evaluation...", flush=True)
    try:
        entry = wait_for(client, entry["id"], interval_s=args.interval,
                         timeout_s=args.timeout)
    except KeyboardInterrupt:
        raise SubmitError(f"stopped waiting: entry {entry['id']} is still being evaluated",
                          EXIT_INTERRUPTED) from None
    return _print_outcome(client, entry, args.json)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise SubmitError(f"{path}: {err.strerror or err}", EXIT_USAGE) from err


def _print_entry(entry: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(entry, indent=2))
        return
    state = entry["status"]["status"] or "waiting for the next head-to-head round"
    model = entry["model"]
    print(f"entry {entry['id']} submitted to race {entry['race_id']} "
          f"({model['name']} v{model['version']}): {state}")


def _print_outcome(client: Client, entry: dict[str, Any], as_json: bool) -> int:
    """Print where the finished entry stands; the exit status."""
    status = entry["status"]
    if status["job_id"] is None:
        _print_entry(entry, as_json)
        print("head-to-head entries are raced in the rating rounds: see the race's "
              "leaderboard", file=sys.stderr)
        return 0
    if status["disqualified"] or status["status"] != "succeeded":
        what = "disqualified" if status["disqualified"] else status["status"]
        kind = f" ({status['failure_kind']})" if status["failure_kind"] else ""
        raise SubmitError(f"entry {entry['id']} {what}{kind}: "
                          f"{status['reason'] or 'no reason given'}")
    evaluation = client.call("GET", f"/evaluations/{status['job_id']}")
    result: dict[str, Any] = evaluation["result"]
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"entry {entry['id']}: {result['status']}, "
          f"{_time(result.get('ranking_time_s'))} ({result.get('ranking')})"
          + (f" - {status['reason']}" if status["reason"] else ""))
    for trial in result.get("trials") or []:
        print(f"  trial {trial['trial']}: {trial['status']}, {trial['laps_completed']} laps, "
              f"total {_time(trial.get('total_time_s'))}, best lap "
              f"{_time(trial.get('best_lap_s'))}, off-track {trial['off_track_count']}")
    return 0


def _time(value: float | None) -> str:
    return "no time" if value is None else f"{value:.3f} s"


def add_parser(sub: Any) -> None:
    """Add ``submit`` to the ``paddock`` sub-command set."""
    p = sub.add_parser("submit", help="upload a model to a league race through its API")
    p.add_argument("model", help="policy .onnx file")
    p.add_argument("--race", type=int, required=True, metavar="ID", help="the race's id")
    p.add_argument("--server", metavar="URL",
                   help=f"the league's address, e.g. https://paddock.example (or ${SERVER_ENV})")
    p.add_argument("--token", help=f"a personal API token (or ${TOKEN_ENV})")
    p.add_argument("--metadata", metavar="FILE", help="model_metadata.json for MODEL")
    p.add_argument("--name", help="the model's name (default: its metadata's name)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the evaluation and print its result")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
                   help=f"between looks at the entry while waiting (default "
                        f"{DEFAULT_INTERVAL_S:g})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"give up waiting after this long (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--json", action="store_true",
                   help="print JSON: the entry, or with --wait the evaluation's result")
    p.set_defaults(func=cmd_submit)
