"""Content-addressed file storage: models and replays, each named by its SHA-256.

A file is written to a temporary name and renamed into place, so a reader never sees half a
file and two writers of the same content cannot clash. The same bytes are stored once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from league.errors import StorageError

KINDS = ("models", "replays")


class Storage:
    """Files under ``root/<kind>/<ab>/<sha256>``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, kind: str, sha256: str) -> Path:
        """Where the file with this digest lives (whether or not it exists)."""
        if kind not in KINDS:
            raise StorageError(f"unknown storage kind {kind!r}")
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise StorageError(f"not a SHA-256 digest: {sha256[:80]!r}")
        return self.root / kind / sha256[:2] / sha256

    def put(self, kind: str, data: bytes) -> str:
        """Store ``data`` and return its digest (a no-op when it is already stored)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(kind, digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, kind: str, sha256: str) -> bytes:
        """The stored bytes, checked against their digest."""
        path = self.path(kind, sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise StorageError(f"{kind[:-1]} {sha256[:12]} is missing from storage") from err
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StorageError(f"{kind[:-1]} {sha256[:12]} is corrupt in storage")
        return data

    def has(self, kind: str, sha256: str) -> bool:
        """Whether a file with this digest is stored."""
        return self.path(kind, sha256).is_file()
