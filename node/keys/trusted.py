"""The one place that decides which root of a node is trusted, and so which of its online keys
may have signed what, when. Pure: bytes and times in, decisions out.

Modelled on python-tuf's ``TrustedMetadataSet`` (root part) and verified with its Metadata API:

- A :class:`TrustedRoot` starts from root bytes trusted by other means (the node's own first
  root, or a peer's root received at enrollment) that carry a threshold of their own root
  keys' signatures.
- :meth:`TrustedRoot.update` / :meth:`TrustedRoot.update_chain` accept version N+1 only if it
  is signed by a threshold of version N's root keys **and** a threshold of its own, its version
  is exactly N+1, it names the same node, it is at most :data:`MAX_ROOT_BYTES` long, and the
  chain given at once is at most :data:`MAX_CHAIN` versions long. Expiry is checked on the
  final version of a chain only (an expired intermediate root can still hand trust on, as in
  TUF). An update is all or nothing: on any refusal the trusted root is unchanged.
- What is verified is exactly the bytes received: they are parsed strictly (no duplicate JSON
  keys, nothing outside ``signed``/``signatures``), signatures are checked over the canonical
  JSON of the *received* ``signed`` object, and that must equal the canonical JSON of the
  parsed ``Root`` (so what is trusted afterwards is what was signed, not a lossy re-reading).
- :meth:`TrustedRoot.key_valid` is the predicate a peer applies before accepting a checkpoint,
  report or cosignature: was this key in this role, and inside its window, at the signing time,
  according to the root held? A key the root no longer lists is valid at no time; a window
  closed at T (planned or revoked) admits T-1 and refuses T.

The root's own expiry limits how long a root can be *installed*; it does not enter
:meth:`~TrustedRoot.key_valid` (use :meth:`~TrustedRoot.expired` to ask).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, VerificationResult

from node.keys.roles import (
    ONLINE_ROLES,
    ROOT_ROLE,
    TRANSPORT,
    KeyRef,
    OnlineKey,
    RootContent,
    format_time,
    public_identity,
    reference_identity,
    utc,
)

MAX_ROOT_BYTES = 512 * 1024
MAX_CHAIN = 64


class RootError(ValueError):
    """Root metadata that is refused; the message says why."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise RootError(f"duplicate JSON key {key!r}")
        doc[key] = value
    return doc


def _no_constant(name: str) -> Any:
    raise RootError(f"JSON constant {name} is not allowed")


@dataclass(frozen=True)
class VerifiedRoot:
    """One root version that passed the checks, with the exact bytes it came as."""

    raw: bytes
    metadata: Metadata[Root]
    content: RootContent

    @property
    def version(self) -> int:
        return self.content.version

    @property
    def signed(self) -> Root:
        return self.metadata.signed


@dataclass(frozen=True)
class ParsedRoot:
    """Root bytes parsed strictly, signatures not yet checked."""

    raw: bytes
    metadata: Metadata[Root]
    content: RootContent
    payload: bytes  # canonical JSON of the received ``signed`` object: what was signed


def parse_root(data: bytes) -> ParsedRoot:
    """Parse root bytes strictly (size, JSON, TUF, the creditnode schema); no signature check.

    Used by :class:`TrustedRoot` and by holders who want to see what they are about to sign.
    """
    if len(data) > MAX_ROOT_BYTES:
        raise RootError(f"root is {len(data)} bytes, more than the {MAX_ROOT_BYTES} allowed")
    try:
        doc = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except RootError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise RootError(f"root is not JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"signed", "signatures"}:
        raise RootError("root metadata must hold exactly 'signed' and 'signatures'")
    if not isinstance(doc["signed"], dict) or doc["signed"].get("_type") != ROOT_ROLE:
        raise RootError("metadata is not a TUF root")
    try:
        canonical = encode_canonical(doc["signed"])
    except Exception as exc:  # securesystemslib raises FormatError for floats and the like
        raise RootError(f"root cannot be put in canonical form ({exc})") from None
    assert canonical is not None
    payload = canonical.encode("utf-8")
    try:
        metadata: Metadata[Root] = Metadata.from_dict(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RootError(f"not valid TUF root metadata ({exc})") from None
    if not isinstance(metadata.signed, Root):
        raise RootError("metadata is not a TUF root")
    if metadata.signed_bytes != payload:
        raise RootError("root does not read back to what was signed (unexpected encoding)")
    try:
        content = RootContent.from_root(metadata.signed)
    except ValueError as exc:
        raise RootError(f"root v{metadata.signed.version}: {exc}") from None
    return ParsedRoot(raw=data, metadata=metadata, content=content, payload=payload)


@dataclass(frozen=True)
class SignatureCount:
    """How many of one root version's root keys validly signed, out of the threshold."""

    of_version: int
    signed: tuple[str, ...]
    unsigned: tuple[str, ...]
    threshold: int

    @property
    def met(self) -> bool:
        return len(self.signed) >= self.threshold

    def describe(self) -> str:
        return (
            f"{len(self.signed)} of the {self.threshold} signatures required from "
            f"root v{self.of_version}'s keys"
        )

    @classmethod
    def of(cls, version: int, result: VerificationResult) -> SignatureCount:
        return cls(version, tuple(result.signed), tuple(result.unsigned), result.threshold)


@dataclass(frozen=True)
class RootProgress:
    """Signatures a candidate root N+1 carries: by root N's keys and by its own."""

    version: int
    previous: SignatureCount
    own: SignatureCount

    @property
    def complete(self) -> bool:
        return self.previous.met and self.own.met


def _count(signer: Root, parsed: ParsedRoot, version: int) -> SignatureCount:
    result = signer.get_verification_result(ROOT_ROLE, parsed.payload, parsed.metadata.signatures)
    return SignatureCount.of(version, result)


def _self_check(parsed: ParsedRoot) -> VerifiedRoot:
    own = _count(parsed.metadata.signed, parsed, parsed.content.version)
    if not own.met:
        raise RootError(f"root v{parsed.content.version} has {own.describe()}")
    return VerifiedRoot(raw=parsed.raw, metadata=parsed.metadata, content=parsed.content)


class TrustedRoot:
    """The root of one node this process trusts, and every decision that follows from it."""

    def __init__(self, data: bytes) -> None:
        """Trust *data*, obtained by other means, if it is a well-formed root signed by a
        threshold of its own root keys. Its expiry is not checked (as in TUF, a held root
        stays the base for updates after it expires)."""
        self._root = _self_check(parse_root(data))

    # -- the root held -------------------------------------------------------------------

    @property
    def root(self) -> VerifiedRoot:
        return self._root

    @property
    def content(self) -> RootContent:
        return self._root.content

    @property
    def version(self) -> int:
        return self._root.version

    @property
    def node(self) -> str:
        return self._root.content.node

    def expired(self, now: dt.datetime) -> bool:
        return utc(now) >= self._root.content.expires

    # -- updating ------------------------------------------------------------------------

    def progress(self, data: bytes) -> RootProgress:
        """The signatures candidate *data* (version N+1) carries so far; raises RootError for
        anything but missing signatures (wrong version, wrong node, malformed)."""
        parsed = self._candidate(self._root, data)
        return RootProgress(
            version=parsed.content.version,
            previous=_count(self._root.signed, parsed, self._root.version),
            own=_count(parsed.metadata.signed, parsed, parsed.content.version),
        )

    def update(self, data: bytes, *, now: dt.datetime) -> VerifiedRoot:
        """Accept version N+1 (see :meth:`update_chain`); it is the final version, so its
        expiry is checked."""
        return self.update_chain([data], now=now)

    def update_chain(self, chain: Sequence[bytes], *, now: dt.datetime) -> VerifiedRoot:
        """Accept versions N+1, N+2, … in order, all or nothing. Each must be signed by a
        threshold of the previous version's root keys and of its own; only the last must be
        unexpired at *now*. Raises RootError and keeps the current root on any refusal."""
        if not chain:
            raise RootError("no root versions given")
        if len(chain) > MAX_CHAIN:
            raise RootError(f"{len(chain)} root versions at once, more than {MAX_CHAIN} allowed")
        current = self._root
        for data in chain:
            current = self._step(current, data)
        if utc(now) >= current.content.expires:
            raise RootError(
                f"root v{current.version} expired at {format_time(current.content.expires)}"
            )
        self._root = current
        return current

    def _candidate(self, previous: VerifiedRoot, data: bytes) -> ParsedRoot:
        parsed = parse_root(data)
        version = parsed.content.version
        if version != previous.version + 1:
            raise RootError(f"root v{version} does not follow v{previous.version}")
        if parsed.content.node != previous.content.node:
            raise RootError(
                f"root v{version} is for {parsed.content.node}, not {previous.content.node}"
            )
        return parsed

    def _step(self, previous: VerifiedRoot, data: bytes) -> VerifiedRoot:
        parsed = self._candidate(previous, data)
        by_previous = _count(previous.signed, parsed, previous.version)
        if not by_previous.met:
            raise RootError(f"root v{parsed.content.version} has {by_previous.describe()}")
        return _self_check(parsed)

    # -- decisions -----------------------------------------------------------------------

    def keyid_of(self, key: KeyRef) -> str | None:
        """The key id this root lists *key* under (by public key, never by a claimed id),
        or None. A string is taken as a key id and returned if the root holds it."""
        keys = self._root.content.all_keys()
        if isinstance(key, str):
            return key if key in keys else None
        try:
            wanted = reference_identity(key)
        except ValueError:
            return None
        for keyid, held in keys.items():
            if public_identity(held) == wanted:
                return keyid
        return None

    def entries(self, role: str, key: KeyRef) -> tuple[OnlineKey, ...]:
        """The entries of *key* in online *role* (empty if the root does not list it there)."""
        keyid = self.keyid_of(key)
        return tuple(o for o in self._root.content.online_keys(role) if o.keyid == keyid)

    def key_valid(self, role: str, key: KeyRef, at: dt.datetime) -> bool:
        """True if the root held lists *key* in online *role* with a window containing *at*
        (the signing time). False for a key not listed, listed in another role, before its
        window, or at or after its window's end (expiry or revocation). ValueError for a
        role that is not an online role or a naive time."""
        if role not in ONLINE_ROLES:
            raise ValueError(f"unknown online role {role!r}; roles are {', '.join(ONLINE_ROLES)}")
        return any(o.window.contains(at) for o in self.entries(role, key))

    def certificate_valid(self, key: KeyRef, certificate_sha256: str, at: dt.datetime) -> bool:
        """True if the root held lists *key* as a transport key for exactly this certificate
        (its SHA-256 over DER, hex) with a window containing *at*: the check a TLS peer's
        presented certificate passes when its root lists transport keys at all."""
        return any(
            o.certificate_sha256 == certificate_sha256 and o.window.contains(at)
            for o in self.entries(TRANSPORT, key)
        )

    def valid_keys(self, role: str, at: dt.datetime) -> tuple[OnlineKey, ...]:
        """Every key of online *role* whose window contains *at* (to verify with)."""
        return tuple(o for o in self._root.content.online_keys(role) if o.window.contains(at))

    def pseudonym_valid(self, version: int, at: dt.datetime) -> bool:
        """True if pseudonym key generation *version* was in force at *at*."""
        return any(
            g.version == version and g.window.contains(at) for g in self._root.content.pseudonym
        )

    def is_root_key(self, key: Key) -> bool:
        return self.keyid_of(key) in self._root.content.holder_keyids
