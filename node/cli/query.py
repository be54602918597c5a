"""`creditnode query`: ask a peer what its own lists hold about one subject, for a purpose.

The answer's personal fields arrive in the form the peer's agreement with this node gives for
that purpose (decided and recorded at the peer's border); a person is asked about by the peer's
own pseudonym of it, obtained by an oblivious evaluation at the peer (RFC 9497), so the
resident ID never leaves this node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from node.api import query, query_rpc
from node.audit.entry import EntryError, check_matter, officer_id, subject_commitment
from node.audit.local import opened_audit, out_entry
from node.audit.log import load_secret
from node.audit.wire import Asker, new_asker
from node.cli.console import data_text
from node.cli.lists import TYPE
from node.errors import InputError, PeerError
from node.home import load_home
from node.identity.oblivious import pseudonyms_at
from node.identity.validate import check_uscc, classify
from node.peers.client import describe_rpc_error
from node.peers.directory import PeerDirectory
from node.policy.agreement import PURPOSES
from node.storage import Store
from node.text import plain

PERSON_KINDS = ("resident_id", "resident_id_15", "permit")


def check_person_id(person_id: str) -> str:
    """The normalised resident ID (or permit number) to ask about; InputError without the ID."""
    check = classify(person_id)
    if check.status == "invalid" or check.kind not in PERSON_KINDS:
        raise InputError(f"--person-id: {check.reason or 'not a resident ID'}")
    return check.normalised


def lookup_request(purpose: str, *, uscc: str | None, person_id: str | None) -> query.LookupRequest:
    """The request for one subject, its person pseudonym still to fill in (:func:`ask_peer`);
    raises InputError naming the bad option."""
    if purpose not in PURPOSES:
        # Named back only when it reads as a purpose's name could: never an arbitrary value.
        shown = repr(purpose) if re.fullmatch(r"[a-z_]{1,40}", purpose) else "(not shown)"
        raise InputError(f"--purpose: unknown purpose {shown} (known: {', '.join(PURPOSES)})")
    if (uscc is None) == (person_id is None):
        raise InputError("give exactly one of --uscc, --person-id")
    request = query.LookupRequest(purpose=purpose)
    if uscc is not None:
        check = check_uscc(uscc)
        if check.status == "invalid":
            raise InputError(f"--uscc: {check.reason}")
        request.uscc = check.normalised
    return request


@dataclass(frozen=True)
class Asked:
    """An answer and both sides' receipts of it."""

    response: query.LookupResponse
    exchange: str
    our_index: int  # this node's `out` entry
    their_index: int  # the peer's `in` entry (the answer's audit_index)


def declared_asker(home_root: Path, officer: str, department: str, matter: str) -> Asker:
    """The exchange this query is (a fresh UUIDv7), with the officer's pseudonymous id at this
    node, the department's USCC and the matter; InputError naming the bad option."""
    try:
        officer_key = officer_id(load_secret(home_root), officer) if officer else ""
    except EntryError as exc:
        raise InputError(f"--officer: {exc}") from None
    if department:
        check = check_uscc(department, strict=True)
        if check.status == "invalid":
            raise InputError(f"--department: {check.reason}")
        department = check.normalised
    try:
        return new_asker(officer_key, department, matter)
    except EntryError as exc:
        raise InputError(f"--matter: {exc}") from None


async def ask_peer(
    root: Path,
    peer_name: str,
    request: query.LookupRequest,
    *,
    person_id: str | None = None,
    timeout: float,
    officer: str = "",
    department: str = "",
    matter: str = "",
) -> Asked:
    """Ask *peer_name*; a person is first turned into the peer's own pseudonym of it by an
    oblivious evaluation at the peer (for the request's purpose), so the ID never leaves.

    Each call carries an exchange id, the officer's pseudonymous id, the department and the
    matter; this node records its own receipt (an ``out`` entry holding the peer's audit
    index) of the evaluation and of the lookup, answered or refused."""
    home = load_home(root)
    asker = declared_asker(root, officer, department, matter)
    secret = load_secret(root)
    if person_id is not None:
        subject = subject_commitment(secret, "person", check_person_id(person_id))
    else:
        subject = subject_commitment(secret, "uscc", request.uscc)
    async with Store.opened(home.database_url) as store, opened_audit(home, store) as audit:
        directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
        await directory.refresh()
        peer = await directory.lookup(peer_name)
        if peer is None:
            raise InputError(f"no enrolled peer named {peer_name!r} (see `creditnode peer list`)")
        name = peer.identity.node
        if person_id is not None:
            oprf = new_asker(asker.officer, asker.department, asker.matter)
            receipts: list[int] = []
            try:
                [request.person_pseudonym] = await pseudonyms_at(
                    peer, home.tls, [check_person_id(person_id)], purpose=request.purpose,
                    timeout=timeout, metadata=oprf.metadata(), receipts=receipts,
                )  # fmt: skip
            except PeerError as exc:
                await audit.record(out_entry(
                    oprf, peer=name, method=EVALUATE, kind="oprf_evaluation", outcome="refused",
                    purpose=request.purpose, subject=subject, reason=_reason(str(exc)),
                    remote=receipts[0] if receipts else None,
                ))  # fmt: skip
                raise
            await audit.record(out_entry(
                oprf, peer=name, method=EVALUATE, kind="oprf_evaluation", outcome="received",
                purpose=request.purpose, subject=subject, remote=receipts[0],
            ))  # fmt: skip
        endpoint = peer.record.endpoint
        async with peer.channel(home.tls) as channel:
            try:
                resp = await query_rpc.QueryServiceStub(channel).Lookup(
                    request, timeout=timeout, metadata=asker.metadata()
                )
            except grpc.aio.AioRpcError as err:
                problem = describe_rpc_error(peer.identity, endpoint, err)
                await audit.record(out_entry(
                    asker, peer=name, method=LOOKUP, kind="query", outcome="refused",
                    purpose=request.purpose, subject=subject, reason=_reason(problem),
                ))  # fmt: skip
                raise PeerError(problem) from None
        ours = await audit.record(out_entry(
            asker, peer=name, method=LOOKUP, kind="query",
            outcome="hit" if resp.answers else "no_hit", purpose=request.purpose,
            subject=subject, response=resp.SerializeToString(), remote=resp.audit_index,
        ))  # fmt: skip
    return Asked(resp, asker.exchange, ours, resp.audit_index)


LOOKUP = "/creditnode.v1.QueryService/Lookup"
EVALUATE = "/creditnode.v1.PseudonymService/Evaluate"


def _reason(text: str) -> str:
    """A refusal's description, if the entry can hold it (else only that it was refused)."""
    try:
        return check_matter(text[:200])
    except EntryError:
        return "refused"


PERSONAL_COLUMNS = (
    ("person_name", "person"),
    ("person_id", "ID"),
    ("person_id_masked", "ID (masked)"),
    ("person_pseudonym", "pseudonym"),
    ("legal_rep_name", "legal rep"),
    ("legal_rep_id", "legal rep ID"),
)


def answer_table(peer: str, request: query.LookupRequest, resp: query.LookupResponse) -> Table:
    subject = request.uscc or f"person {request.person_pseudonym[:16]}…"
    table = Table(
        title=plain(f"{peer}: {subject} for {request.purpose}"), title_justify="left",
        caption=plain(resp.decision), caption_justify="left",
    )  # fmt: skip
    for col in ("entry", "list", "type", "subject", "listed", "status", "personal fields"):
        table.add_column(col)
    for a in resp.answers:
        e = a.entry
        forms = {f.field: f.form for f in a.forms}
        personal = [
            f"{label}={getattr(e, name)} ({forms.get(name, '?')})"
            for name, label in PERSONAL_COLUMNS
            if getattr(e, name)
        ]
        table.add_row(
            data_text(a.entry_id[:12]), data_text(e.list_name), TYPE.get(e.list_type, "?"),
            data_text(e.subject_name or e.uscc), data_text(e.listing_date),
            "active" if e.status == 1 else "removed",
            data_text("; ".join(personal) or "(none sent)"),
        )  # fmt: skip
    if not resp.answers:
        table.add_row("(no entries)", "", "", "", "", "", "")
    return table


def answer_json(peer: str, request: query.LookupRequest, asked: Asked) -> dict[str, Any]:
    """An answer as `query --format json` prints it (docs/json.md): each entry's personal
    fields only as the peer sent them, with the form its agreement gave."""
    resp = asked.response
    answers = []
    for a in resp.answers:
        e = a.entry
        forms = {f.field: f.form for f in a.forms}
        answers.append(
            {
                "entry_id": a.entry_id,
                "list": e.list_name,
                "type": TYPE.get(e.list_type, "?"),
                "subject": e.subject_name or None,
                "uscc": e.uscc,
                "listed": e.listing_date,
                "until": e.disclosure_end,
                "status": "active" if e.status == 1 else "removed",
                "personal": {
                    name: {"value": getattr(e, name), "form": forms.get(name, "?")}
                    for name, _ in PERSONAL_COLUMNS
                    if getattr(e, name)
                },
            }
        )
    return {
        "peer": peer,
        "purpose": request.purpose,
        "subject": request.uscc or None,
        "decision": resp.decision,
        "exchange": asked.exchange,
        "audit_index": asked.our_index,
        "peer_audit_index": asked.their_index,
        "answers": answers,
    }


def print_answer(
    out: Console, peer: str, request: query.LookupRequest, resp: query.LookupResponse
) -> None:
    out.print(answer_table(peer, request, resp))
