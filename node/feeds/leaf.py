"""Log leaves that commit to everything and reveal nothing (pure).

A leaf is a serialized ``LeafEntry`` holding only what verification and ordering need: origin,
entry id, event, time, list code, and commitments. The entry's public fields (its *body*, a
``ListEntry`` with every personal field empty) are committed as one value, each personal field
as one value of its own: ``SHA-256(salt || uint32be(len(name)) || name || value)`` with a fresh
128-bit salt. Salts and values travel beside the leaf as openings: the body only while the
entry is active, a personal field only to peers whose agreement grants it. So a holder verifies
the whole log whatever openings it received, and once an entry is removed its holders can
delete every opening and keep nothing readable of it.

    >>> from node.api import feeds
    >>> entry = feeds.ListEntry(subject_name="示例有限公司", uscc="91350100M000100Y43",
    ...                         person_id="11010519491231002X", list_code="GP-BAN")
    >>> leaf_bytes, openings = build_leaf("creditnode://f/n", "e1", feeds.EVENT_TYPE_ADD,
    ...                                   entry, recorded_at_unix=0)
    >>> b"11010519491231002X" in leaf_bytes, "示例".encode() in leaf_bytes
    (False, False)
    >>> opened = open_leaf(leaf_bytes, openings.fields, openings.body)
    >>> opened.entry.uscc, opened.entry.person_id
    ('91350100M000100Y43', '11010519491231002X')
    >>> open_leaf(leaf_bytes, []).entry.uscc  # no body: verifies, reveals nothing
    ''
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from node.api import feeds, options
from node.feeds.classes import body_problem

SALT_BYTES = 16
DIGEST_BYTES = 32
BODY = "entry"  # the name the body commitment is made under


class LeafError(ValueError):
    """A leaf or an opening that must not be accepted."""


def _classification(field_name: str) -> int:
    fd = feeds.ListEntry.DESCRIPTOR.fields_by_name[field_name]
    return int(fd.GetOptions().Extensions[options.sensitivity])


# Anything not classified public (including unclassified) is committed field by field, so an
# agreement can open one without the others; everything public is committed as the body.
COMMITTED_FIELDS: frozenset[str] = frozenset(
    f.name
    for f in feeds.ListEntry.DESCRIPTOR.fields
    if _classification(f.name) != options.SENSITIVITY_PUBLIC
)

_COMMITTED_ORDER = tuple(sorted(COMMITTED_FIELDS))
_EVENTS = frozenset({feeds.EVENT_TYPE_ADD, feeds.EVENT_TYPE_UPDATE, feeds.EVENT_TYPE_REMOVE})


def without_committed(entry: feeds.ListEntry) -> feeds.ListEntry:
    """A copy of *entry* with every committed (non-public) field cleared."""
    public = feeds.ListEntry()
    public.CopyFrom(entry)
    for name in COMMITTED_FIELDS:
        public.ClearField(name)  # type: ignore[arg-type]  # names come from the descriptor
    return public


def body_bytes(entry: feeds.ListEntry) -> bytes:
    """The body of *entry*: its public fields, status left out (the log says that)."""
    public = without_committed(entry)
    public.ClearField("status")
    return public.SerializeToString(deterministic=True)


def commitment(salt: bytes, field: str, value: str | bytes) -> bytes:
    name = field.encode()
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(salt + struct.pack(">I", len(name)) + name + data).digest()


@dataclass(frozen=True)
class Openings:
    """What opens one leaf: its body (None for a removal) and its personal fields."""

    body: feeds.EntryBody | None
    fields: list[feeds.FieldDisclosure] = field(default_factory=list)


def build_leaf(
    origin: str,
    entry_id: str,
    event: int,
    entry: feeds.ListEntry,
    *,
    recorded_at_unix: int,
    removal_reason: int = feeds.REMOVAL_REASON_UNSPECIFIED,
    removal_date: str = "",
    removal_doc_no: str = "",
    salt: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, Openings]:
    """The leaf bytes for an event and its openings. A removal commits to nothing: it carries
    the entry id, list code, reason, date and document number, and no data of the entry."""
    leaf = feeds.LeafEntry(
        origin=origin,
        entry_id=entry_id,
        event=event,  # type: ignore[arg-type]
        removal_reason=removal_reason,  # type: ignore[arg-type]
        list_code=entry.list_code,
        removal_date=removal_date,
        removal_doc_no=removal_doc_no,
    )
    leaf.recorded_at.FromSeconds(recorded_at_unix)
    if event == feeds.EVENT_TYPE_REMOVE:
        return leaf.SerializeToString(deterministic=True), Openings(body=None)
    body = feeds.EntryBody(salt=salt(SALT_BYTES), entry=body_bytes(entry))
    leaf.body_commitment = commitment(body.salt, BODY, body.entry)
    openings: list[feeds.FieldDisclosure] = []
    for name in _COMMITTED_ORDER:
        value = getattr(entry, name)
        if not value:
            continue
        s = salt(SALT_BYTES)
        openings.append(feeds.FieldDisclosure(field=name, salt=s, value=value))
        leaf.commitments.append(
            feeds.FieldCommitment(field=name, digest=commitment(s, name, value))
        )
    return leaf.SerializeToString(deterministic=True), Openings(body=body, fields=openings)


class OpenedLeaf(NamedTuple):
    """A verified leaf: the parsed message, and the entry as far as it was opened (an empty
    entry with only its list code when no body came with it). A tuple: one is made per
    received leaf, and a frozen dataclass costs several times more to build."""

    leaf: feeds.LeafEntry
    entry: feeds.ListEntry
    disclosed: frozenset[str]
    body: feeds.EntryBody | None = None


def _strict(message: feeds.LeafEntry | feeds.ListEntry, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise LeafError(f"{what} is not a {message.DESCRIPTOR.name} ({exc})") from None
    # Unknown fields anywhere, or any encoding but the canonical one, change the size once
    # unknown fields are dropped: refuse both (fail closed, one encoding per value).
    message.DiscardUnknownFields()
    if message.ByteSize() != len(data):
        raise LeafError(
            f"{what} carries fields this node does not know, or is not canonically encoded"
        )
    # A string holding U+0000 holds a 0x00 byte in the wire bytes it was parsed from (strings
    # travel as their UTF-8, verbatim): without one, no field needs walking.
    if b"\x00" in data and _holds_nul(message):
        # No text of the alliance holds one, and PostgreSQL's text cannot store it: a leaf
        # that does would stop every PostgreSQL mirror, so it is refused on every engine.
        raise LeafError(f"{what} holds a NUL character in a text field")


def _holds_nul(message: Message) -> bool:
    for fd, value in message.ListFields():
        values = value if fd.is_repeated else [value]
        for v in values:
            if fd.type == FieldDescriptor.TYPE_STRING and "\x00" in v:
                return True
            if fd.type == FieldDescriptor.TYPE_MESSAGE and _holds_nul(v):
                return True
    return False


def parse_leaf(data: bytes) -> feeds.LeafEntry:
    """Parse leaf bytes strictly: unknown fields or a malformed event are refused."""
    leaf = feeds.LeafEntry()
    _strict(leaf, data, "leaf")
    event = leaf.event
    if event not in _EVENTS:
        raise LeafError("leaf has no valid event type")
    removal = event == feeds.EVENT_TYPE_REMOVE
    if removal != (leaf.removal_reason != 0):
        raise LeafError("a removal, and only a removal, must say why")
    if not removal and (leaf.removal_date or leaf.removal_doc_no):
        raise LeafError("only a removal has a removal date or document")
    if not leaf.entry_id:
        raise LeafError("leaf has no entry id")
    if removal:
        if leaf.body_commitment or len(leaf.commitments):
            raise LeafError("a removal commits to no data of the entry")
        return leaf
    if len(leaf.body_commitment) != DIGEST_BYTES:
        raise LeafError(f"leaf has no {DIGEST_BYTES}-byte body commitment")
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


def _open_body(leaf: feeds.LeafEntry, body: feeds.EntryBody) -> feeds.ListEntry:
    if not leaf.body_commitment:
        raise LeafError("a body came with a leaf that commits to none")
    if len(body.salt) != SALT_BYTES or not hmac.compare_digest(
        commitment(body.salt, BODY, body.entry), leaf.body_commitment
    ):
        raise LeafError("the body does not match its commitment")
    entry = feeds.ListEntry()
    _strict(entry, bytes(body.entry), "body")
    clear = [n for n in _COMMITTED_ORDER if getattr(entry, n)]
    if clear:
        raise LeafError(f"body carries personal fields in clear: {', '.join(clear)}")
    if entry.status:
        raise LeafError("body says a status; only the log says that")
    if entry.list_code != leaf.list_code:
        raise LeafError("body and leaf name different lists")
    problem = body_problem(entry)
    if problem:
        raise LeafError(problem)
    return entry


def open_leaf(
    data: bytes,
    openings: Sequence[feeds.FieldDisclosure],
    body: feeds.EntryBody | None = None,
) -> OpenedLeaf:
    """Parse a leaf and verify its body and each opening against their commitments."""
    leaf = parse_leaf(data)
    if body is not None:
        entry = _open_body(leaf, body)
    else:
        entry = feeds.ListEntry(list_code=leaf.list_code)
    if not openings:  # the common case for a peer: nothing personal disclosed
        return OpenedLeaf(leaf=leaf, entry=entry, disclosed=frozenset(), body=body)
    digests = {c.field: c.digest for c in leaf.commitments}
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
    return OpenedLeaf(leaf=leaf, entry=entry, disclosed=frozenset(seen), body=body)
