"""What one peer receives for one purpose, field by field, and applying that to an entry (pure).

:func:`decide` turns the agreements into a :class:`Decision` for one (peer, purpose, data
class); :func:`apply` turns a decision and one entry into the values of the non-public fields
that peer receives. Both fail closed:

* no agreement names the peer, the purpose is unknown or not allowed, or any applicable
  agreement has a problem (including a conflict between two of them) → every non-public field
  is withheld, and :attr:`Decision.reason` says why in one line;
* a field no rule names is withheld;
* in :func:`apply`, a value a mask cannot take (a 15-digit ID under ``mask:court_id``), a
  pseudonym without this origin's pseudonym key, or a form that does not fit the field → that
  field is withheld. Public fields are always clear and are not :func:`apply`'s business:
  they travel in the entry (or the feed leaf) itself.

**The feed has no purpose.** A feed bundle goes to a subscriber whatever it later uses it for,
so it is decided with ``purpose=None``, and only the agreement's ``[feed.<data class>]`` tables
open fields for it; a rule's request purposes never do, and an agreement without a feed table
sends the feed with every personal field withheld (the leaf still commits to them).

>>> from node.api import feeds
>>> from node.policy.agreement import parse_agreement
>>> a = parse_agreement('''
... id = "jinan-lanzhou"
... version = 3
... peers = ["lanzhou"]
... purposes = ["procurement"]
... [[rule]]
... data_class = "list_entry"
... purposes = ["procurement"]
... fields = { person_name = "mask:name_surname", person_id = "pseudonym" }
... ''', source="lanzhou.toml")
>>> decide([a], "lanzhou", "procurement", "list_entry").refused  # 3,500 names < 10,000
True
>>> d = decide([a], "lanzhou", "procurement", "list_entry", threshold=3_500)
>>> str(d.fields["person_name"]), str(d.fields["legal_rep_name"]), str(d.fields["uscc"])
('mask:name_surname', 'withhold', 'clear')
>>> entry = feeds.ListEntry(person_name="张三", person_id="11010519491231002X",
...                         legal_rep_name="李四", list_name="失信被执行人")
>>> apply(d, entry, pseudonym_key=None)  # no key: the pseudonym is withheld
{'person_name': '张*'}
>>> refused = decide([a], "lanzhou", "subsidy", "list_entry", threshold=3_500)
>>> refused.refused, refused.reason
(True, 'purpose subsidy (财政补贴) is not allowed for peer lanzhou by jinan-lanzhou v3')
>>> apply(refused, entry, pseudonym_key=None)
{}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from node.identity.pseudonym import own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.policy import masks
from node.policy.agreement import (
    CLEAR,
    DATA_CLASSES,
    PURPOSES,
    WITHHOLD,
    Agreement,
    Form,
    PolicyError,
    Problem,
    form_problem,
    message_fields,
    public_fields,
    validate,
)
from node.policy.reidentify import DEFAULT_THRESHOLD

__all__ = ["AgreementRef", "Decision", "apply", "decide"]


@dataclass(frozen=True, order=True)
class AgreementRef:
    """An agreement as a disclosure record names it."""

    id: str
    version: int

    def __str__(self) -> str:
        return f"{self.id} v{self.version}"


@dataclass(frozen=True)
class Decision:
    """The form of every field of *data_class* for one peer and purpose (None: the feed).

    ``agreements`` are all the agreements that name the peer (usually one; a peer file and an
    alliance profile file add up), sorted: it is what a disclosure record keeps.
    ``agreement_id`` / ``agreement_version`` name the single agreement when there is one;
    when several apply, ``agreement_id`` joins their ids with ``+`` and ``agreement_version``
    is None (the versions are in ``agreements``). ``refused`` is True when the decision failed
    closed, and ``reason`` says why (or, if not refused, what allowed it).
    """

    peer: str
    purpose: str | None
    data_class: str
    fields: dict[str, Form]
    agreements: tuple[AgreementRef, ...]
    refused: bool
    reason: str

    @property
    def agreement_id(self) -> str | None:
        return "+".join(a.id for a in self.agreements) or None

    @property
    def agreement_version(self) -> int | None:
        return self.agreements[0].version if len(self.agreements) == 1 else None

    def opened(self) -> dict[str, Form]:
        """The non-public fields this decision lets out, with their forms."""
        public = public_fields(self.data_class) if self.data_class in DATA_CLASSES else set()
        return {n: f for n, f in self.fields.items() if n not in public and f.kind != "withhold"}


def _purpose_label(purpose: str) -> str:
    return f"{purpose} ({PURPOSES[purpose]})" if purpose in PURPOSES else repr(purpose)


def _refs(agreements: Sequence[Agreement]) -> str:
    return ", ".join(str(AgreementRef(a.id, a.version)) for a in agreements)


def decide(
    agreements: Sequence[Agreement],
    peer: str,
    purpose: str | None,
    data_class: str,
    *,
    threshold: int = DEFAULT_THRESHOLD,
) -> Decision:
    """What *peer* receives of *data_class* for *purpose* (None: the feed).

    The answer depends only on the agreements that name *peer*; a problem in any of them (or a
    conflict between them, or forms that together leave some ID or name fewer than *threshold*
    candidates: the node's ``reidentification_threshold``) refuses the peer everything
    personal, while other peers, whose agreements are sound, are unaffected.
    """
    applicable = sorted(
        (a for a in agreements if peer in a.peers), key=lambda a: (a.id, a.version, a.source)
    )
    refs = tuple(sorted({AgreementRef(a.id, a.version) for a in applicable}))
    if data_class not in DATA_CLASSES:
        # No message, so no field list: nothing to open, nothing to name.
        return Decision(
            peer=peer,
            purpose=purpose,
            data_class=data_class,
            fields={},
            agreements=refs,
            refused=True,
            reason=f"unknown data class {data_class!r}",
        )
    public = public_fields(data_class)
    closed = {n: CLEAR if n in public else WITHHOLD for n in message_fields(data_class)}

    def refuse(reason: str) -> Decision:
        return Decision(
            peer=peer,
            purpose=purpose,
            data_class=data_class,
            fields=dict(closed),
            agreements=refs,
            refused=True,
            reason=reason,
        )

    if not applicable:
        return refuse(f"no agreement names peer {peer}")
    problems = validate(applicable, threshold=threshold)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return refuse(f"agreement problem for peer {peer}: {problems[0]}{more}")
    if purpose is not None:
        if purpose not in PURPOSES:
            return refuse(f"unknown purpose {purpose!r}")
        if not any(purpose in a.purposes for a in applicable):
            return refuse(
                f"purpose {_purpose_label(purpose)} is not allowed for peer {peer} by "
                f"{_refs(applicable)}"
            )
    fields = dict(closed)
    for a in applicable:
        if purpose is not None and purpose not in a.purposes:
            continue  # a rule cannot widen its own agreement's purposes (validate checks too)
        for rule in a.rules:
            if rule.data_class != data_class:
                continue
            if rule.feed if purpose is None else purpose in rule.purposes:
                for name, form in rule.fields.items():
                    if name not in public:  # public fields stay clear whatever is written
                        fields[name] = form
    what = "the feed" if purpose is None else f"purpose {_purpose_label(purpose)}"
    return Decision(
        peer=peer,
        purpose=purpose,
        data_class=data_class,
        fields=fields,
        agreements=refs,
        refused=False,
        reason=f"{what} for peer {peer} decided by {_refs(applicable)}",
    )


def _render(form: Form, value: str, pseudonym_key: PseudonymKey | None) -> str:
    if form.kind == "clear":
        return value
    if form.kind == "pseudonym":
        if pseudonym_key is None:
            raise ValueError("no pseudonym key to pseudonymise with")
        return own_pseudonym(pseudonym_key, value)
    registry = masks.PATTERNS if form.kind == "mask" else masks.GENERALISERS
    pattern = form.pattern
    if form.kind not in ("mask", "generalise") or pattern is None or pattern not in registry:
        raise ValueError(f"form {form} cannot be applied")
    return registry[pattern](value)


def apply(
    decision: Decision, entry: Message, *, pseudonym_key: PseudonymKey | None
) -> dict[str, str]:
    """The value each non-public field of *entry* takes for the decision's peer, by field name.

    Withheld fields, empty fields and fields whose form cannot be applied are left out: a
    missing key means "send nothing (only the commitment)". *pseudonym_key* is this origin's,
    for ``pseudonym`` forms. Raises :class:`PolicyError` if *entry* is not a message
    of the decision's data class (a caller bug: sending nothing is the safe outcome).
    """
    message = DATA_CLASSES.get(decision.data_class)
    if message is None or entry.DESCRIPTOR.full_name != message.DESCRIPTOR.full_name:
        # The message names types only: the entry itself is personal data.
        raise PolicyError([Problem("<apply>", 0, f"entry is not a {decision.data_class} message")])
    if decision.refused:
        return {}
    public = public_fields(decision.data_class)
    out: dict[str, str] = {}
    for name, form in decision.fields.items():
        if name in public or form.kind == "withhold":
            continue
        # Checked again here, not only in decide: a Decision can be built by hand, and this is
        # the last point before the value leaves.
        if form_problem(decision.data_class, name, form) is not None:
            continue
        value = getattr(entry, name, None)
        if not isinstance(value, str) or not value:
            continue
        try:
            out[name] = _render(form, value, pseudonym_key)
        except Exception:  # noqa: S112  # any failure of a form withholds the field, never leaks
            continue
    return out
