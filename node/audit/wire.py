"""What a requester tells the responder about an exchange, in gRPC request metadata (pure).

The requester makes the exchange id (UUIDv7) and sends it with the officer's pseudonymous id
(keyed at the requesting node: the name never leaves it), the department's USCC and the
matter. The responder records what is well-formed and says in the entry's reason what it
could not take; a peer's bad metadata never fails a call, and never reaches the log as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.audit.entry import EntryError, check_department, check_matter, check_uuid7, uuid7

EXCHANGE = "x-creditnode-exchange"
OFFICER = "x-creditnode-officer"
DEPARTMENT = "x-creditnode-department"
MATTER = "x-creditnode-matter-bin"  # -bin: UTF-8 bytes (a case number may be Chinese)

_OFFICER = re.compile(r"[0-9a-f]{32}")
MAX_VALUE = 1024

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True)
class Asker:
    """Who asked, as the requester declared it (each value checked; "" if absent or bad)."""

    exchange: str
    officer: str = ""
    department: str = ""
    matter: str = ""
    problems: tuple[str, ...] = ()  # what was not taken, for the entry's reason

    def metadata(self) -> Metadata:
        """The request metadata that carries this to the responder."""
        out: list[tuple[str, str | bytes]] = [(EXCHANGE, self.exchange)]
        if self.officer:
            out.append((OFFICER, self.officer))
        if self.department:
            out.append((DEPARTMENT, self.department))
        if self.matter:
            out.append((MATTER, self.matter.encode("utf-8")))
        return tuple(out)


def new_asker(officer: str = "", department: str = "", matter: str = "") -> Asker:
    """A fresh exchange for this node's own request (values already checked by the caller)."""
    return Asker(uuid7(), officer, check_department(department), check_matter(matter))


def read_asker(metadata: Iterable[Any] | None) -> Asker:
    """The requester's declaration in *metadata*; a missing or bad exchange id is replaced by
    a fresh one of this node's (noted in ``problems``)."""
    found: dict[str, str | bytes] = {}
    for key, value in metadata or ():
        if key in (EXCHANGE, OFFICER, DEPARTMENT, MATTER) and key not in found:
            found[key] = value
    problems: list[str] = []

    def text(key: str) -> str:
        value = found.get(key)
        if value is None:
            return ""
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{key} not UTF-8")
                return ""
        if len(value) > MAX_VALUE:
            problems.append(f"{key} too long")
            return ""
        return value

    exchange = text(EXCHANGE)
    try:
        exchange = check_uuid7(exchange)
    except EntryError:
        problems.append("no valid exchange id from the peer: a fresh one is used")
        exchange = uuid7()
    officer = text(OFFICER)
    if officer and not _OFFICER.fullmatch(officer):
        problems.append("officer id malformed")
        officer = ""
    department = text(DEPARTMENT)
    try:
        check_department(department)
    except EntryError:
        problems.append("department is not a valid USCC")
        department = ""
    matter = text(MATTER)
    try:
        check_matter(matter)
    except EntryError:
        problems.append("matter refused (too long, control characters or a person's ID)")
        matter = ""
    return Asker(exchange, officer, department, matter, tuple(problems))
