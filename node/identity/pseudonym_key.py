"""This origin's pseudonym key in the node home (``HOME/keys/pseudonym.key``, 0600): one
generation of its RFC 9497 OPRF key, and a holder that picks up a rotation while serving.

The key never leaves the home: partners get pseudonyms only by asking this node to evaluate
blinded IDs (:mod:`node.identity.pseudonym`), which its border decides, limits and records.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from keys import read_private_file, write_private_file

KEY_FORMAT = "creditnode-pseudonym-key/v1"
# node.identity.oprf.SCALAR_BYTES (a ristretto255 scalar), not imported from there: loading a
# key must not load libsodium (rbcl, 25 ms), which only deriving and evaluating need.
SCALAR_BYTES = 32
RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class PseudonymKey:
    """One generation of an origin's OPRF key (the secret scalar)."""

    version: int
    secret: bytes

    @classmethod
    def derive(cls, seed: bytes, *, version: int) -> PseudonymKey:
        """A key from 32 random bytes (RFC 9497 DeriveKeyPair; *version* goes in its info)."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("pseudonym key version must be a positive integer")
        from node.identity.oprf import derive_key_pair

        secret, _ = derive_key_pair(seed, f"creditnode pseudonym key v{version}".encode())
        return cls(version=version, secret=secret)

    @classmethod
    def generate(cls, version: int = 1) -> PseudonymKey:
        return cls.derive(os.urandom(32), version=version)

    def to_bytes(self) -> bytes:
        doc = {
            "format": KEY_FORMAT,
            "version": self.version,
            "key": base64.b64encode(self.secret).decode(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> PseudonymKey:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
                raise ValueError(f"format is not {KEY_FORMAT}")
            secret = base64.b64decode(doc["key"], validate=True)
            version = doc["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}: not a pseudonym key file ({exc})") from None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"{source}: pseudonym key version must be a positive integer")
        if len(secret) != SCALAR_BYTES:
            raise ValueError(f"{source}: pseudonym key must be {SCALAR_BYTES} bytes")
        return cls(version=version, secret=secret)

    def save(self, path: Path) -> None:
        write_private_file(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> PseudonymKey:
        """Load a key file, refusing one that others can read."""
        return cls.from_bytes(read_private_file(path), source=str(path))


class PseudonymKeyFile:
    """The key in force: re-read within a second when ``creditnode identity rotate-pseudonym-key``
    replaces the file, so a serving node evaluates with the new generation without a restart."""

    def __init__(self, path: Path, key: PseudonymKey) -> None:
        self.path = path
        self._key = key
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except OSError:
            return (-1, -1)
        return (st.st_mtime_ns, st.st_ino)

    def reload(self) -> None:
        """Check the file now rather than within RELOAD_SECONDS (SIGHUP)."""
        self._checked = float("-inf")
        self.current()

    def current(self) -> PseudonymKey:
        now = time.monotonic()
        if now - self._checked >= RELOAD_SECONDS:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._key = PseudonymKey.load(self.path)
                except (OSError, ValueError):
                    pass  # a half-replaced or broken file: keep the key in force
                else:
                    self._stamp = stamp
        return self._key
