"""The auditor's pages (role auditor): the audit log with filters, a verification pass with
its first bad index, the bundle and evidence exports, and reconciling with a partner.

Every page calls what the CLI calls (``audit show``, ``verify``, ``audit export``, ``evidence
export``, ``audit reconcile``): the console adds no data path. The role check is the app's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node.console.app import ConsoleDeps
from node.console.operator_pages import evidence_document, file_part, page
from node.console.ops_text import shown
from node.errors import CreditnodeError, InputError, PeerError

PREFIX: Final = "/auditor"
SHOWN: Final = 500  # entries per page of the log (the newest of the filter's)
RECONCILE_TIMEOUT: Final = 10.0  # seconds per call to the partner
OFFICER_ID: Final = re.compile(r"[0-9a-f]{32}")
FILTERS: Final = ("from", "to", "peer", "officer", "purpose", "subject", "outcome", "kind")


def _text(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def entry_row(idx: int, e: Any) -> dict[str, Any]:
    """One entry as `audit show` prints it (ids shortened; a subject is a commitment)."""
    from node.audit.filters import shanghai_time as _shanghai

    return shown({
        "index": idx, "at": _shanghai(e), "direction": e.direction, "kind": e.kind,
        "outcome": e.outcome, "peer": e.peer, "purpose": e.purpose, "officer": e.officer[:8],
        "matter": e.matter, "subject": e.subject[:8], "released": e.values,
        "agreements": ", ".join(e.agreements), "exchange": e.exchange[:13],
        "receipt": "" if e.remote is None else f"#{e.remote}",
    })  # fmt: skip


async def find(deps: ConsoleDeps, query: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """`audit show` with the page's filters: the newest SHOWN rows of the matches, and how
    many matched."""
    from node.audit.entry import OUTCOMES
    from node.audit.filters import officer_filter as _officer
    from node.audit.filters import parse_time
    from node.audit.filters import subject_filter as _subject
    from node.audit.query import Filter, find_entries

    outcome = _text(query, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise InputError(f"outcome: one of {', '.join(OUTCOMES)}")
    officer = _text(query, "officer")
    if officer is not None and not OFFICER_ID.fullmatch(officer):
        # Only the id as shown: a name would travel in the page's URL.
        raise InputError("officer: the 32-character id as the log shows it")
    home = deps.home
    flt = Filter(
        start=parse_time(_text(query, "from"), "from"), end=parse_time(_text(query, "to"), "to"),
        peer=_text(query, "peer"), officer=_officer(home, officer),
        purpose=_text(query, "purpose"), subject=_subject(home, _text(query, "subject")),
        outcome=outcome, kind=_text(query, "kind"),
    )  # fmt: skip
    found = await find_entries(deps.store, home.identity.uri, flt)
    shown = found[-SHOWN:]
    return [entry_row(i, e) for i, e in reversed(shown)], len(found)


async def verify(deps: ConsoleDeps) -> dict[str, Any]:
    """One whole pass of `creditnode verify` (the audit log among the logs)."""
    from node.verification.runner import verify_store

    report = await verify_store(deps.home, deps.store, parallel=True)
    return shown({
        "ok": not report.findings,
        "logs": [
            {
                "log": r.label, "kind": r.kind, "leaves": r.leaves, "checkpoints": r.checkpoints,
                "findings": len(r.findings), "first_bad_index": r.first_bad_index,
                "unchecked": "; ".join(r.unchecked),
            }
            for r in report.logs
        ],
        "findings": [
            {"log": f.log, "kind": f.kind, "index": f.index, "row": f.row, "detail": f.detail}
            for f in report.findings
        ],
    })  # fmt: skip


def time_range(form: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    from node.audit.filters import time_range as _time_range

    return _time_range(_text(form, "from"), _text(form, "to"))


async def bundle(deps: ConsoleDeps, form: Mapping[str, Any]) -> bytes:
    """`creditnode audit export --from --to`: the bundle `verify-bundle` checks offline."""
    from node.audit.export import export_bundle

    start, end = time_range(form)
    return await export_bundle(deps.home, deps.store, start, end)


async def reconcile(deps: ConsoleDeps, form: Mapping[str, Any]) -> dict[str, Any]:
    """`creditnode audit reconcile --peer --from --to`: the exchanges the sides disagree on."""
    from node.audit.receipts import gap_json, reconcile_with

    peer = _text(form, "peer")
    if peer is None:
        raise InputError("choose the partner")
    start, end = time_range(form)
    here, there, gaps = await reconcile_with(
        deps.home, deps.store, peer, start, end, RECONCILE_TIMEOUT
    )
    return shown({"peer": peer, "here": here, "there": there, "gaps": [gap_json(g) for g in gaps]})


async def peer_names(deps: ConsoleDeps) -> list[str]:
    from node.storage.peers import PeerRepository

    return shown([r.name for r in await PeerRepository(deps.store).list()])


def _default_range() -> dict[str, str]:
    """The last day, Shanghai time, as the forms' start values."""
    from node.feeds.dates import SHANGHAI

    now = dt.datetime.now(SHANGHAI).replace(second=0, microsecond=0, tzinfo=None)
    later = now + dt.timedelta(minutes=1)
    return {"from": (now - dt.timedelta(days=1)).isoformat(), "to": later.isoformat()}


def _download(body: bytes | str, name: str) -> Response:
    return Response(
        body,
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def routes(deps: ConsoleDeps) -> list[BaseRoute]:
    """The auditor section's routes (under /auditor)."""

    async def log_page(request: Request) -> Response:
        from node.audit.entry import OUTCOMES

        query = request.query_params
        values = shown({k: query.get(k, "") for k in FILTERS})  # shown back, inert
        try:
            rows, matched = await find(deps, query)
            error = ""
        except InputError as exc:
            rows, matched, error = [], 0, shown(str(exc))
        return page(
            request,
            "auditor/log.html",
            {"rows": rows, "matched": matched, "shown": SHOWN, "values": values,
             "outcomes": OUTCOMES, "peers": await peer_names(deps), "error": error},
            400 if error else 200,
        )  # fmt: skip

    async def verify_form(request: Request) -> Response:
        return page(request, "auditor/verify.html", {"result": None})

    async def verify_run(request: Request) -> Response:
        return page(request, "auditor/verify.html", {"result": await verify(deps)})

    async def export_form(request: Request, error: str = "", status: int = 200) -> Response:
        return page(
            request, "auditor/export.html",
            {"peers": await peer_names(deps), "range": _default_range(), "error": error}, status,
        )  # fmt: skip

    async def export_get(request: Request) -> Response:
        return await export_form(request)

    async def export_bundle(request: Request) -> Response:
        form = await request.form()
        try:
            data = await bundle(deps, form)
        except CreditnodeError as exc:
            return await export_form(request, shown(str(exc)), 400)
        return _download(data, f"audit-bundle-{file_part(deps.home.settings.name)}.json")

    async def evidence(request: Request) -> Response:
        import json

        peer = request.path_params["peer"]
        try:
            doc = await evidence_document(deps, peer)
        except InputError as exc:
            return await export_form(request, shown(str(exc)), 404)
        body = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        return _download(body, f"evidence-{file_part(peer)}.json")

    async def reconcile_page(request: Request) -> Response:
        ctx: dict[str, Any] = {
            "peers": await peer_names(deps), "range": _default_range(), "result": None,
            "error": "", "peer": "",
        }  # fmt: skip
        status = 200
        if request.method == "POST":
            form = await request.form()
            ctx["range"] = shown({"from": _text(form, "from") or "", "to": _text(form, "to") or ""})
            ctx["peer"] = shown(_text(form, "peer") or "")
            try:
                ctx["result"] = await reconcile(deps, form)
            except (InputError, PeerError) as exc:
                ctx["error"], status = shown(str(exc)), 400
        return page(request, "auditor/reconcile.html", ctx, status)

    return [
        Route(PREFIX, log_page),
        Route(f"{PREFIX}/verify", verify_form),
        Route(f"{PREFIX}/verify", verify_run, methods=["POST"]),
        Route(f"{PREFIX}/export", export_get),
        Route(f"{PREFIX}/export/bundle", export_bundle, methods=["POST"]),
        Route(f"{PREFIX}/evidence/{{peer}}", evidence),
        Route(f"{PREFIX}/reconcile", reconcile_page, methods=["GET", "POST"]),
    ]
