"""Log leaves with field-level commitments (pure).

A leaf is a serialized ``LeafEntry``. Fields the schema classifies as anything but public are
never in it: the leaf carries ``SHA-256(salt || uint32be(len(name)) || name || value)`` for each,
and the salt and value travel separately, only to peers entitled to them. A subscriber verifies
the leaf bytes against the log whatever subset of openings it received.

    >>> from node.api import feeds
    >>> entry = feeds.ListEntry(subject_type=feeds.SUBJECT_TYPE_NATURAL_PERSON,
    ...                         person_id="11010519491231002X", list_name="失信被执行人")
    >>> leaf_bytes, openings = build_leaf("creditnode://f/n", "e1", feeds.EVENT_TYPE_ADD,
    ...                                   entry, recorded_at_unix=0)
    >>> b"11010519491231002X" in leaf_bytes
    False
    >>> open_leaf(leaf_bytes, openings).entry.person_id
    '11010519491231002X'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from node.api import feeds, options

SALT_BYTES = 16
DIGEST_BYTES = 32


class LeafError(ValueError):
    """A leaf or an opening that must not be accepted."""


def _classification(field_name: str) -> int:
    fd = feeds.ListEntry.DESCRIPTOR.fields_by_name[field_name]
    return int(fd.GetOptions().Extensions[options.sensitivity])


# Anything not classified public (including unclassified) is committed, never sent in clear.
COMMITTED_FIELDS: frozenset[str] = frozenset(
    f.name
    for f in feeds.ListEntry.DESCRIPTOR.fields
    if _classification(f.name) != options.SENSITIVITY_PUBLIC
)


def without_committed(entry: feeds.ListEntry) -> feeds.ListEntry:
    """A copy of *entry* with every committed (non-public) field cleared."""
    public = feeds.ListEntry()
    public.CopyFrom(entry)
    for name in COMMITTED_FIELDS:
        public.ClearField(name)  # type: ignore[arg-type]  # names come from the descriptor
    return public


_COMMITTED_ORDER = tuple(sorted(COMMITTED_FIELDS))
_EVENTS = frozenset({feeds.EVENT_TYPE_ADD, feeds.EVENT_TYPE_UPDATE, feeds.EVENT_TYPE_REMOVE})


def commitment(salt: bytes, field: str, value: str) -> bytes:
    name = field.encode()
    return hashlib.sha256(salt + struct.pack(">I", len(name)) + name + value.encode()).digest()


def build_leaf(
    origin: str,
    entry_id: str,
    event: int,
    entry: feeds.ListEntry,
    *,
    recorded_at_unix: int,
    removal_reason: int = feeds.REMOVAL_REASON_UNSPECIFIED,
    salt: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, list[feeds.FieldDisclosure]]:
    """The leaf bytes for an event and the openings of its committed fields."""
    public = without_committed(entry)
    openings: list[feeds.FieldDisclosure] = []
    commitments: list[feeds.FieldCommitment] = []
    for name in sorted(COMMITTED_FIELDS):
        value = getattr(entry, name)
        if not value:
            continue
        s = salt(SALT_BYTES)
        openings.append(feeds.FieldDisclosure(field=name, salt=s, value=value))
        commitments.append(feeds.FieldCommitment(field=name, digest=commitment(s, name, value)))
    leaf = feeds.LeafEntry(
        origin=origin,
        entry_id=entry_id,
        event=event,  # type: ignore[arg-type]
        removal_reason=removal_reason,  # type: ignore[arg-type]
        entry=public,
        commitments=commitments,
    )
    leaf.recorded_at.FromSeconds(recorded_at_unix)
    return leaf.SerializeToString(deterministic=True), openings


@dataclass(frozen=True)
class OpenedLeaf:
    """A verified leaf: the parsed message and the entry with every verified opening filled in."""

    leaf: feeds.LeafEntry
    entry: feeds.ListEntry
    disclosed: frozenset[str]


def parse_leaf(data: bytes) -> feeds.LeafEntry:
    """Parse leaf bytes strictly: unknown fields or clear personal values are refused."""
    leaf = feeds.LeafEntry()
    try:
        leaf.ParseFromString(data)
    except DecodeError as exc:
        raise LeafError(f"leaf is not a LeafEntry ({exc})") from None
    # Unknown fields anywhere, or any encoding but the canonical one, change the size once
    # unknown fields are dropped: refuse both (fail closed, one encoding per leaf).
    leaf.DiscardUnknownFields()
    if leaf.ByteSize() != len(data):
        raise LeafError(
            "leaf carries fields this node does not know, or is not canonically encoded"
        )
    event = leaf.event
    if event not in _EVENTS:
        raise LeafError("leaf has no valid event type")
    if (event == feeds.EVENT_TYPE_REMOVE) != (leaf.removal_reason != 0):
        raise LeafError("a removal, and only a removal, must say why")
    if not leaf.entry_id:
        raise LeafError("leaf has no entry id")
    entry = leaf.entry
    clear = [n for n in _COMMITTED_ORDER if getattr(entry, n)]
    if clear:
        raise LeafError(f"leaf carries personal fields in clear: {', '.join(clear)}")
    previous = ""
    for c in leaf.commitments:
        name = c.field
        if name not in COMMITTED_FIELDS:
            raise LeafError(f"commitment to field {name!r}, which is not a committed field")
        if name <= previous:
            raise LeafError("commitments are not sorted and unique")
        if len(c.digest) != DIGEST_BYTES:
            raise LeafError(f"commitment to {name} is not {DIGEST_BYTES} bytes")
        previous = name
    return leaf


def open_leaf(data: bytes, openings: Sequence[feeds.FieldDisclosure]) -> OpenedLeaf:
    """Parse a leaf and verify each opening against its commitment."""
    leaf = parse_leaf(data)
    if not openings:  # the common case for a peer: nothing disclosed, nothing to check
        return OpenedLeaf(leaf=leaf, entry=leaf.entry, disclosed=frozenset())
    digests = {c.field: c.digest for c in leaf.commitments}
    entry = feeds.ListEntry()
    entry.CopyFrom(leaf.entry)
    seen: set[str] = set()
    for d in openings:
        expected = digests.get(d.field)
        if expected is None or d.field in seen:
            raise LeafError(f"opening for {d.field!r} matches no commitment in the leaf")
        if len(d.salt) != SALT_BYTES or not hmac.compare_digest(
            commitment(d.salt, d.field, d.value), expected
        ):
            raise LeafError(f"opening for {d.field} does not match its commitment")
        setattr(entry, d.field, d.value)
        seen.add(d.field)
    return OpenedLeaf(leaf=leaf, entry=entry, disclosed=frozenset(seen))
