"""Which private feed keys sign this node's checkpoints now (I/O: the home's key files and
root directory).

With no root (before ``creditnode keys root-init``) the node signs with ``HOME/keys/feed.key``
as it always did. With a root, it signs with **every** feed key that its own current root
lists as valid now and whose private key it holds, each on its own signature line: during a
rotation's overlap window both the old and the new key sign, then the old one's window closes
and it stops signing. The root directory is re-read whenever its versions change, so a root
published by ``keys rotate`` / ``keys publish-root`` (any process) takes effect at the next
checkpoint without a restart.

Private feed keys live in ``HOME/keys/``: ``feed.key`` (the key the home was created with;
root v1 lists it) and ``feed.<keyid>.key`` for each key added by ``keys rotate`` (0600).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from keys import SigningKey, read_private_file
from node.errors import ConfigError
from node.home import Home
from node.keys.roles import FEED, format_time, public_identity, reference_identity, tuf_key
from node.keys.store import RootStore
from node.keys.trusted import TrustedRoot

log = structlog.get_logger("creditnode.keys")

_FEED_KEY_FILE = re.compile(r"^feed(\.[0-9a-f]{16,64})?\.key$")
KEYID_CHARS = 16  # of the key id in a rotated key's file name


def feed_key_path(home_root: Path, keyid: str) -> Path:
    """Where ``keys rotate`` writes the private key of a new feed key."""
    return home_root / "keys" / f"feed.{keyid[:KEYID_CHARS]}.key"


def feed_key_files(home_root: Path) -> list[Path]:
    directory = home_root / "keys"
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _FEED_KEY_FILE.fullmatch(p.name))


def load_feed_keys(home_root: Path, name: str) -> dict[bytes, SigningKey]:
    """Every private feed key of the home, by public key (DER). Unreadable files are skipped
    (and logged): a key nobody can read signs nothing."""
    found: dict[bytes, SigningKey] = {}
    for path in feed_key_files(home_root):
        try:
            key = SigningKey.from_pem(name, read_private_file(path))
        except (OSError, ValueError) as exc:
            log.warning("feed key file unreadable", file=str(path), reason=str(exc))
            continue
        found[reference_identity(key.verifying_key)] = key
    return found


class FeedSigners:
    """The keys that sign this node's checkpoints at a given time."""

    def __init__(self, fallback: SigningKey, home_root: Path | None = None) -> None:
        self._fallback = fallback
        self._home_root = home_root
        self._store = None if home_root is None else RootStore(home_root)
        self._versions: tuple[int, ...] = ()
        self._root: TrustedRoot | None = None
        self._keys: dict[bytes, SigningKey] = {}

    @classmethod
    def of_home(cls, home: Home) -> FeedSigners:
        """The home's signers: its root's valid feed keys, or ``keys/feed.key`` without one."""
        return cls(home.signing_key, home.paths.root)

    @classmethod
    def fixed(cls, key: SigningKey) -> FeedSigners:
        """Always *key* (no root consulted)."""
        return cls(key)

    @property
    def root(self) -> TrustedRoot | None:
        """The node's own current root as last read (None: no root)."""
        self._refresh()
        return self._root

    def _refresh(self) -> None:
        if self._store is None or self._home_root is None:
            return
        versions = tuple(self._store.versions())
        if versions == self._versions:
            return
        self._versions = versions
        try:
            root = self._store.load() if versions else None
        except ConfigError as exc:
            # A broken newest version must not stop signing with the root held so far; it is
            # read again when the versions change.
            log.error("own root unreadable; keeping the one held", reason=str(exc))
            return
        self._root = root
        self._keys = load_feed_keys(self._home_root, self._fallback.name)
        if root is not None:
            log.info("own root read", version=root.version)

    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]:
        """Every key that signs a checkpoint made at *now*, in the root's order (may be empty
        when the root lists no valid feed key this home holds)."""
        self._refresh()
        if self._root is None:
            return (self._fallback,)
        held = (self._keys.get(public_identity(o.key)) for o in self._root.valid_keys(FEED, now))
        return tuple(k for k in held if k is not None)


def describe_keys(keys: Iterable[SigningKey]) -> list[str]:
    return [tuf_key(k.verifying_key).keyid[:12] for k in keys]


@dataclass(frozen=True)
class RetiredKey:
    """A private feed key file ``keys prune`` deletes, and why."""

    path: Path
    keyid: str
    reason: str


def retired_feed_keys(
    home_root: Path, *, now: dt.datetime, overlap: dt.timedelta
) -> list[RetiredKey]:
    """The private feed key files (``HOME/keys/feed.<keyid>.key``) whose key a published root
    listed and the current root no longer does, or lists with a window that closed more than
    *overlap* before *now*. Never ``keys/feed.key`` (the home loads it, root v1 lists it, the
    bundle names it), a key valid now (it signs), a key no published root listed yet (only
    pending), nor an unreadable file. Empty without a root."""
    store = RootStore(home_root)
    if not store.versions():
        return []
    current = store.load()
    published = {
        public_identity(o.key): o.keyid
        for parsed in store.history()
        for o in parsed.content.online_keys(FEED)
    }
    listed = {public_identity(o.key): o for o in current.content.online_keys(FEED)}
    retired = []
    for path in feed_key_files(home_root):
        if path.name == "feed.key":
            continue
        try:
            key = SigningKey.from_pem(current.node, read_private_file(path))
        except (OSError, ValueError):
            continue
        identity = reference_identity(key.verifying_key)
        if identity not in published:
            continue
        entry = listed.get(identity)
        if entry is None:
            reason = f"root v{current.version} no longer lists it"
        else:
            end = entry.window.end
            if entry.window.contains(now) or end is None or end > now - overlap:
                continue
            reason = f"its window closed {format_time(end)} (root v{current.version})"
        retired.append(RetiredKey(path, published[identity], reason))
    return retired
