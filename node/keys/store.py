"""The node's root versions in its home (I/O)::

    HOME/keys/root/1.root.json, 2.root.json, …   every published version, exactly as signed
    HOME/keys/root/pending.json                  the next version while holders sign it

All public (0644), written atomically (``keys.write_public_file``). A version file is written
once and never replaced. What is trusted is decided by :class:`node.keys.trusted.TrustedRoot`
alone; this module only reads and writes bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from keys import write_public_file
from node.errors import ConfigError
from node.keys.trusted import (
    MAX_CHAIN,
    MAX_ROOT_BYTES,
    ParsedRoot,
    RootError,
    TrustedRoot,
    parse_root,
)

_VERSION_FILE = re.compile(r"^([1-9][0-9]*)\.root\.json$")


class RootStore:
    """``HOME/keys/root/``."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "keys" / "root"

    def path(self, version: int) -> Path:
        return self.directory / f"{version}.root.json"

    @property
    def pending_path(self) -> Path:
        return self.directory / "pending.json"

    def versions(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = (_VERSION_FILE.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _read(self, path: Path) -> bytes:
        with path.open("rb") as fh:
            return fh.read(MAX_ROOT_BYTES + 1)  # the size cap is TrustedRoot's; don't read more

    def read(self, version: int) -> bytes:
        return self._read(self.path(version))

    def after(self, version: int, *, limit: int = MAX_CHAIN) -> list[bytes]:
        """Versions *version*+1, *version*+2, … as stored (at most *limit*, stopping at a
        missing one): what a peer holding *version* needs to catch up (``GetRoot``)."""
        held = set(self.versions())
        found: list[bytes] = []
        next_version = max(version, 0) + 1
        while next_version in held and len(found) < limit:
            found.append(self.read(next_version))
            next_version += 1
        return found

    def load(self) -> TrustedRoot:
        """The current root: the highest version, checked as a self-signed root (it was
        verified against its predecessor when it was published)."""
        versions = self.versions()
        if not versions:
            raise ConfigError(
                f"{self.directory}: no root metadata; create it with `creditnode keys root-init`"
            )
        path = self.path(versions[-1])
        try:
            return TrustedRoot(self._read(path))
        except RootError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def history(self) -> list[ParsedRoot]:
        """Every stored version, parsed (not re-verified), oldest first; unreadable ones are
        skipped (``load`` reports a broken current root)."""
        parsed = []
        for version in self.versions():
            try:
                parsed.append(parse_root(self.read(version)))
            except (OSError, RootError):
                continue
        return parsed

    def write_version(self, version: int, data: bytes) -> Path:
        path = self.path(version)
        if path.exists():
            raise ConfigError(f"{path} already exists; a root version is never replaced")
        write_public_file(path, data)
        return path

    def read_pending(self) -> bytes | None:
        try:
            return self._read(self.pending_path)
        except FileNotFoundError:
            return None

    def write_pending(self, data: bytes) -> None:
        write_public_file(self.pending_path, data)

    def remove_pending(self) -> None:
        self.pending_path.unlink(missing_ok=True)
