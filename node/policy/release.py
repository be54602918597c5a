"""Releasing one response message to one peer under one decision (pure): the border's rule.

:func:`release` walks a message by its schema and leaves in it only what the decision lets the
peer have. It mutates the message (the border owns every response) and returns what it let out,
for the disclosure record. The rule, by the classification each field carries in the schema:

* public and internal fields pass (internal means "for the federation", and only enrolled
  peers ever reach the border);
* a ``ListEntry`` has its personal fields rendered in the form the decision gives
  (:func:`node.policy.decide.apply`), the rest cleared; a parent ``LookupAnswer`` is told the
  forms, a ``LookupResponse`` the deciding agreements;
* a ``FieldDisclosure`` (the opening of a feed commitment) stays only if the decision opens
  that committed field in clear; the masked ID and the pseudonym are committed fields of their
  own, so their openings are what "masked" and "pseudonym" mean on a feed;
* a ``GetReportResponse`` (a signed report, which cannot be rewritten) leaves only if every
  personal value in its payload is of a field the decision opens, and says their forms;
* any other personal or trade-secret value is cleared;
* a field without a classification, or a field the schema does not know, raises
  :class:`Unreleasable`: the caller sends nothing.

A decision of ``None`` withholds every personal value (the fail-closed case).

>>> from node.api import feeds
>>> from node.policy.agreement import parse_agreement
>>> from node.policy.decide import decide
>>> a = parse_agreement('''
... id = "jinan-lanzhou"
... version = 3
... peers = ["lanzhou"]
... purposes = ["procurement"]
... [[rule]]
... data_class = "list_entry"
... purposes = ["procurement"]
... fields = { person_name = "mask:name_surname" }
... ''', source="lanzhou.toml")
>>> answer = query.LookupAnswer(entry=feeds.ListEntry(person_name="张三",
...     person_id="11010519491231002X", list_name="失信被执行人"))
>>> decision = decide([a], "lanzhou", "procurement", "list_entry", threshold=3_500)
>>> out = release(answer, decision, pseudonym_key=None)
>>> answer.entry.person_name, answer.entry.person_id, answer.entry.list_name
('张*', '', '失信被执行人')
>>> [(f.field, f.form) for f in answer.forms], out.values, out.withheld
([('person_name', 'mask:name_surname')], 1, 1)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from node.api import feeds, options, query, reports
from node.feeds.leaf import COMMITTED_FIELDS
from node.identity.pseudonym_key import PseudonymKey
from node.policy.agreement import form_problem
from node.policy.decide import Decision, apply
from node.reports.payload import personal_values

__all__ = [
    "FOREIGN_PUBLIC",
    "Release",
    "Unreleasable",
    "granted_openings",
    "release",
    "sensitivity_of",
]

FOREIGN_PUBLIC: tuple[str, ...] = (
    "grpc.health.v1.",
    "grpc.reflection.v1alpha.",
    "google.protobuf.",
)
"""Packages we serve but did not write, classified here: health states and our own schema's
descriptors are public. Well-known types are classified by the field that holds them."""

_PUBLIC = options.SENSITIVITY_PUBLIC
_INTERNAL = options.SENSITIVITY_INTERNAL
_UNSPECIFIED = options.SENSITIVITY_UNSPECIFIED
_PASS = frozenset({_PUBLIC, _INTERNAL})

_LIST_ENTRY = feeds.ListEntry.DESCRIPTOR.full_name
_DISCLOSURE = feeds.FieldDisclosure.DESCRIPTOR.full_name
_ANSWER = query.LookupAnswer.DESCRIPTOR.full_name
_RESPONSE = query.LookupResponse.DESCRIPTOR.full_name
_BATCH = feeds.LeafBatch.DESCRIPTOR.full_name
_DISCLOSED_LEAF = feeds.DisclosedLeaf.DESCRIPTOR.full_name
_FEED_LEAF = feeds.FeedLeaf.DESCRIPTOR.full_name
_FEED_LEAF_OPENINGS = feeds.FeedLeaf.DESCRIPTOR.fields_by_name["disclosures"]
_REPORT = reports.GetReportResponse.DESCRIPTOR.full_name


class Unreleasable(Exception):
    """A message the border cannot judge (unclassified or unknown field): send nothing."""


@dataclass
class Release:
    """What one message let out: the form of each personal field sent, how many personal
    values left and how many were withheld, and the leaves they belong to."""

    forms: dict[str, str] = field(default_factory=dict)
    values: int = 0
    withheld: int = 0
    leaves: set[int] = field(default_factory=set)


def _is_foreign(d: Descriptor) -> bool:
    return d.full_name.startswith(FOREIGN_PUBLIC)


@cache
def sensitivity_of(fd: FieldDescriptor) -> int:
    """The schema's classification of *fd* (foreign packages: public)."""
    if fd.containing_type is not None and _is_foreign(fd.containing_type):
        return _PUBLIC
    return int(fd.GetOptions().Extensions[options.sensitivity])


@cache
def _plain(d: Descriptor) -> bool:
    """True if no field of *d*, at any depth, needs more than a pass (nothing to walk)."""
    seen: set[str] = set()
    todo = [d]
    while todo:
        m = todo.pop()
        if m.full_name in seen:
            continue
        seen.add(m.full_name)
        if m.full_name in (_LIST_ENTRY, _DISCLOSURE, _ANSWER, _RESPONSE, _REPORT):
            return False
        for fd in m.fields:
            if sensitivity_of(fd) not in _PASS:
                return False
            if fd.message_type is not None and not _is_foreign(fd.message_type):
                todo.append(fd.message_type)
    return True


def granted_openings(decision: Decision | None) -> frozenset[str]:
    """The committed fields whose openings *decision* lets out: those it sets to ``clear``."""
    if decision is None or decision.refused or decision.data_class != "list_entry":
        return frozenset()
    return frozenset(
        name
        for name in COMMITTED_FIELDS
        if (form := decision.fields.get(name)) is not None
        and form.kind == "clear"
        and form_problem("list_entry", name, form) is None
    )


class _Walker:
    def __init__(self, decision: Decision | None, pseudonym_key: PseudonymKey | None) -> None:
        self.decision = decision
        self.pseudonym_key = pseudonym_key
        self.out = Release()
        self._granted: frozenset[str] | None = None

    @property
    def granted(self) -> frozenset[str]:
        """The committed fields whose openings may leave (computed once per message)."""
        if self._granted is None:
            self._granted = granted_openings(self.decision)
        return self._granted

    def message(self, m: Message, leaf: int | None) -> None:
        d = m.DESCRIPTOR
        if len(UnknownFieldSet(m)):
            raise Unreleasable(f"{d.full_name} carries fields the schema does not know")
        if d.full_name.startswith("google.protobuf."):
            return
        if d.full_name == _LIST_ENTRY:
            self.entry(m, leaf)
            return
        if d.full_name == _ANSWER:
            self.answer(m)
            return
        if d.full_name == _REPORT:
            self.report(m)
            return
        if d.full_name == _FEED_LEAF:
            # The hot path of every feed: the leaf bytes are public, only the openings are not.
            self.openings(m, _FEED_LEAF_OPENINGS, leaf)
            return
        for fd, value in m.ListFields():
            s = sensitivity_of(fd)
            if s == _UNSPECIFIED:
                raise Unreleasable(f"{fd.full_name} has no sensitivity classification")
            if fd.message_type is not None and fd.message_type.full_name == _DISCLOSURE:
                self.openings(m, fd, leaf)
                continue
            if s not in _PASS:
                m.ClearField(fd.name)
                self.out.withheld += len(value) if _repeated(fd) else 1
                continue
            if fd.message_type is None or _plain(fd.message_type):
                continue
            if not _repeated(fd):
                self.message(value, leaf)
                continue
            for i, item in enumerate(value):
                if d.full_name == _BATCH:
                    self.message(item, int(m.start) + i)  # type: ignore[attr-defined]
                elif fd.message_type.full_name == _DISCLOSED_LEAF:
                    self.message(item, int(item.index))
                else:
                    self.message(item, leaf)
        if d.full_name == _RESPONSE:
            # The answer says what decided its forms; nobody but the border writes this.
            refs = "" if self.decision is None else ", ".join(map(str, self.decision.agreements))
            reason = "no decision: every personal field withheld"
            m.agreements = refs  # type: ignore[attr-defined]
            m.decision = reason if self.decision is None else self.decision.reason  # type: ignore[attr-defined]

    def answer(self, m: Message) -> None:
        """A LookupAnswer: its entry rendered, and the forms it was rendered in, and nothing
        else personal."""
        forms: dict[str, str] = {}
        for fd, value in m.ListFields():
            s = sensitivity_of(fd)
            if s == _UNSPECIFIED:
                raise Unreleasable(f"{fd.full_name} has no sensitivity classification")
            if fd.name == "entry":
                forms = self.entry(value, int(m.leaf_index))  # type: ignore[attr-defined]
            elif s not in _PASS:
                m.ClearField(fd.name)
                self.out.withheld += 1
        del m.forms[:]  # type: ignore[attr-defined]
        m.forms.extend(  # type: ignore[attr-defined]
            query.FieldForm(field=n, form=f) for n, f in sorted(forms.items())
        )

    def report(self, m: Message) -> None:
        """A signed report: its bytes cannot be rewritten, so it leaves only if every personal
        value in its payload is of a field the decision opens; else nothing is sent."""
        for fd, _ in m.ListFields():
            if sensitivity_of(fd) not in _PASS:
                raise Unreleasable(f"{fd.full_name} is not public")
        counts = report_personal_values(bytes(m.envelope))  # type: ignore[attr-defined]
        decision = self.decision
        opened = {} if decision is None or decision.refused else decision.opened()
        denied = sorted(n for n in counts if n not in opened)
        if denied:
            raise Unreleasable(f"the report carries withheld fields: {', '.join(denied)}")
        forms = {n: str(opened[n]) for n in counts}
        self.out.forms.update(forms)
        self.out.values += sum(counts.values())
        del m.forms[:]  # type: ignore[attr-defined]
        m.forms.extend(  # type: ignore[attr-defined]
            query.FieldForm(field=n, form=f) for n, f in sorted(forms.items())
        )
        m.agreements = "" if decision is None else ", ".join(map(str, decision.agreements))  # type: ignore[attr-defined]
        m.decision = "no decision" if decision is None else decision.reason  # type: ignore[attr-defined]

    def openings(self, m: Message, fd: FieldDescriptor, leaf: int | None) -> None:
        held = getattr(m, fd.name)
        for o in held:
            if len(UnknownFieldSet(o)):
                raise Unreleasable(f"{_DISCLOSURE} carries fields the schema does not know")
        granted = self.granted
        kept = [o for o in held if o.field in granted]
        if len(kept) != len(held):
            self.out.withheld += len(held) - len(kept)
            copies = [
                feeds.FieldDisclosure(field=o.field, salt=o.salt, value=o.value) for o in kept
            ]
            m.ClearField(fd.name)
            getattr(m, fd.name).extend(copies)
        for o in kept:
            self.out.forms[o.field] = "clear"
        self.out.values += len(kept)
        if kept and leaf is not None:
            self.out.leaves.add(leaf)

    def entry(self, m: Message, leaf: int | None) -> dict[str, str]:
        """Render a ListEntry's personal fields; return the form of each one sent."""
        if len(UnknownFieldSet(m)):
            raise Unreleasable(f"{_LIST_ENTRY} carries fields the schema does not know")
        personal = [fd for fd, _ in m.ListFields() if sensitivity_of(fd) not in _PASS]
        if not personal:
            return {}
        values: dict[str, str] = {}
        decision = self.decision
        if decision is not None and decision.data_class == "list_entry":
            try:
                values = apply(decision, m, pseudonym_key=self.pseudonym_key)
            except Exception:  # any policy failure withholds everything
                values = {}
        forms: dict[str, str] = {}
        for fd in personal:
            if decision is not None and fd.name in values:
                setattr(m, fd.name, values[fd.name])
                forms[fd.name] = str(decision.fields[fd.name])
            else:
                m.ClearField(fd.name)
                self.out.withheld += 1
        self.out.forms.update(forms)
        self.out.values += len(forms)
        if forms and leaf is not None:
            self.out.leaves.add(leaf)
        return forms


def report_personal_values(envelope: bytes) -> dict[str, int]:
    """Field name -> personal values in a report envelope's payload (empty envelope: none).
    Raises :class:`Unreleasable` for an envelope that cannot be read."""
    if not envelope:
        return {}
    try:
        env = json.loads(envelope)
        payload = json.loads(base64.b64decode(env["payload"], validate=True))
        return personal_values(payload)
    except Exception as exc:  # anything unreadable is not sent
        raise Unreleasable(
            f"a report envelope that cannot be read ({type(exc).__name__})"
        ) from None


def _repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


def release(
    message: Message, decision: Decision | None, *, pseudonym_key: PseudonymKey | None
) -> Release:
    """Leave in *message* only what *decision* lets its peer have (see the module docstring).

    Raises :class:`Unreleasable` if the message cannot be judged; the message is then partly
    walked and must not be sent.
    """
    if not isinstance(message, Message):
        raise Unreleasable(f"a {type(message).__name__} response is not a message of the schema")
    walker = _Walker(decision, pseudonym_key)
    if _plain(message.DESCRIPTOR):
        if len(UnknownFieldSet(message)):
            raise Unreleasable(
                f"{message.DESCRIPTOR.full_name} carries fields the schema does not know"
            )
        return walker.out
    walker.message(message, None)
    return walker.out
