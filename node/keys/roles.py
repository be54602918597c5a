"""Key roles, validity windows, and how they are written into TUF root metadata. Pure: no I/O,
no clock (every time is an argument).

A node's **root** role is held offline by k-of-n operators (holders); it signs nothing but
root metadata. The root lists the node's **online** keys, each in one role with a validity
window:

==========  =============================================================================
feed        signs feed checkpoints (Ed25519; today the home's ``keys/feed.key``)
audit       signs audit checkpoints (Ed25519)
report      signs credit reports (Ed25519)
witness     cosigns peers' checkpoints (Ed25519)
transport   the TLS key (the certificate's public key, ECDSA P-256/P-384 or Ed25519), with the
            certificate's SHA-256 fingerprint
==========  =============================================================================

and the **pseudonym** key generations (the versioned OPRF key): version and window only,
because pseudonyms are verified online by asking the origin.

Root metadata is TUF's (python-tuf ``Metadata[Root]``): ``keys`` holds every public key (root
holders and online keys), ``roles.root`` the holders and threshold. TUF's other top-level roles
(targets, snapshot, timestamp) are unused and must list no keys. What TUF has no field for is in
the root's unrecognized fields, all signed, all prefixed ``x-creditnode-``:

``x-creditnode-format``
    ``"creditnode-root/v1"``
``x-creditnode-node``
    the node's identity URI, ``creditnode://FEDERATION/NODE``; never changes between versions
``x-creditnode-roles``
    ``{role: [{"keyid", "valid_from", "valid_until", "revoked_at"}, …]}`` for the five online
    roles (every role present, possibly empty; transport entries add ``certificate_sha256``)
``x-creditnode-pseudonym``
    ``[{"version", "valid_from", "valid_until", "revoked_at"}, …]``

and a root key may carry ``x-creditnode-holder`` (the holder's name) in the key object.

Times are TUF's format, ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds). A window is
``valid_from <= t < min(valid_until, revoked_at)``; ``valid_until`` null means "until rotated or
revoked". ``revoked_at`` closes a window like ``valid_until`` does, and says why it closed (a
compromise rather than a planned end), which ``keys list`` shows. A key that a root no longer
lists is valid at no time at all under that root.

Strictness: every key is used by exactly one role; no public key appears under two key ids (TUF
counts signatures per key id, so a duplicate would count one holder twice); roles list only
keys the root holds; key types are fixed per role; no field outside this schema.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from securesystemslib.signer import Key, SSlibKey
from tuf.api.metadata import Metadata, Role, Root

from keys import NodeIdentity, VerifyingKey

ROOT_ROLE = "root"
FEED, AUDIT, REPORT, WITNESS, TRANSPORT = "feed", "audit", "report", "witness", "transport"
ONLINE_ROLES: tuple[str, ...] = (FEED, AUDIT, REPORT, WITNESS, TRANSPORT)
PSEUDONYM = "pseudonym"
UNUSED_TUF_ROLES = ("targets", "snapshot", "timestamp")

ROOT_FORMAT = "creditnode-root/v1"
X_PREFIX = "x-creditnode-"
X_FORMAT = "x-creditnode-format"
X_NODE = "x-creditnode-node"
X_ROLES = "x-creditnode-roles"
X_PSEUDONYM = "x-creditnode-pseudonym"
X_HOLDER = "x-creditnode-holder"

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

KeyState = Literal["active", "pending", "expired", "revoked"]

_ED25519 = ("ed25519", "ed25519")
_ECDSA = {("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa", "ecdsa-sha2-nistp384")}
KEY_TYPES: dict[str, frozenset[tuple[str, str]]] = {
    ROOT_ROLE: frozenset({_ED25519}),
    FEED: frozenset({_ED25519}),
    AUDIT: frozenset({_ED25519}),
    REPORT: frozenset({_ED25519}),
    WITNESS: frozenset({_ED25519}),
    TRANSPORT: frozenset({_ED25519, *_ECDSA}),
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

PublicKey = Ed25519PublicKey | EllipticCurvePublicKey
KeyRef = str | Key | VerifyingKey | Ed25519PublicKey | EllipticCurvePublicKey
"""A key as callers hold it: a TUF key id, a TUF key, a node VerifyingKey or a public key."""


def format_time(t: dt.datetime) -> str:
    return utc(t).strftime(TIME_FORMAT)


def parse_time(text: object, what: str) -> dt.datetime:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a time string")
    try:
        t = dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
    if format_time(t) != text:
        raise ValueError(f"{what} {text!r} is not in canonical form")
    return t


def utc(t: dt.datetime) -> dt.datetime:
    """*t* in UTC, to the second. Naive times are refused: they are bugs waiting to happen."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return t.astimezone(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Window:
    """When a key may sign: ``valid_from <= t < end`` where end is the earlier of
    ``valid_until`` and ``revoked_at`` (either may be None: open)."""

    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    revoked_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid_from", utc(self.valid_from))
        if self.valid_until is not None:
            object.__setattr__(self, "valid_until", utc(self.valid_until))
            if self.valid_until <= self.valid_from:
                raise ValueError("a window's valid_until must be after its valid_from")
        if self.revoked_at is not None:
            object.__setattr__(self, "revoked_at", utc(self.revoked_at))
            if self.revoked_at < self.valid_from:
                raise ValueError("a window cannot be revoked before it opens")

    @property
    def end(self) -> dt.datetime | None:
        ends = [t for t in (self.valid_until, self.revoked_at) if t is not None]
        return min(ends) if ends else None

    def contains(self, at: dt.datetime) -> bool:
        """True if a signature made at *at* falls inside the window (aware times only)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("times must be timezone-aware")
        end = self.end
        return self.valid_from <= at and (end is None or at < end)

    def state(self, now: dt.datetime) -> KeyState:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.valid_until is not None and self.valid_until <= now:
            return "expired"
        if now < self.valid_from:
            return "pending"
        return "active"

    def closed(self, at: dt.datetime, *, revoked: bool) -> Window:
        """This window ending at *at*: planned (``valid_until``) or a revocation."""
        at = utc(at)
        if revoked:
            return replace(
                self, revoked_at=at if self.revoked_at is None else min(at, self.revoked_at)
            )
        until = at if self.valid_until is None else min(at, self.valid_until)
        return replace(self, valid_until=until)

    def describe(self) -> str:
        end = self.end
        return f"{format_time(self.valid_from)} → {format_time(end) if end else 'open'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid_from": format_time(self.valid_from),
            "valid_until": None if self.valid_until is None else format_time(self.valid_until),
            "revoked_at": None if self.revoked_at is None else format_time(self.revoked_at),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], what: str) -> Window:
        until, revoked = doc["valid_until"], doc["revoked_at"]
        return cls(
            valid_from=parse_time(doc["valid_from"], f"{what} valid_from"),
            valid_until=None if until is None else parse_time(until, f"{what} valid_until"),
            revoked_at=None if revoked is None else parse_time(revoked, f"{what} revoked_at"),
        )


def public_identity(key: Key) -> bytes:
    """The key's public part as DER SubjectPublicKeyInfo: what "the same key" means.

    Refuses key values that are not in canonical form (lower-case hex for Ed25519, the PEM the
    key re-encodes to for ECDSA), so that one key has exactly one spelling.
    """
    public = key.keyval.get("public")
    if set(key.keyval) != {"public"} or not isinstance(public, str):
        raise ValueError(f"key {key.keyid}: keyval must be {{'public': ...}}")
    crypto: PublicKey
    if (key.keytype, key.scheme) == _ED25519:
        if not _HEX64.fullmatch(public):
            raise ValueError(f"key {key.keyid}: Ed25519 public key must be 64 lower-case hex")
        crypto = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
    elif (key.keytype, key.scheme) in _ECDSA:
        loaded = serialization.load_pem_public_key(public.encode())
        if not isinstance(loaded, EllipticCurvePublicKey):
            raise ValueError(f"key {key.keyid}: not an ECDSA public key")
        pem = loaded.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        if pem != public:
            raise ValueError(f"key {key.keyid}: ECDSA public key PEM is not in canonical form")
        crypto = loaded
    else:
        raise ValueError(f"key {key.keyid}: unsupported key type {key.keytype}/{key.scheme}")
    return _der(crypto)


def _der(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def reference_identity(ref: Key | VerifyingKey | PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of a key given as a TUF key, a VerifyingKey or a public key."""
    if isinstance(ref, Key):
        return public_identity(ref)
    if isinstance(ref, VerifyingKey):
        return _der(ref.public)
    return _der(ref)


def ed25519_public(key: Key) -> Ed25519PublicKey:
    """The Ed25519 public key of a TUF key (feed, audit, report and witness keys are
    Ed25519); ValueError for another type."""
    if (key.keytype, key.scheme) != _ED25519:
        raise ValueError(f"key {key.keyid} is {key.keytype}/{key.scheme}, not Ed25519")
    public_identity(key)  # canonical form checked
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.keyval["public"]))


def tuf_key(public: PublicKey | VerifyingKey, *, holder: str | None = None) -> SSlibKey:
    """A TUF key (default key id: SHA-256 of its canonical form) for a public key."""
    if isinstance(public, VerifyingKey):
        public = public.public
    key = SSlibKey.from_crypto(public)
    if holder is not None:
        key.unrecognized_fields[X_HOLDER] = holder
    return key


def short_id(keyid: str) -> str:
    return keyid[:12]


@dataclass(frozen=True)
class OnlineKey:
    """One key in one online role, with its window."""

    role: str
    key: Key
    window: Window
    certificate_sha256: str | None = None

    @property
    def keyid(self) -> str:
        return self.key.keyid

    def __post_init__(self) -> None:
        if self.role not in ONLINE_ROLES:
            raise ValueError(f"unknown online role {self.role!r}")
        if self.certificate_sha256 is not None and (
            self.role != TRANSPORT or not _HEX64.fullmatch(self.certificate_sha256)
        ):
            raise ValueError("certificate_sha256 is 64 lower-case hex, on transport keys only")

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"keyid": self.keyid, **self.window.to_dict()}
        if self.role == TRANSPORT:
            doc["certificate_sha256"] = self.certificate_sha256
        return doc


@dataclass(frozen=True)
class PseudonymGeneration:
    """One generation of the origin's OPRF pseudonym key: its version and window."""

    version: int
    window: Window

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError("pseudonym key version must be a positive integer")

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, **self.window.to_dict()}


_WINDOW_FIELDS = {"valid_from", "valid_until", "revoked_at"}


def _exact_fields(doc: object, fields: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError(f"{what} must be an object")
    if set(doc) != fields:
        extra, missing = sorted(set(doc) - fields), sorted(fields - set(doc))
        raise ValueError(f"{what}: unexpected fields {extra}, missing {missing}")
    return doc


@dataclass(frozen=True)
class RootContent:
    """What one root version says, in the node's terms; converts to and from TUF's Root.

    Immutable: the ``with_…`` methods return a new content for the next version (rotation and
    revocation build on them). :meth:`to_metadata` gives unsigned ``Metadata[Root]``.
    """

    node: str
    version: int
    expires: dt.datetime
    holders: tuple[Key, ...]
    threshold: int
    online: tuple[OnlineKey, ...] = ()
    pseudonym: tuple[PseudonymGeneration, ...] = field(default=())

    # -- reading -------------------------------------------------------------------------

    def online_keys(self, role: str) -> tuple[OnlineKey, ...]:
        if role not in ONLINE_ROLES:
            raise ValueError(f"unknown online role {role!r}; roles are {', '.join(ONLINE_ROLES)}")
        return tuple(k for k in self.online if k.role == role)

    def holder_name(self, key: Key) -> str | None:
        name = key.unrecognized_fields.get(X_HOLDER)
        return name if isinstance(name, str) else None

    @property
    def holder_keyids(self) -> tuple[str, ...]:
        return tuple(k.keyid for k in self.holders)

    def all_keys(self) -> dict[str, Key]:
        return {k.keyid: k for k in self.holders} | {o.keyid: o.key for o in self.online}

    # -- next versions -------------------------------------------------------------------

    def next_version(self, *, expires: dt.datetime) -> RootContent:
        """The same content as version N+1 with a new expiry (a renewal)."""
        return replace(self, version=self.version + 1, expires=utc(expires))

    def with_online_key(self, entry: OnlineKey) -> RootContent:
        if any(o.keyid == entry.keyid for o in self.online):
            raise ValueError(f"key {short_id(entry.keyid)} is already listed")
        return replace(self, online=(*self.online, entry))

    def with_window_closed(
        self, role: str, keyid: str, at: dt.datetime, *, revoked: bool
    ) -> RootContent:
        """Close *keyid*'s window in *role* at *at* (a planned end, or a revocation)."""
        found = [o for o in self.online_keys(role) if o.keyid == keyid]
        if not found:
            raise ValueError(f"role {role} lists no key {short_id(keyid)}")
        online = tuple(
            replace(o, window=o.window.closed(at, revoked=revoked)) if o is found[0] else o
            for o in self.online
        )
        return replace(self, online=online)

    def without_key(self, role: str, keyid: str) -> RootContent:
        """Drop *keyid* from *role*: under the new root it was never valid."""
        if not any(o.keyid == keyid for o in self.online_keys(role)):
            raise ValueError(f"role {role} lists no key {short_id(keyid)}")
        return replace(
            self, online=tuple(o for o in self.online if not (o.role == role and o.keyid == keyid))
        )

    def with_pseudonym(self, generation: PseudonymGeneration) -> RootContent:
        if any(g.version == generation.version for g in self.pseudonym):
            raise ValueError(f"pseudonym key version {generation.version} is already listed")
        return replace(self, pseudonym=(*self.pseudonym, generation))

    def with_pseudonym_closed(self, version: int, at: dt.datetime, *, revoked: bool) -> RootContent:
        """Close pseudonym generation *version*'s window at *at*."""
        if not any(g.version == version for g in self.pseudonym):
            raise ValueError(f"no pseudonym key version {version} is listed")
        return replace(
            self,
            pseudonym=tuple(
                replace(g, window=g.window.closed(at, revoked=revoked))
                if g.version == version
                else g
                for g in self.pseudonym
            ),
        )

    def with_holders(self, holders: Iterable[Key], threshold: int) -> RootContent:
        """The root role held by *holders* with *threshold* (a holder rotation)."""
        found = tuple(holders)
        if not 1 <= threshold <= len(found):
            raise ValueError(f"threshold {threshold} must be between 1 and {len(found)} holders")
        return replace(self, holders=found, threshold=threshold)

    # -- TUF -----------------------------------------------------------------------------

    def to_metadata(self) -> Metadata[Root]:
        """Unsigned root metadata for this content (checked by reading it back)."""
        keys: dict[str, Key] = {}
        for key in (*self.holders, *(o.key for o in self.online)):
            if key.keyid in keys:
                raise ValueError(f"key {short_id(key.keyid)} is listed twice")
            keys[key.keyid] = copy.deepcopy(key)
        roles = {ROOT_ROLE: Role(list(self.holder_keyids), self.threshold)}
        roles |= {name: Role([], 1) for name in UNUSED_TUF_ROLES}
        extra = {
            X_FORMAT: ROOT_FORMAT,
            X_NODE: self.node,
            X_ROLES: {r: [o.to_dict() for o in self.online_keys(r)] for r in ONLINE_ROLES},
            X_PSEUDONYM: [g.to_dict() for g in self.pseudonym],
        }
        root = Root(
            version=self.version,
            expires=utc(self.expires),
            keys=keys,
            roles=roles,
            consistent_snapshot=False,
            unrecognized_fields=extra,
        )
        RootContent.from_root(root)
        return Metadata(root)

    @classmethod
    def from_root(cls, root: Root) -> RootContent:
        """Read and check a TUF root against the schema above. ValueError names the problem."""
        extra = root.unrecognized_fields
        wanted = {X_FORMAT, X_NODE, X_ROLES, X_PSEUDONYM}
        if set(extra) != wanted:
            raise ValueError(
                f"root fields beyond TUF's must be exactly {sorted(wanted)}, got {sorted(extra)}"
            )
        if extra[X_FORMAT] != ROOT_FORMAT:
            raise ValueError(f"{X_FORMAT} is not {ROOT_FORMAT!r}")
        node = extra[X_NODE]
        if not isinstance(node, str):
            raise ValueError(f"{X_NODE} must be a string")
        NodeIdentity.parse(node)
        if root.consistent_snapshot not in (None, False):
            raise ValueError("consistent_snapshot must be false (there are no snapshots)")
        for name in UNUSED_TUF_ROLES:
            if root.roles[name].keyids or root.roles[name].unrecognized_fields:
                raise ValueError(f"TUF role {name} is unused and must list no keys")

        if not _is_int(root.version) or not all(_is_int(r.threshold) for r in root.roles.values()):
            raise ValueError("version and thresholds must be integers")
        root_role = root.roles[ROOT_ROLE]
        if root_role.unrecognized_fields:
            raise ValueError("the root role has unexpected fields")
        if not root_role.keyids:
            raise ValueError("the root role lists no keys")
        if root_role.threshold > len(root_role.keyids):
            raise ValueError(
                f"root threshold {root_role.threshold} exceeds its {len(root_role.keyids)} keys"
            )

        used: dict[str, str] = {}  # keyid -> role

        def use(keyid: object, role: str) -> Key:
            if not isinstance(keyid, str):
                raise ValueError(f"role {role}: key ids must be strings")
            if keyid in used:
                raise ValueError(
                    f"key {short_id(keyid)} is listed in role {used[keyid]} and again in {role}"
                )
            key = root.keys.get(keyid)
            if key is None:
                raise ValueError(f"role {role} lists key {short_id(keyid)}, which the root lacks")
            if (key.keytype, key.scheme) not in KEY_TYPES[role]:
                raise ValueError(
                    f"role {role}: key {short_id(keyid)} is {key.keytype}/{key.scheme}, "
                    "not a type this role may use"
                )
            used[keyid] = role
            return key

        holders = []
        for keyid in root_role.keyids:
            key = use(keyid, ROOT_ROLE)
            if set(key.unrecognized_fields) - {X_HOLDER} or not isinstance(
                key.unrecognized_fields.get(X_HOLDER, ""), str
            ):
                raise ValueError(f"root key {short_id(keyid)} has unexpected fields")
            holders.append(key)

        roles_doc = extra[X_ROLES]
        if not isinstance(roles_doc, dict) or set(roles_doc) != set(ONLINE_ROLES):
            raise ValueError(f"{X_ROLES} must name exactly the roles {', '.join(ONLINE_ROLES)}")
        online: list[OnlineKey] = []
        for role in ONLINE_ROLES:
            entries = roles_doc[role]
            if not isinstance(entries, list):
                raise ValueError(f"{X_ROLES}.{role} must be a list")
            fields = {"keyid", *_WINDOW_FIELDS} | (
                {"certificate_sha256"} if role == TRANSPORT else set()
            )
            for entry in entries:
                doc = _exact_fields(entry, fields, f"{X_ROLES}.{role} entry")
                key = use(doc["keyid"], role)
                if key.unrecognized_fields:
                    raise ValueError(f"online key {short_id(key.keyid)} has unexpected fields")
                fingerprint = doc.get("certificate_sha256")
                if fingerprint is not None and not isinstance(fingerprint, str):
                    raise ValueError("certificate_sha256 must be a string")
                online.append(
                    OnlineKey(
                        role=role,
                        key=key,
                        window=Window.from_dict(doc, f"{role} key {short_id(key.keyid)}"),
                        certificate_sha256=fingerprint,
                    )
                )

        unused = sorted(set(root.keys) - set(used))
        if unused:
            raise ValueError(f"the root holds keys no role uses: {[short_id(k) for k in unused]}")
        _one_id_per_key(root.keys.values())

        generations_doc = extra[X_PSEUDONYM]
        if not isinstance(generations_doc, list):
            raise ValueError(f"{X_PSEUDONYM} must be a list")
        generations: list[PseudonymGeneration] = []
        for entry in generations_doc:
            doc = _exact_fields(entry, {"version", *_WINDOW_FIELDS}, f"{X_PSEUDONYM} entry")
            version = doc["version"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise ValueError(f"{X_PSEUDONYM} version must be an integer")
            if any(g.version == version for g in generations):
                raise ValueError(f"{X_PSEUDONYM} lists version {version} twice")
            generations.append(
                PseudonymGeneration(version, Window.from_dict(doc, f"pseudonym v{version}"))
            )

        return cls(
            node=node,
            version=root.version,
            expires=root.expires,
            holders=tuple(holders),
            threshold=root_role.threshold,
            online=tuple(online),
            pseudonym=tuple(generations),
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_id_per_key(keys: Iterable[Key]) -> None:
    """Refuse one public key under two key ids (TUF would count its signature twice)."""
    seen: dict[bytes, str] = {}
    for key in keys:
        identity = public_identity(key)
        if identity in seen:
            raise ValueError(
                f"keys {short_id(seen[identity])} and {short_id(key.keyid)} are the same "
                "public key under two key ids"
            )
        seen[identity] = key.keyid
