"""Which private keys of an online Ed25519 role sign for this node now (I/O: the home's key
files and root directory).

The four signing roles are feed (checkpoints of the node's feeds), audit (audit checkpoints),
report (credit reports) and witness (cosignatures of peers' checkpoints); one class,
:class:`RoleSigners`, serves them all (:class:`FeedSigners` is the feed role's).

With no root (before ``creditnode keys root-init``) a role signs with ``HOME/keys/<role>.key``;
an audit, report or witness role whose file is missing (a home made before those keys existed)
signs with the feed key, so that signing always works before root-init. With a root, the role
signs with **every** key of the role that the node's own current root lists as valid now and
whose private key the home holds, each on its own signature line: during a rotation's overlap
window both the old and the new key sign, then the old one's window closes and it stops
signing. A root chain that never listed a key of the role (roots made before the role had
keys) is treated like no root for that role until ``keys rotate --role ROLE`` lists one; once
any published version listed one, only keys the current root lists valid now sign (none may).
The root directory is re-read whenever its versions change, so a root published by ``keys
rotate`` / ``keys publish-root`` (any process) takes effect at the next signature without a
restart.

Private keys live in ``HOME/keys/``: ``<role>.key`` (the key the home was created with; root
v1 lists it) and ``<role>.<keyid16>.key`` for each key added by ``keys rotate`` (0600).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from keys import SigningKey, read_private_file, write_private_file
from node.errors import ConfigError
from node.home import Home
from node.keys.roles import (
    AUDIT,
    FEED,
    REPORT,
    WITNESS,
    OnlineKey,
    format_time,
    public_identity,
    reference_identity,
    tuf_key,
)
from node.keys.store import RootStore
from node.keys.trusted import TrustedRoot

log = structlog.get_logger("creditnode.keys")

SIGNING_ROLES: tuple[str, ...] = (FEED, AUDIT, REPORT, WITNESS)
"""The online roles whose keys are Ed25519 private keys in ``HOME/keys/``."""

KEYID_CHARS = 16  # of the key id in a rotated key's file name


def _check_role(role: str) -> None:
    if role not in SIGNING_ROLES:
        raise ValueError(f"{role!r} is not a signing role; they are {', '.join(SIGNING_ROLES)}")


def role_key_file(home_root: Path, role: str) -> Path:
    """The role's first key, ``HOME/keys/<role>.key`` (root v1 lists it)."""
    _check_role(role)
    return home_root / "keys" / f"{role}.key"


def role_key_path(home_root: Path, role: str, keyid: str) -> Path:
    """Where ``keys rotate`` writes the private key of a new key of *role*."""
    _check_role(role)
    return home_root / "keys" / f"{role}.{keyid[:KEYID_CHARS]}.key"


def role_key_files(home_root: Path, role: str) -> list[Path]:
    """Every private key file of *role* in the home, sorted."""
    _check_role(role)
    directory = home_root / "keys"
    if not directory.is_dir():
        return []
    pattern = re.compile(rf"^{role}(\.[0-9a-f]{{16,64}})?\.key$")
    return sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))


def ensure_role_key(home_root: Path, role: str, name: str) -> Path:
    """Create ``HOME/keys/<role>.key`` (0600) if the home lacks it (homes made before the
    role had keys); never replaces one."""
    path = role_key_file(home_root, role)
    if not path.exists():
        write_private_file(path, SigningKey.generate(name).to_pem())
        log.info("role key created", role=role, file=str(path))
    return path


def load_role_keys(home_root: Path, role: str, name: str) -> dict[bytes, SigningKey]:
    """Every private key of *role* in the home, by public key (DER). Unreadable files are
    skipped (and logged): a key nobody can read signs nothing."""
    found: dict[bytes, SigningKey] = {}
    for path in role_key_files(home_root, role):
        try:
            key = SigningKey.from_pem(name, read_private_file(path))
        except (OSError, ValueError) as exc:
            log.warning("key file unreadable", role=role, file=str(path), reason=str(exc))
            continue
        found[reference_identity(key.verifying_key)] = key
    return found


# The feed role's names, kept for existing callers.
def feed_key_path(home_root: Path, keyid: str) -> Path:
    return role_key_path(home_root, FEED, keyid)


def feed_key_files(home_root: Path) -> list[Path]:
    return role_key_files(home_root, FEED)


def load_feed_keys(home_root: Path, name: str) -> dict[bytes, SigningKey]:
    return load_role_keys(home_root, FEED, name)


def _pre_root_key(home: Home, role: str) -> SigningKey:
    """The key *role* signs with when no root governs it: ``keys/<role>.key``, else (audit,
    report, witness in an older home) the feed key."""
    if role == FEED:
        return home.signing_key
    path = role_key_file(home.paths.root, role)
    try:
        return SigningKey.from_pem(home.signing_key.name, read_private_file(path))
    except FileNotFoundError:
        return home.signing_key
    except (OSError, ValueError) as exc:
        # Fail closed: an unreadable role key is a broken home, not a reason to sign with
        # another role's key.
        raise ConfigError(f"{path}: {exc}") from None


class RoleSigners:
    """The keys that sign for one Ed25519 online *role* of this node at a given time."""

    def __init__(self, role: str, fallback: SigningKey, home_root: Path | None = None) -> None:
        _check_role(role)
        self.role = role
        self._fallback = fallback
        self._home_root = home_root
        self._store = None if home_root is None else RootStore(home_root)
        self._versions: tuple[int, ...] = ()
        self._root: TrustedRoot | None = None
        self._governed = False  # some published root listed a key of the role
        self._keys: dict[bytes, SigningKey] = {}

    @classmethod
    def of_home(cls, home: Home, role: str = FEED) -> RoleSigners:
        """The home's signers for *role*: the root's valid keys of the role, or (no root, or a
        root listing none of the role) ``keys/<role>.key`` — the feed key for audit, report
        and witness when the home has no such file."""
        return cls(role, _pre_root_key(home, role), home.paths.root)

    @classmethod
    def fixed(cls, key: SigningKey, role: str = FEED) -> RoleSigners:
        """Always *key* (no root consulted)."""
        return cls(role, key)

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
        self._governed = root is not None and any(
            parsed.content.online_keys(self.role) for parsed in self._store.history()
        )
        self._keys = load_role_keys(self._home_root, self.role, self._fallback.name)
        if root is not None:
            log.info("own root read", version=root.version, role=self.role)

    def signing_keys(self, now: dt.datetime) -> tuple[SigningKey, ...]:
        """Every key that signs for the role at *now*, in the root's order (may be empty when
        the root lists keys of the role but none valid now that this home holds)."""
        self._refresh()
        if self._root is None or not (self._governed or self._root.content.online_keys(self.role)):
            return (self._fallback,)
        held = (
            self._keys.get(public_identity(o.key)) for o in self._root.valid_keys(self.role, now)
        )
        return tuple(k for k in held if k is not None)


class FeedSigners(RoleSigners):
    """The keys that sign this node's checkpoints (the feed role's :class:`RoleSigners`)."""

    def __init__(self, fallback: SigningKey, home_root: Path | None = None) -> None:
        super().__init__(FEED, fallback, home_root)

    @classmethod
    def of_home(cls, home: Home, role: str = FEED) -> FeedSigners:
        """The home's feed signers (*role* must be feed; use :class:`RoleSigners` for others)."""
        if role != FEED:
            raise ValueError("FeedSigners signs for the feed role only")
        return cls(home.signing_key, home.paths.root)

    @classmethod
    def fixed(cls, key: SigningKey, role: str = FEED) -> FeedSigners:
        if role != FEED:
            raise ValueError("FeedSigners signs for the feed role only")
        return cls(key)


def describe_keys(keys: Iterable[SigningKey]) -> list[str]:
    return [tuf_key(k.verifying_key).keyid[:12] for k in keys]


@dataclass(frozen=True)
class RetiredKey:
    """A private key file ``keys prune`` deletes, and why."""

    path: Path
    keyid: str
    reason: str
    role: str = FEED
    also: tuple[Path, ...] = ()  # deleted with it (a retired TLS key's certificate)

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path, *self.also)


def retirement(
    entry: OnlineKey | None, version: int, *, now: dt.datetime, overlap: dt.timedelta
) -> str | None:
    """Why a key that a published root listed is retired under current root *version*, where
    *entry* is its entry there (None: no longer listed); None while it is not retired (valid
    now, open-ended, or closed less than *overlap* ago)."""
    if entry is None:
        return f"root v{version} no longer lists it"
    end = entry.window.end
    if entry.window.contains(now) or end is None or end > now - overlap:
        return None
    return f"its window closed {format_time(end)} (root v{version})"


def retired_role_keys(
    home_root: Path, role: str, *, now: dt.datetime, overlap: dt.timedelta
) -> list[RetiredKey]:
    """The private key files of *role* (``HOME/keys/<role>.<keyid>.key``) whose key a
    published root listed and the current root no longer does, or lists with a window that
    closed more than *overlap* before *now*. Never ``keys/<role>.key`` (root v1 lists it, the
    feed key is loaded by the home and named in the bundle), a key valid now (it signs), a key
    no published root listed yet (only pending), nor an unreadable file. Empty without a
    root."""
    store = RootStore(home_root)
    if not store.versions():
        return []
    current = store.load()
    published = {
        public_identity(o.key): o.keyid
        for parsed in store.history()
        for o in parsed.content.online_keys(role)
    }
    listed = {public_identity(o.key): o for o in current.content.online_keys(role)}
    retired = []
    for path in role_key_files(home_root, role):
        if path.name == f"{role}.key":
            continue
        try:
            key = SigningKey.from_pem(current.node, read_private_file(path))
        except (OSError, ValueError):
            continue
        identity = reference_identity(key.verifying_key)
        if identity not in published:
            continue
        reason = retirement(listed.get(identity), current.version, now=now, overlap=overlap)
        if reason is not None:
            retired.append(RetiredKey(path, published[identity], reason, role))
    return retired


def retired_feed_keys(
    home_root: Path, *, now: dt.datetime, overlap: dt.timedelta
) -> list[RetiredKey]:
    """:func:`retired_role_keys` for the feed role."""
    return retired_role_keys(home_root, FEED, now=now, overlap=overlap)
