"""One audit entry and its canonical bytes, the leaf of the node's audit log (pure, no I/O).

An entry says who exchanged what with whom, and why, without holding anything personal: the
officer is a keyed pseudonymous id (:func:`officer_id`), the subject a keyed commitment
(:func:`subject_commitment`), the response a SHA-256 of its exact bytes. Free text (the matter
or case number, a refusal's reason) is bounded, and refused if it reads as a person's ID.

The leaf is canonical JSON (sorted keys, no spaces, UTF-8): :func:`parse_entry` accepts exactly
the bytes :meth:`AuditEntry.to_bytes` makes and nothing else: an unknown, missing or duplicate
key, a wrong type, an out-of-range value or a non-canonical spelling is refused.

>>> e = AuditEntry(exchange=uuid7(at_ms=1_700_000_000_000, rand=bytes(10)), at_us=0,
...                direction="in", kind="query", outcome="no_hit", peer="lanzhou")
>>> parse_entry(e.to_bytes()) == e
True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from node.identity.validate import PERSONAL_KINDS, check_uscc, classify

__all__ = [
    "DIRECTIONS",
    "KINDS",
    "MAX_ENTRY_BYTES",
    "OUTCOMES",
    "AuditEntry",
    "EntryError",
    "check_department",
    "check_matter",
    "check_uscc_or_commitment",
    "check_uuid7",
    "now_us",
    "officer_id",
    "parse_entry",
    "response_digest",
    "subject_commitment",
    "uuid7",
    "uuid7_time",
]

VERSION: Final = 1
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_ENTRY_BYTES: Final = 16 * 1024

DIRECTIONS: Final = ("in", "out", "local")
"""``in``: a peer asked, this node answered; ``out``: this node asked; ``local``: an operator's
command on this node (enrollment, removal, key operations)."""

KINDS: Final = (
    "query",
    "oprf_evaluation",
    "feed_range",
    "disclosure",
    "checkpoint",
    "receipts",
    "enrollment",
    "removal",
    "key_operation",
    "refusal",
    "report",
    "objection",
    "other",
)
OUTCOMES: Final = ("hit", "no_hit", "sent", "received", "refused", "error", "ok")

MAX_INT: Final = 2**63 - 1
_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_MATTER: Final = 200
MAX_REASON: Final = 300
MAX_LIST: Final = 32

_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_PEER = re.compile(r"|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HEX32 = re.compile(r"|[0-9a-f]{32}")
_HEX64 = re.compile(r"|[0-9a-f]{64}")
_PURPOSE = re.compile(r"[a-z0-9_]{0,40}")
_METHOD = re.compile(r"[A-Za-z0-9_./ -]{0,200}")
_FIELD = re.compile(r"[a-z_]{1,40}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DIGIT_RUN = re.compile(r"[0-9](?:[\s\-./]*[0-9]){13,}")  # 14+ digits, however spaced
_TOKEN = re.compile(r"[0-9A-Za-z]{8,}")


class EntryError(ValueError):
    """An audit entry (or a value for one) is malformed; the message never repeats a value."""


# ------------------------------------------------------------------------------ UUIDv7


def uuid7(*, at_ms: int | None = None, rand: bytes | None = None) -> str:
    """A new RFC 9562 UUIDv7: 48 bits of Unix milliseconds, then 74 random bits."""
    ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000) if at_ms is None else at_ms
    if not 0 <= ms < 2**48:
        raise EntryError("UUIDv7 time out of range")
    r = os.urandom(10) if rand is None else rand
    if len(r) != 10:
        raise EntryError("UUIDv7 needs 10 random bytes")
    rand_a = int.from_bytes(r[:2]) & 0x0FFF
    rand_b = int.from_bytes(r[2:]) & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_uuid7(text: str) -> str:
    """*text* if it is a canonical (lower-case, hyphenated) UUIDv7 with the RFC variant."""
    if not isinstance(text, str) or not _UUID7.fullmatch(text):
        raise EntryError("exchange id is not a canonical UUIDv7")
    return text


def uuid7_time(text: str) -> dt.datetime:
    """The moment a UUIDv7 was made (millisecond precision, UTC)."""
    ms = int(check_uuid7(text).replace("-", "")[:12], 16)
    if ms > _MAX_MS:
        raise EntryError("UUIDv7 time is after the year 9999")
    return EPOCH + dt.timedelta(milliseconds=ms)


# --------------------------------------------------------------- keyed ids, commitments


def officer_id(secret: bytes, name: str) -> str:
    """The officer's pseudonymous id at this node: 128 bits of HMAC-SHA256 under the node's
    audit secret, over the NFKC-normalised, case-folded name; the name is never stored."""
    norm = unicodedata.normalize("NFKC", name).strip().casefold()
    if not norm or len(norm) > 200 or _CONTROL.search(norm):
        raise EntryError("--officer must be 1 to 200 printable characters")
    return hmac.new(secret, b"creditnode-audit-officer\x00" + norm.encode(), "sha256").hexdigest()[
        :32
    ]


def subject_commitment(secret: bytes, kind: str, value: str) -> str:
    """A keyed commitment to a subject (a USCC, a resident ID, a pseudonym): HMAC-SHA256 under
    the node's audit secret. Without the secret it reveals nothing and cannot be brute-forced
    over the small space of resident IDs; with it the node can find a subject's entries."""
    if kind not in ("uscc", "person", "pseudonym") or not value:
        raise EntryError("a subject is a uscc, a person or a pseudonym, and is not empty")
    msg = f"creditnode-audit-subject\x00{kind}\x00{value}".encode()
    return hmac.new(secret, msg, "sha256").hexdigest()


def check_uscc_or_commitment(secret: bytes, text: str) -> str:
    """A subject to filter on: a commitment as recorded (64 hex), or a USCC, committed."""
    if _HEX64.fullmatch(text) and text:
        return text
    check = check_uscc(text)
    if check.status == "invalid" or check.kind != "uscc":
        raise EntryError("give a USCC or a subject commitment (64 hex) as shown")
    return subject_commitment(secret, "uscc", check.normalised)


def response_digest(data: bytes) -> str:
    """SHA-256 (hex) of a response's exact bytes."""
    return hashlib.sha256(data).hexdigest()


def _check_text(value: str, limit: int, what: str) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise EntryError(f"{what} must be text of at most {limit} characters")
    if _CONTROL.search(value):
        raise EntryError(f"{what} contains a control character")
    flat = unicodedata.normalize("NFKC", value)
    if _DIGIT_RUN.search(flat):
        raise EntryError(f"{what} holds a long number (a person's ID?): not recorded")
    for token in _TOKEN.findall(flat):
        if classify(token).kind in PERSONAL_KINDS:
            raise EntryError(f"{what} reads as holding a person's ID: not recorded")
    return value


def check_matter(value: str) -> str:
    """The matter or case number as given, if it is bounded text with no person's ID in it."""
    return _check_text(value, MAX_MATTER, "matter")


def check_department(value: str) -> str:
    """ "" or a valid USCC (the requesting department's)."""
    if value and (
        check_uscc(value, strict=True).status == "invalid" or classify(value).kind in PERSONAL_KINDS
    ):
        raise EntryError("department is not a valid USCC")
    return value


# ------------------------------------------------------------------------------- entry


@dataclass(frozen=True)
class AuditEntry:
    """One exchange (or one message of a stream: *seq*) as this node recorded it."""

    exchange: str
    at_us: int  # Unix microseconds, UTC
    direction: str
    kind: str
    outcome: str
    seq: int = 0  # the message's number in a stream (0 for a unary call)
    peer: str = ""
    method: str = ""
    officer: str = ""
    department: str = ""
    purpose: str = ""
    matter: str = ""
    subject: str = ""
    response: str = ""  # SHA-256 hex of the exact response bytes
    reason: str = ""
    agreements: tuple[str, ...] = ()
    forms: tuple[tuple[str, str], ...] = ()
    values: int = 0  # personal values released
    withheld: int = 0
    leaves: tuple[int, int] | None = None  # first and last leaf index (a feed range)
    remote: int | None = None  # the other side's audit index (its receipt)

    def __post_init__(self) -> None:
        check_uuid7(self.exchange)
        for name in ("at_us", "seq", "values", "withheld"):
            _check_int(getattr(self, name), name)
        _choice(self.direction, DIRECTIONS, "direction")
        _choice(self.kind, KINDS, "kind")
        _choice(self.outcome, OUTCOMES, "outcome")
        _match(_PEER, self.peer, "peer")
        _match(_METHOD, self.method, "method")
        for name in ("peer", "method", "purpose"):
            _check_text(getattr(self, name), 200, name)  # no ID, even shaped like a name
        _match(_HEX32, self.officer, "officer")
        check_department(self.department)
        _match(_PURPOSE, self.purpose, "purpose")
        check_matter(self.matter)
        _match(_HEX64, self.subject, "subject")
        _match(_HEX64, self.response, "response")
        _check_text(self.reason, MAX_REASON, "reason")
        if not isinstance(self.agreements, tuple) or len(self.agreements) > MAX_LIST:
            raise EntryError(f"agreements must be at most {MAX_LIST}")
        for a in self.agreements:
            _check_text(a, 100, "agreement")
        if not isinstance(self.forms, tuple) or len(self.forms) > MAX_LIST:
            raise EntryError(f"forms must be at most {MAX_LIST}")
        for pair in self.forms:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise EntryError("a form is a (field, form) pair")
            _match(_FIELD, pair[0], "form field")
            _check_text(pair[1], 60, "form")
        if self.leaves is not None:
            if not isinstance(self.leaves, tuple) or len(self.leaves) != 2:
                raise EntryError("leaves is a (first, last) pair")
            _check_int(self.leaves[0], "first leaf")
            _check_int(self.leaves[1], "last leaf")
            if self.leaves[0] > self.leaves[1]:
                raise EntryError("first leaf after last leaf")
        if self.remote is not None:
            _check_int(self.remote, "remote")

    @property
    def at(self) -> dt.datetime:
        return EPOCH + dt.timedelta(microseconds=self.at_us)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON values (the leaf's content, and ``--format json``)."""
        # The fields' own values (text, numbers, tuples of text): asdict's deep copy of each
        # costs more than the rest of an entry's encoding.
        d = {name: getattr(self, name) for name in _NAMES}
        d["agreements"] = list(self.agreements)
        d["forms"] = [list(p) for p in self.forms]
        d["leaves"] = None if self.leaves is None else list(self.leaves)
        d["v"] = VERSION
        return d

    def to_bytes(self) -> bytes:
        """The canonical leaf bytes."""
        return _canonical(self.to_json())

    def replace(self, **changes: Any) -> AuditEntry:
        return dataclasses.replace(self, **changes)

    def with_response(self, digest: str) -> AuditEntry:
        """A copy recording *digest* as the response; only the digest is checked again (the
        rest was when this entry was made): one is made per answer sent."""
        _match(_HEX64, digest, "response")
        out: AuditEntry = _new_object(AuditEntry)
        out.__dict__.update(self.__dict__, response=digest)
        return out


_NAMES: Final = tuple(f.name for f in dataclasses.fields(AuditEntry))
_FIELDS: Final = frozenset(_NAMES) | {"v"}
_new_object = object.__new__


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_int(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise EntryError(f"{what} must be a whole number from 0 to 2^63-1")


def _choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise EntryError(f"{what} must be one of {', '.join(allowed)}")


def _match(pattern: re.Pattern[str], value: object, what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise EntryError(f"{what} is malformed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise EntryError("entry repeats a key")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise EntryError("entry holds a non-finite number")


def parse_entry(data: bytes) -> AuditEntry:
    """The entry in *data*, which must be exactly its canonical bytes."""
    if not isinstance(data, bytes) or len(data) > MAX_ENTRY_BYTES:
        raise EntryError(f"an entry is at most {MAX_ENTRY_BYTES} bytes")
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise EntryError("entry is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise EntryError("entry is not a JSON object")
    if set(obj) != _FIELDS:
        unknown, missing = set(obj) - _FIELDS, _FIELDS - set(obj)
        raise EntryError(
            f"entry has unknown fields {sorted(unknown)[:5]}" if unknown
            else f"entry lacks fields {sorted(missing)[:5]}"
        )  # fmt: skip
    if obj.pop("v") != VERSION:
        raise EntryError(f"entry version is not {VERSION}")
    agreements, forms, leaves = obj["agreements"], obj["forms"], obj["leaves"]
    if not isinstance(agreements, list) or not isinstance(forms, list):
        raise EntryError("agreements and forms are lists")
    if not all(isinstance(p, list) for p in forms):
        raise EntryError("a form is a (field, form) pair")
    if leaves is not None and not isinstance(leaves, list):
        raise EntryError("leaves is a (first, last) pair")
    obj["agreements"] = tuple(agreements)
    obj["forms"] = tuple(tuple(p) for p in forms)
    obj["leaves"] = None if leaves is None else tuple(leaves)
    entry = AuditEntry(**obj)
    if entry.to_bytes() != data:
        raise EntryError("entry is not in canonical form")
    return entry


def _reject_float(text: str) -> float:
    raise EntryError("entry holds a fraction")


Clock = Callable[[], dt.datetime]


def now_us(clock: Clock | None = None) -> int:
    """Unix microseconds now (UTC)."""
    at = (clock or (lambda: dt.datetime.now(dt.UTC)))()
    return (at - EPOCH) // dt.timedelta(microseconds=1)
