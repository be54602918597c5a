"""The federated check: ask every enrolled partner for its signed report in parallel, each
within its own deadline, on behalf of one officer, and merge the answers with this node's own.

Every request carries the officer's random id, the department's USCC, the purpose and the
matter (in the request and in the audit metadata), each partner's call under an exchange id of
its own (both sides record it under that id, so ``audit reconcile`` pairs them); this node
records its receipt of every partner's answer (an ``out`` entry) and the officer's request
(an ``in`` entry under the check's exchange id) before answering. A person is asked about by each
partner's own pseudonym, obtained obliviously (RFC 9497): the ID never leaves this node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import structlog

from keys import NodeIdentity
from node.actions.log import ActionsLog
from node.actions.record import Hit
from node.api import officers, reports, reports_rpc
from node.audit.entry import (
    AuditEntry,
    EntryError,
    check_matter,
    now_us,
    response_digest,
    subject_commitment,
    uuid7,
)
from node.audit.local import out_entry
from node.audit.log import AuditLog
from node.audit.wire import Asker
from node.errors import PeerError
from node.home import Home
from node.identity.oblivious import pseudonyms_at
from node.identity.pseudonym import own_pseudonym
from node.identity.validate import check_uscc, classify
from node.officers.consolidate import (
    PayloadError,
    envelope_payload,
    items_of,
    merge,
    merge_candidates,
    subject_of,
    verdict,
)
from node.officers.gate import Officer
from node.peers.client import describe_rpc_error
from node.peers.directory import KnownPeer, PeerDirectory
from node.policy.agreement import PURPOSES
from node.reports.build import Asked, ReportDeps, build_report
from node.reports.build import Subject as ReportSubject

log = structlog.get_logger("creditnode.officers")

CHECK = "/creditnode.v1.OfficerService/Check"
GET_REPORT = "/creditnode.v1.ReportService/GetReport"
EVALUATE = "/creditnode.v1.PseudonymService/Evaluate"
MAX_NAME = 100
PERSON_KINDS = ("resident_id", "resident_id_15", "permit")
# Roles that may check; an auditor reads the audit log, an operator runs the node.
CHECKING_ROLES = ("officer",)

# This node's own report for a request (node.reports' local builder).
OwnReport = Callable[[reports.GetReportRequest], Awaitable[reports.GetReportResponse]]


def own_reports(deps: ReportDeps) -> OwnReport:
    """This node's own report, built locally with nothing personal in it (no agreement
    decides for this node's own officers; they see its data through its own tools)."""

    async def own(request: reports.GetReportRequest) -> reports.GetReportResponse:
        which = request.WhichOneof("subject")
        subject = ReportSubject(**{which: getattr(request, which)}) if which else ReportSubject()
        asked = Asked(
            purpose=request.purpose, matter=request.matter, officer=request.officer,
            department_uscc=request.department_uscc, exchange=request.exchange_id,
        )  # fmt: skip
        report = await build_report(deps, subject, asked, decision=None)
        return reports.GetReportResponse(
            envelope=report.envelope,
            report_number=report.report_number,
            candidates=[
                reports.ReportCandidate(uscc=c.uscc, subject_name=c.subject_name, items=c.items)
                for c in report.candidates
            ],
            roots=[reports.RootChain(origin=o, versions=v) for o, v in report.roots.items()],
        )

    return own


class CheckRefused(Exception):
    """The officer's request is refused (and recorded); the message names no data value."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Subject:
    kind: str  # uscc | name | person
    value: str
    commitment: str  # the audit's keyed commitment ("" for a name)


@dataclass
class Checker:
    home: Home
    directory: PeerDirectory
    audit: AuditLog
    secret: bytes
    own_report: OwnReport
    deadline: float
    # This node's actions log (issue 15): a check matching a partner's active entry records
    # a hit there; None records none (a checker without a running node).
    actions: ActionsLog | None = None
    # One channel per partner, reused across checks (a TLS handshake per partner per check
    # would cost more than the report); rebuilt when the partner's endpoint or CA, or this
    # node's own certificate, changes.
    _channels: dict[str, tuple[tuple[str, str, int], grpc.aio.Channel]] = field(
        default_factory=dict, repr=False
    )

    def _channel(self, peer: KnownPeer) -> grpc.aio.Channel:
        key = (peer.record.endpoint, peer.record.ca_certificate, id(self.home.tls.current()))
        held = self._channels.get(peer.identity.node)
        if held is not None and held[0] == key:
            return held[1]
        channel = peer.channel(self.home.tls)
        self._channels[peer.identity.node] = (key, channel)
        if held is not None:
            asyncio.get_running_loop().create_task(held[1].close(grace=self.deadline))
        return channel

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for _, channel in channels.values():
            await channel.close()

    async def check(
        self, officer: Officer, request: officers.CheckRequest
    ) -> officers.CheckResponse:
        exchange = uuid7()
        purpose = request.purpose
        matter = ""
        try:
            matter = check_matter(request.matter)
        except EntryError as exc:
            await self._refuse(exchange, officer, purpose, "", "", str(exc))
            raise CheckRefused(grpc.StatusCode.INVALID_ARGUMENT, f"matter: {exc}") from None
        if not matter.strip():
            await self._refuse(exchange, officer, purpose, "", "", "no matter given")
            raise CheckRefused(grpc.StatusCode.INVALID_ARGUMENT, "a check needs a matter number")
        if officer.role not in CHECKING_ROLES:
            await self._refuse(
                exchange, officer, "", matter, "", f"role {officer.role} may not check"
            )
            raise CheckRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"an officer of role {officer.role} may not check",
            )
        if purpose not in PURPOSES or purpose not in officer.purposes:
            shown = purpose if purpose in PURPOSES else "not in the alliance catalogue"
            await self._refuse(
                exchange, officer, purpose if purpose in PURPOSES else "", matter, "",
                f"purpose {shown}: not authorised for this officer",
            )  # fmt: skip
            raise CheckRefused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"purpose {shown} is not authorised for this officer "
                f"(authorised: {', '.join(officer.purposes) or 'none'})",
            )
        try:
            subject = self._subject(request)
        except ValueError as exc:
            await self._refuse(exchange, officer, purpose, matter, "", str(exc))
            raise CheckRefused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        asker = Asker(exchange, officer.id, officer.department, matter)
        base = reports.GetReportRequest(
            purpose=purpose, matter=matter, officer=officer.id,
            department_uscc=officer.department, exchange_id=exchange,
        )  # fmt: skip
        if subject.kind == "uscc":
            base.uscc = subject.value
        elif subject.kind == "name":
            base.name = subject.value
        peers = sorted(self.directory.peers(), key=lambda p: p.identity.node)
        for gone in set(self._channels) - {p.identity.node for p in peers}:
            _, channel = self._channels.pop(gone)
            await channel.close()  # a removed partner is never asked again
        own = asyncio.create_task(self._own(base, subject))
        asked = await asyncio.gather(*(self._ask(peer, base, subject, asker) for peer in peers))
        answers = [await own, *asked]
        response = self._consolidate(answers, subject)
        response.exchange_id = exchange
        outcome = "hit" if response.items or response.candidates else "no_hit"
        entry = AuditEntry(
            exchange=exchange, at_us=now_us(), direction="in", kind="query", outcome=outcome,
            method=CHECK, officer=officer.id, department=officer.department, purpose=purpose,
            matter=matter, subject=subject.commitment,
            response=response_digest(response.SerializeToString(deterministic=True)),
            reason=_states_line(response),
        )  # fmt: skip
        response.audit_index = await self.audit.record(entry)
        await self._record_hits(response, purpose, matter, officer.department)
        return response

    async def _record_hits(
        self, response: officers.CheckResponse, purpose: str, matter: str, department: str
    ) -> None:
        """A hit per partner entry the check matched, in this node's actions log: the node
        that holds the entry and was asked is where the match happened. Bookkeeping only: a
        failure is logged and the officer still gets the answer (the check itself is audited)."""
        if self.actions is None:
            return
        own = self.home.identity
        at = now_us()
        try:
            found = {
                (NodeIdentity(own.federation, i.origin).uri, i.entry_id)
                for i in response.items
                if i.origin and i.entry_id and i.origin != own.node
            }
            hits = [
                Hit(origin=o, entry=e, purpose=purpose, matter=matter, department=department,
                    at_us=at)
                for o, e in sorted(found)
            ]  # fmt: skip
            await self.actions.append(hits)
        except Exception as exc:
            log.error("hits not recorded", error=type(exc).__name__)

    def _subject(self, request: officers.CheckRequest) -> Subject:
        kind = request.WhichOneof("subject")
        if kind == "uscc":
            check = check_uscc(request.uscc)
            if check.status == "invalid":
                raise ValueError(f"uscc: {check.reason}")
            value = check.normalised
            return Subject("uscc", value, subject_commitment(self.secret, "uscc", value))
        if kind == "name":
            name = request.name.strip()
            if not name or len(name) > MAX_NAME or not name.isprintable():
                raise ValueError(f"name: 1 to {MAX_NAME} printable characters")
            return Subject("name", name, "")
        if kind == "person_id":
            check = classify(request.person_id)
            if check.status == "invalid" or check.kind not in PERSON_KINDS:
                raise ValueError("person_id: not a valid resident ID or permit number")
            idno = check.normalised
            return Subject("person", idno, subject_commitment(self.secret, "person", idno))
        raise ValueError("name a subject: uscc, name or person_id")

    async def _own(
        self, base: reports.GetReportRequest, subject: Subject
    ) -> officers.PartnerReport:
        start = time.perf_counter()
        request = reports.GetReportRequest()
        request.CopyFrom(base)
        if subject.kind == "person":
            request.person_pseudonym = own_pseudonym(self.home.pseudonym_key, subject.value)
        name = self.home.settings.name
        try:
            resp = await self.own_report(request)
        except Exception as exc:  # this node's own data is shown as missing, never guessed
            log.exception("own report not made")
            return _failed(name, officers.PARTNER_STATE_INVALID, type(exc).__name__, start)
        return officers.PartnerReport(
            partner=name, state=officers.PARTNER_STATE_ANSWERED, report=resp,
            seconds=time.perf_counter() - start,
        )  # fmt: skip

    async def _ask(
        self,
        peer: KnownPeer,
        base: reports.GetReportRequest,
        subject: Subject,
        check: Asker,
    ) -> officers.PartnerReport:
        start = time.perf_counter()
        name = peer.identity.node
        # An exchange of its own per partner: the partner records its `in` entry under it
        # (seq 0), this node its `out` receipt, and `audit reconcile` pairs the two.
        asker = Asker(uuid7(), check.officer, check.department, check.matter)
        request = reports.GetReportRequest()
        request.CopyFrom(base)
        request.exchange_id = asker.exchange
        state: officers.PartnerState.ValueType = officers.PARTNER_STATE_ANSWERED
        detail = ""
        resp: reports.GetReportResponse | None = None
        try:
            async with asyncio.timeout(self.deadline):
                if subject.kind == "person":
                    # Its own exchange: the partner records the evaluation apart from the report.
                    oprf = Asker(uuid7(), asker.officer, asker.department, asker.matter)
                    [request.person_pseudonym] = await pseudonyms_at(
                        peer, self.home.tls, [subject.value], purpose=request.purpose,
                        timeout=self.deadline, metadata=oprf.metadata(),
                    )  # fmt: skip
                resp = await reports_rpc.ReportServiceStub(self._channel(peer)).GetReport(
                    request, timeout=self.deadline, metadata=asker.metadata(),
                    # A partner that is down (or restarting) gets its whole deadline.
                    wait_for_ready=True,
                )  # fmt: skip
        except TimeoutError:
            state, detail = (
                officers.PARTNER_STATE_TIMED_OUT,
                f"no answer within {self.deadline:g} s",
            )
        except grpc.aio.AioRpcError as err:
            state = _state_of(err.code())
            detail = describe_rpc_error(peer.identity, peer.record.endpoint, err)
        except PeerError as exc:
            text = str(exc)
            state = (
                officers.PARTNER_STATE_TIMED_OUT if "in time" in text
                else officers.PARTNER_STATE_UNREACHABLE if "unreachable" in text
                else officers.PARTNER_STATE_REFUSED
            )  # fmt: skip
            detail = text
        seconds = time.perf_counter() - start
        if resp is not None:
            try:
                if resp.envelope:
                    items_of(envelope_payload(bytes(resp.envelope)), name)
            except PayloadError as exc:
                state, detail = officers.PARTNER_STATE_INVALID, str(exc)
        outcome = (
            ("hit" if resp.envelope or resp.candidates else "no_hit")
            if state == officers.PARTNER_STATE_ANSWERED and resp is not None
            else "refused" if state == officers.PARTNER_STATE_REFUSED else "error"
        )  # fmt: skip
        try:
            await self.audit.record(
                out_entry(
                    asker,
                    peer=name,
                    method=GET_REPORT,
                    kind="query",
                    outcome=outcome,
                    purpose=request.purpose,
                    subject=subject.commitment,
                    # The bytes as received (the partner's entry holds their digest).
                    response=None if resp is None else resp.SerializeToString(),
                    remote=None if resp is None else resp.audit_index,
                    reason=_bounded(detail),
                )
            )
        except EntryError:
            log.exception("partner answer not recorded", peer=name)
        if state != officers.PARTNER_STATE_ANSWERED or resp is None:
            return officers.PartnerReport(
                partner=name, state=state, detail=detail[:300], seconds=seconds,
                exchange_id=asker.exchange,
            )  # fmt: skip
        return officers.PartnerReport(
            partner=name, state=state, report=resp, seconds=seconds, exchange_id=asker.exchange
        )

    def _consolidate(
        self, answers: list[officers.PartnerReport], subject: Subject
    ) -> officers.CheckResponse:
        response = officers.CheckResponse()
        if subject.kind == "uscc":
            response.uscc = subject.value
        if subject.kind == "name":
            response.candidates.extend(
                merge_candidates(
                    (a.partner, [(c.uscc, c.subject_name) for c in a.report.candidates])
                    for a in answers
                    if a.state == officers.PARTNER_STATE_ANSWERED
                )
            )
            response.reports.extend(answers)
            response.outcome = officers.CHECK_OUTCOME_UNKNOWN
            return response
        per_report = []
        for answer in answers:
            if answer.state != officers.PARTNER_STATE_ANSWERED or not answer.report.envelope:
                continue
            try:
                payload = envelope_payload(bytes(answer.report.envelope))
                per_report.append((answer.partner, items_of(payload, answer.partner)))
            except PayloadError as exc:
                answer.state, answer.detail = officers.PARTNER_STATE_INVALID, str(exc)
                continue
            name, uscc = subject_of(payload)
            if name and not response.subject_name:
                response.subject_name = name
            if uscc and not response.uscc:
                response.uscc = uscc
        items = merge(per_report)
        response.items.extend(items)
        response.reports.extend(answers)
        response.outcome = verdict(items, [a.state for a in answers])
        return response

    async def _refuse(
        self, exchange: str, officer: Officer, purpose: str, matter: str, subject: str, why: str
    ) -> None:
        entry = AuditEntry(
            exchange=exchange, at_us=now_us(), direction="in", kind="query", outcome="refused",
            method=CHECK, officer=officer.id, department=officer.department,
            purpose=purpose if purpose in PURPOSES else "", matter=matter, subject=subject,
            reason=_bounded(why),
        )  # fmt: skip
        await self.audit.record(entry)


def _state_of(code: grpc.StatusCode) -> officers.PartnerState.ValueType:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return officers.PARTNER_STATE_TIMED_OUT
    if code == grpc.StatusCode.UNAVAILABLE:
        return officers.PARTNER_STATE_UNREACHABLE
    return officers.PARTNER_STATE_REFUSED


def _failed(
    name: str, state: officers.PartnerState.ValueType, detail: str, start: float
) -> officers.PartnerReport:
    return officers.PartnerReport(
        partner=name, state=state, detail=detail, seconds=time.perf_counter() - start
    )


def _bounded(text: str) -> str:
    """A reason the audit entry can hold (else only that something happened)."""
    try:
        return check_matter(text[:200])
    except EntryError:
        return "see the node's log"


def _states_line(response: officers.CheckResponse) -> str:
    counts: dict[str, int] = {}
    for r in response.reports:
        label = officers.PartnerState.Name(r.state).removeprefix("PARTNER_STATE_").lower()
        counts[label] = counts.get(label, 0) + 1
    return _bounded(", ".join(f"{n} {label}" for label, n in sorted(counts.items())))
