"""The officer's pages (role officer): search, the consolidated check, reports.

Every check runs through the officer listener's own code (node.officers.check.Checker, in
process, as the admitted officer): the same purpose and matter rules, the same requests to
the partners, the same audit. Results are kept in memory for the officer who asked (never
in a URL: a result is addressed by the check's random exchange id), and every view of one is
audited with the officer, purpose and matter. A person's ID arrives in a POST body only, is
never put back into a form, a URL, a log or a page, and the redirect after the check carries
the exchange id alone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keys import PeerBundle, encode_bundle_root
from node.api import officers
from node.audit.entry import AuditEntry, EntryError, now_us, subject_commitment, uuid7
from node.console.app import ConsoleDeps, error_page, officer_of, render
from node.errors import CreditnodeError
from node.identity.registry import resolve
from node.identity.validate import PERSONAL_KINDS, check_uscc, classify
from node.officers.check import CheckRefused
from node.officers.gate import Officer
from node.peers.enrollment import export_bundle
from node.policy.agreement import PURPOSES
from node.reports.envelope import digest, load_file, report_file, verify_report
from node.reports.payload import SECTIONS, ReportError
from node.reports.render import qr_svg
from node.storage.peers import PEER_ROOTS

if TYPE_CHECKING:
    from node.feeds.measures import MeasureCatalogue

log = structlog.get_logger("creditnode.console")

PREFIX: Final = "/officer"
MAX_RESULTS: Final = 500  # results held in memory (all officers); the oldest go first
MAX_FIELD: Final = 200
KINDS: Final = ("uscc", "legacy", "name")
STATE_KEYS: Final = {
    officers.PARTNER_STATE_ANSWERED: "answered",
    officers.PARTNER_STATE_TIMED_OUT: "timed_out",
    officers.PARTNER_STATE_REFUSED: "refused",
    officers.PARTNER_STATE_UNREACHABLE: "unreachable",
    officers.PARTNER_STATE_INVALID: "invalid",
}
VERDICT_KEYS: Final = {
    officers.CHECK_OUTCOME_CLEAR: "clear",
    officers.CHECK_OUTCOME_RED_LISTED: "red-listed",
    officers.CHECK_OUTCOME_BLACK_LISTED: "black-listed",
    officers.CHECK_OUTCOME_UNKNOWN: "unknown",
    officers.CHECK_OUTCOME_PARTIAL: "partial",
}


# ------------------------------------------------------------------------------ pure


@dataclass(frozen=True)
class Held:
    """One check's answer, as the officer who asked may see it again."""

    officer: str
    response: officers.CheckResponse
    purpose: str
    matter: str
    subject: str  # the audit's keyed commitment ("" for a name)
    kind: str  # uscc | name | person
    at: float  # time.monotonic() when it was kept
    name: str = ""  # the name asked (a name query only): ranks its candidates


MARKED: Final = "marked"
OWN_CATALOGUE: Final = "own"


@dataclass(frozen=True)
class Binding:
    """A measure that binds the officer's own city for one item: marked mandatory (强制) by
    the item's city (a 强制 measure binds every city of the alliance), or mandatory for the
    item's list in this city's own measures catalogue (the national base and its supplement,
    which adopts measures the item's city only recommends)."""

    origin: str
    list_name: str
    code: str
    decision: str
    authority: str
    name: str = ""  # the measure's name in this city's catalogue ("" when it has none)
    why: str = MARKED  # MARKED or OWN_CATALOGUE


@dataclass(frozen=True)
class OwnMeasures:
    """This city's measures catalogue, and its list catalogue's codes by code and name."""

    measures: MeasureCatalogue
    list_codes: Mapping[str, str]


def binding_measures(
    items: Sequence[officers.CheckItem], own: OwnMeasures | None = None
) -> list[Binding]:
    """Per item, the measures binding this city: those its city marked mandatory, then those
    this city's catalogue makes mandatory for the item's list (a list this city's catalogue
    does not know binds only by its marks). Pure."""
    out: list[Binding] = []
    for i in items:
        origin = i.origin_city or i.origin
        seen: set[str] = set()
        for m in i.measures:
            if m.mandatory and m.code not in seen:
                seen.add(m.code)
                known = own.measures.find(m.code) if own is not None else None
                out.append(Binding(origin, i.list_name, m.code, i.decision_doc_no,
                                   i.authority_name, known.name if known else ""))  # fmt: skip
        code = own.list_codes.get(i.list_name) if own is not None else None
        if own is None or code is None:
            continue
        for measure in own.measures.measures:
            if measure.mandatory and code in measure.lists and measure.code not in seen:
                seen.add(measure.code)
                out.append(Binding(origin, i.list_name, measure.code, i.decision_doc_no,
                                   i.authority_name, measure.name, OWN_CATALOGUE))  # fmt: skip
    return out


def own_measures(deps: ConsoleDeps) -> OwnMeasures | None:
    """This node's own catalogues, or None (logged) when they cannot be read: the page then
    says so and lists only the measures the items' cities marked mandatory."""
    from node.feeds.home_catalogues import list_catalogue, measure_catalogue

    try:
        lists = list_catalogue(deps.home)
        measures = measure_catalogue(deps.home)
    except (CreditnodeError, OSError) as exc:
        log.error("own measures catalogue unreadable", error=type(exc).__name__)
        return None
    codes = {s.code: s.code for s in lists.lists} | {s.name: s.code for s in lists.lists}
    return OwnMeasures(measures, codes)


def ranked(
    name: str, candidates: Sequence[officers.CheckCandidate]
) -> list[officers.CheckCandidate]:
    """Best match first: the exact name, then names starting with it, then the rest; among
    equals the shorter name (less added to what was asked), then more cities knowing it."""
    asked = name.strip().casefold()

    def key(c: officers.CheckCandidate) -> tuple[int, int, int, str, str]:
        have = c.subject_name.strip().casefold()
        closeness = 0 if have == asked else 1 if have.startswith(asked) else 2
        return (closeness, len(have), -len(c.origins), c.subject_name, c.uscc)

    return sorted(candidates, key=key)


def purposes_for(officer: Officer) -> list[tuple[str, str]]:
    """(code, label) of the catalogue's purposes this officer is authorised for."""
    return [(p, PURPOSES[p]) for p in PURPOSES if p in officer.purposes]


def reads_as_person(value: str) -> bool:
    """A person's ID typed into an organisation's field (never sent, never shown back)."""
    return any(classify(tok).kind in PERSONAL_KINDS for tok in value.split())


def field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip()[: MAX_FIELD + 1] if isinstance(value, str) else ""


class Results:
    """Checks' answers in memory, by (officer, exchange), bounded in number and age."""

    def __init__(self, lifetime: float, limit: int = MAX_RESULTS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._held: OrderedDict[tuple[str, str], Held] = OrderedDict()

    def keep(self, exchange: str, held: Held) -> None:
        self._held[(held.officer, exchange)] = held
        while len(self._held) > self.limit:
            self._held.popitem(last=False)

    def get(self, officer: str, exchange: str) -> Held | None:
        held = self._held.get((officer, exchange))
        if held is None or time.monotonic() - held.at > self.lifetime:
            return None
        return held


# ------------------------------------------------------------------------------ pages


class OfficerPages:
    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.results = Results(deps.session_seconds)

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.search, methods=["GET"]),
            Route(f"{PREFIX}/check", self.check, methods=["POST"]),
            Route(f"{PREFIX}/person", self.person, methods=["POST"]),
            Route(f"{PREFIX}/result/{{exchange}}", self.result, methods=["GET"]),
            Route(f"{PREFIX}/result/{{exchange}}/report/{{n:int}}", self.report),
            Route(f"{PREFIX}/result/{{exchange}}/report/{{n:int}}/print", self.print_view),
            Route(f"{PREFIX}/result/{{exchange}}/report/{{n:int}}/download", self.download),
        ]

    # -------------------------------------------------------------------- search and check

    def _form(
        self,
        request: Request,
        *,
        status: int = 200,
        problem: str = "",
        problem_key: str = "",
        values: Mapping[str, str] | None = None,
        candidates: Sequence[tuple[str, str]] = (),
    ) -> Response:
        officer = officer_of(request)
        return render(request, "officer/search.html", {
            "purposes": purposes_for(officer), "kinds": KINDS,
            "values": {"purpose": "", "matter": "", "kind": "uscc", "query": "", **(values or {})},
            "problem": problem, "problem_key": problem_key,
            "may_check": self.deps.checker is not None, "candidates": candidates,
        }, status)  # fmt: skip

    async def search(self, request: Request) -> Response:
        return self._form(request)

    async def check(self, request: Request) -> Response:
        form = await request.form()
        purpose, matter = field(form, "purpose"), field(form, "matter")
        kind, query = field(form, "kind"), field(form, "query")
        # Typed values are shown back (escaped), except anything that reads as a person's ID.
        shown = {"purpose": purpose, "matter": matter, "kind": kind, "query": query}
        if reads_as_person(query) or reads_as_person(matter):
            shown["query" if reads_as_person(query) else "matter"] = ""
            return self._form(request, status=400, problem_key="check.person_in_field",
                              values=shown)  # fmt: skip
        if not purpose or not matter or not query or kind not in KINDS:
            return self._form(request, status=400, problem_key="check.missing", values=shown)
        subject: dict[str, str] = {}
        if kind == "uscc":
            subject["uscc"] = query
        elif kind == "name":
            subject["name"] = query
        else:
            found = await resolve(self.deps.store, query)
            if len(found.usccs) > 1:
                # Several organisations behind one legacy code: the officer picks one.
                candidates = [(u, "") for u in found.usccs]
                return self._form(request, values=shown, candidates=candidates)
            if not found.usccs:
                return self._form(request, status=404, problem_key="check.legacy_unknown",
                                  values=shown)  # fmt: skip
            subject["uscc"] = found.usccs[0]
        req = officers.CheckRequest(purpose=purpose, matter=matter, **subject)
        return await self._run(request, req, shown)

    async def person(self, request: Request) -> Response:
        form = await request.form()
        purpose, matter = field(form, "purpose"), field(form, "matter")
        idno = field(form, "person_id")
        shown = {"purpose": purpose, "matter": "" if reads_as_person(matter) else matter}
        if not purpose or not matter or not idno:
            return self._form(request, status=400, problem_key="check.missing", values=shown)
        req = officers.CheckRequest(purpose=purpose, matter=matter, person_id=idno)
        return await self._run(request, req, shown)

    async def _run(
        self, request: Request, req: officers.CheckRequest, shown: Mapping[str, str]
    ) -> Response:
        officer = officer_of(request)
        checker = self.deps.checker
        if checker is None:
            return self._form(request, status=503, problem_key="check.no_checker", values=shown)
        kind = req.WhichOneof("subject") or ""
        try:
            response = await checker.check(officer, req)
        except CheckRefused as refused:  # recorded by the checker; its message has no value
            return self._form(request, status=400 if "argument" in refused.code.name.lower()
                              else 403, problem=str(refused), values=shown)  # fmt: skip
        commitment = self._commitment(req)
        held = Held(officer.id, response, req.purpose, req.matter, commitment,
                    "person" if kind == "person_id" else kind, time.monotonic(),
                    req.name if kind == "name" else "")  # fmt: skip
        self.results.keep(response.exchange_id, held)
        # After the POST: the exchange id only (the ID stays out of the history and the URL).
        return RedirectResponse(f"{PREFIX}/result/{response.exchange_id}", status_code=303)

    def _commitment(self, req: officers.CheckRequest) -> str:
        """The subject's keyed commitment as the checker recorded it ("" for a name)."""
        kind = req.WhichOneof("subject")
        if kind == "uscc":
            return subject_commitment(self.deps.secret, "uscc", check_uscc(req.uscc).normalised)
        if kind == "person_id":
            idno = classify(req.person_id).normalised
            return subject_commitment(self.deps.secret, "person", idno)
        return ""

    # -------------------------------------------------------------------- results

    async def _viewed(self, officer: Officer, held: Held, what: str) -> bool:
        """Audit one view of a result (officer, purpose, matter, subject); False if the view
        could not be recorded (the page is then not shown: fail closed)."""
        try:
            await self.deps.audit.record(
                AuditEntry(
                    exchange=uuid7(), at_us=now_us(), direction="local", kind="other",
                    outcome="ok", method=f"console {what}", officer=officer.id,
                    department=officer.department, purpose=held.purpose, matter=held.matter,
                    subject=held.subject, reason=f"{held.kind} check result viewed",
                )
            )  # fmt: skip
        except (EntryError, RuntimeError) as exc:
            log.error("console view not audited", error=type(exc).__name__)
            return False
        return True

    async def _held(self, request: Request, what: str) -> Held | Response:
        officer = officer_of(request)
        held = self.results.get(officer.id, str(request.path_params["exchange"]))
        if held is None:
            return error_page(request, 404, "result.expired")
        if not await self._viewed(officer, held, what):
            return error_page(request, 503, "error.audit")
        return held

    async def result(self, request: Request) -> Response:
        held = await self._held(request, "result view")
        if isinstance(held, Response):
            return held
        resp = held.response
        own = own_measures(self.deps)
        return render(request, "officer/result.html", {
            "r": resp, "kind": held.kind, "purpose": held.purpose,
            "purpose_label": PURPOSES.get(held.purpose, ""), "matter": held.matter,
            "verdict": VERDICT_KEYS.get(resp.outcome, "unknown"), "states": STATE_KEYS,
            "answered": officers.PARTNER_STATE_ANSWERED,
            "binding": binding_measures(resp.items, own), "own_catalogue": own is not None,
            "binding_why": {MARKED: "binding.marked", OWN_CATALOGUE: "binding.own"},
            "exchange": resp.exchange_id, "candidates": ranked(held.name, resp.candidates),
            "section_titles": dict(SECTIONS),
        })  # fmt: skip

    def _partner(self, held: Held, n: int) -> officers.PartnerReport | None:
        reports = held.response.reports
        if not 0 <= n < len(reports):
            return None
        partner = reports[n]
        ok = partner.state == officers.PARTNER_STATE_ANSWERED and partner.report.envelope
        return partner if ok else None

    async def _report_page(self, request: Request, template: str, what: str) -> Response:
        held = await self._held(request, what)
        if isinstance(held, Response):
            return held
        partner = self._partner(held, int(request.path_params["n"]))
        if partner is None:
            return error_page(request, 404, "error.not_found")
        data = file_of(partner)
        verified, problem, payload = await self._verify(data)
        number = str(payload.get("report_number", ""))[:80]
        sha = digest(data)
        return render(request, template, {
            "partner": partner, "p": payload, "verified": verified, "problem": problem,
            # segno draws the data as modules (no text of it enters the SVG): our own markup.
            "sha": sha, "number": number, "qr": Markup(qr_svg(number, sha)),  # noqa: S704
            "exchange": held.response.exchange_id, "n": int(request.path_params["n"]),
            "items": report_items(payload), "checkpoints": checkpoints_of(payload),
            "section_titles": dict(SECTIONS),
        })  # fmt: skip

    async def report(self, request: Request) -> Response:
        return await self._report_page(request, "officer/report.html", "report view")

    async def print_view(self, request: Request) -> Response:
        return await self._report_page(request, "officer/print.html", "report print")

    async def download(self, request: Request) -> Response:
        held = await self._held(request, "report download")
        if isinstance(held, Response):
            return held
        partner = self._partner(held, int(request.path_params["n"]))
        if partner is None:
            return error_page(request, 404, "error.not_found")
        name = f"report-{partner.partner}-{held.response.exchange_id}.json"
        return Response(
            file_of(partner),
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def _verify(self, data: bytes) -> tuple[bool, str, dict[str, Any]]:
        """As `creditnode report verify` does, with the alliance's bundles as held here."""
        try:
            _, payload, _ = load_file(data)
        except ReportError as exc:
            return False, str(exc), {}
        try:
            verify_report(data, await trust_bundles(self.deps))
        except ReportError as exc:
            return False, str(exc), payload
        return True, "", payload


def file_of(partner: officers.PartnerReport) -> bytes:
    """The self-contained report file `creditnode report verify` reads."""
    roots = {c.origin: [bytes(v) for v in c.versions] for c in partner.report.roots}
    return report_file(bytes(partner.report.envelope), roots)


def report_items(payload: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(section, item) of every item, in the payload's section order."""
    sections = payload.get("sections")
    if not isinstance(sections, Mapping):
        return []
    return [
        (str(name), item)
        for name, items in sections.items()
        if isinstance(items, list)
        for item in items
        if isinstance(item, Mapping)
    ]


def checkpoints_of(payload: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(origin, signed checkpoint note, cosignatures) of every checkpoint the payload
    carries (what its items' inclusion proofs lead to)."""
    found = payload.get("checkpoints")
    if not isinstance(found, Mapping):
        return []
    out = []
    for origin, c in sorted(found.items()):
        note = c.get("note") if isinstance(c, Mapping) else None
        cosigned = c.get("cosignatures") if isinstance(c, Mapping) else None
        out.append((
            str(origin)[:300], str(note)[:4000] if isinstance(note, str) else "",
            len(cosigned) if isinstance(cosigned, list) else 0,
        ))  # fmt: skip
    return out


async def trust_bundles(deps: ConsoleDeps) -> list[PeerBundle]:
    """This node's bundle and every enrolled peer's, with the root v1 pinned at enrollment:
    the bundles `report verify --trust` is given."""
    settings = deps.home.settings
    endpoint = settings.advertise or (
        settings.listen if not settings.listen.endswith(":0") else "127.0.0.1:1"
    )
    bundles = [export_bundle(deps.home, endpoint=endpoint)]
    records = await deps.directory.repository.list()
    async with deps.store.engine.connect() as conn:
        rows = (await conn.execute(PEER_ROOTS.select().where(PEER_ROOTS.c.version == 1))).all()
    roots = {str(r.peer): bytes(r.data) for r in rows}
    for rec in records:
        try:
            bundles.append(
                PeerBundle(
                    federation=rec.federation, name=rec.name, region=rec.region,
                    endpoint=rec.endpoint, ca_certificate=rec.ca_certificate,
                    tls_certificate=rec.tls_certificate, feed_key=rec.feed_key,
                    protocol_version=rec.protocol_version or "1",
                    software_version=rec.software_version or "0",
                    root_v1=encode_bundle_root(roots[rec.name]) if rec.name in roots else None,
                )
            )  # fmt: skip
        except ValueError:
            log.warning("peer bundle not rebuilt", peer=rec.name)
    return bundles


def routes(deps: ConsoleDeps) -> list[BaseRoute]:
    return OfficerPages(deps).routes()
