"""The operator's pages (role operator): peers and feeds, alerts with their evidence, keys,
policy, an import with its dry run, and the alliance drawn over time.

Every page calls what the CLI calls (``status``, ``evidence export``, ``keys list``, ``policy
check|explain``, ``import --dry-run`` then ``import``, ``status --html``): the console adds no
data path. The role check is the app's (node.console.roles), before any page here runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from node.console.app import ConsoleDeps, render, session_of
from node.console.ops_text import shown, tr
from node.errors import ConfigError, CreditnodeError, InputError
from node.feeds.health import FORKED, STALLED, TAMPERED
from node.text import plain

log = structlog.get_logger("creditnode.console")

PREFIX: Final = "/operator"
STATUS_TIMEOUT: Final = 3.0  # seconds per probe of this node's own listener
CHART_HOURS: Final = 24  # the history the charts plot (as `status --html`)
MAX_UPLOAD: Final = 8 * 1024 * 1024  # the app's body bound; a list file is far smaller
ALERT_STATES: Final = frozenset({FORKED, TAMPERED, STALLED})
PURPOSE_FEED: Final = "feed"
MAX_IMPORTS: Final = 20  # imports remembered per process (their dry runs and progress)


# ------------------------------------------------------------------------------- data (CLI's)


async def status_of(deps: ConsoleDeps) -> dict[str, Any]:
    """What `creditnode status --format json` prints for this node."""
    from node.status.collect import collect_status

    return shown(await collect_status(deps.home.paths.root, timeout=STATUS_TIMEOUT))


async def alliance(deps: ConsoleDeps, status: dict[str, Any]) -> dict[str, Any]:
    """The graph and charts of `status --html`, from the same pure functions."""
    from node.feeds.health import FEED_STATES
    from node.metrics.history import read_history
    from node.status_page import (
        FEED_COLOURS,
        FORM_COLOURS,
        OTHER_COLOUR,
        REACH_COLOURS,
        REACH_STATES,
        UNKNOWN,
        graph,
        peer_charts,
    )

    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=CHART_HOURS)
    history = await read_history(deps.store, start)
    return {
        "graph": graph(status),
        "charts": peer_charts([str(p["name"]) for p in status["peers"]], history, start, end),
        "feed_legend": [(s, FEED_COLOURS[s]) for s in (*FEED_STATES, UNKNOWN)],
        "reach_legend": [(s, REACH_COLOURS[s]) for s in REACH_STATES],
        "form_legend": [*FORM_COLOURS.items(), ("other", OTHER_COLOUR)],
    }


def alerts_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The feeds `status` marks forked, tampered or stalled (worst first), with evidence."""
    order = {FORKED: 0, TAMPERED: 1, STALLED: 2}
    found = [f for f in status["feeds"] if not f["own"] and f["state"] in ALERT_STATES]
    return sorted(found, key=lambda f: (order[f["state"]], f["origin"]))


async def evidence_document(deps: ConsoleDeps, peer: str) -> dict[str, Any]:
    """What `creditnode evidence export --peer PEER` writes."""
    from node.witness.export import export_evidence

    return await export_evidence(deps.store, peer, now=dt.datetime.now(dt.UTC))


def keys_of(deps: ConsoleDeps) -> tuple[list[dict[str, str]], str]:
    """`creditnode keys list`: each key's role, id, window and state; or why there are none."""
    from node.keys.ceremony import key_rows
    from node.keys.roles import short_id

    try:
        rows = key_rows(deps.home.paths.root, now=dt.datetime.now(dt.UTC))
    except (ConfigError, OSError) as exc:
        return [], plain(str(exc))
    found = [
        {"role": r.role, "id": short_id(r.keyid), "holder": r.name, "window": r.window,
         "state": r.state}
        for r in rows
    ]  # fmt: skip
    return shown(found), ""


def policy_of(deps: ConsoleDeps, peer: str | None, purpose: str | None) -> dict[str, Any]:
    """`policy check` (problems and agreements) and, for a peer and purpose, `policy explain`
    as its JSON form says it."""
    from node.policy.home import explain, read_agreements

    root = deps.home.paths.root
    try:
        loaded = read_agreements(root)
    except InputError as exc:
        return {"problems": [plain(str(exc))], "agreements": [], "explain": None}
    agreements = [
        {"id": a.id, "version": a.version, "peers": ", ".join(sorted(a.peers)),
         "purposes": ", ".join(sorted(a.purposes)), "rules": len(a.rules)}
        for a in loaded.agreements
    ]  # fmt: skip
    explained = None
    if peer and purpose:
        threshold = deps.home.settings.reidentification_threshold
        found = explain(loaded, peer, purpose, threshold)
        decision = found.decision
        explained = {
            "peer": peer,
            "purpose": purpose,
            "refused": found.refused,
            "reason": found.head.removeprefix("refused: ") if found.refused else "",
            "agreement": ""
            if found.refused
            else f"{decision.agreement_id} v{decision.agreement_version}",
            "fields": found.fields,
        }
    return shown({"problems": list(loaded.problems), "agreements": agreements,
                  "explain": explained})  # fmt: skip


def purposes() -> list[str]:
    from node.policy.agreement import PURPOSES

    return [*PURPOSES, PURPOSE_FEED]


# ------------------------------------------------------------------------------- imports


@dataclass
class ImportJob:
    """One import through the console: the uploaded file, its dry run, then its progress."""

    token: str
    path: Path
    list_code: str
    file_name: str
    plan: dict[str, Any] = field(default_factory=dict)
    state: str = "planned"  # planned | running | done | failed
    done: int = 0
    total: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    task: asyncio.Task[None] | None = None


def summary_json(summary: Any) -> dict[str, Any]:
    """An ImportSummary as the pages show it (the CLI's table, diff and quarantine lines)."""
    return shown({
        "list": f"{summary.list_name} ({summary.list_code})",
        "counts": [
            ("read", summary.read), ("added", summary.added), ("updated", summary.updated),
            ("removed", summary.removed), ("unchanged", summary.unchanged),
            ("expired", summary.expired), ("withheld", summary.withheld),
            ("quarantined", len(summary.quarantined)), ("log size", summary.size),
        ],
        "changes": [
            {"action": c.action, "key": c.key, "why": c.why} for c in summary.changes
        ],
        "quarantined": [{"row": q.row, "reason": q.reason} for q in summary.quarantined],
        "stated_removals": summary.stated_removals,
        "refused": summary.refused,
    })  # fmt: skip


class Imports:
    """The imports of this console process, by an unguessable token (never a file name)."""

    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.jobs: dict[str, ImportJob] = {}
        self.dir = deps.home.paths.root / "console-imports"

    def _spec_and_measures(self, list_code: str) -> tuple[Any, Any]:
        from node.feeds.home_catalogues import list_catalogue, measure_catalogue

        spec = list_catalogue(self.deps.home).resolve(list_code)
        return spec, measure_catalogue(self.deps.home)

    def lists(self) -> list[tuple[str, str]]:
        from node.feeds.home_catalogues import list_catalogue

        return [(s.code, s.name) for s in list_catalogue(self.deps.home).lists]

    async def plan(self, list_code: str, upload: UploadFile) -> ImportJob:
        """Keep the upload privately and dry-run it (`import --dry-run`)."""
        spec, measures = self._spec_and_measures(list_code)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        token = secrets.token_urlsafe(16)
        path = self.dir / f"{token}.csv"
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise InputError("the file is larger than the console accepts")
        path.touch(mode=0o600)
        path.write_bytes(data)
        job = ImportJob(token, path, spec.code, plain(Path(upload.filename or "upload").name))
        try:
            summary = await self._run(job, spec, measures, dry_run=True)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        job.plan = summary_json(summary)
        self._keep(job)
        return job

    def _keep(self, job: ImportJob) -> None:
        self.jobs[job.token] = job
        # The oldest are forgotten (a running import is kept until it ends).
        idle = [t for t, j in self.jobs.items() if j.state != "running"]
        for old in idle[: max(0, len(self.jobs) - MAX_IMPORTS)]:
            self.jobs.pop(old).path.unlink(missing_ok=True)

    async def _run(
        self, job: ImportJob, spec: Any, measures: Any, *, dry_run: bool, confirm: int | None = None
    ) -> Any:
        from node.feeds.importer import import_list

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        node = self.deps.node
        if node is None:
            raise InputError("no running node to import into")
        return await import_list(
            node.publisher, job.path, spec, pseudonym_key=self.deps.home.pseudonym_key,
            dry_run=dry_run, confirm_removals=confirm, progress=progress, measures=measures,
        )  # fmt: skip

    def confirm(self, token: str) -> ImportJob:
        """Start the planned import (`import`, confirming the dry run's removals)."""
        job = self.jobs.get(token)
        if job is None or job.state != "planned":
            raise InputError("no such planned import (plan it again)")
        if job.plan["refused"]:
            raise InputError("the dry run refuses this import")
        spec, measures = self._spec_and_measures(job.list_code)
        job.state = "running"

        async def run() -> None:
            try:
                summary = await self._run(
                    job, spec, measures, dry_run=False, confirm=job.plan["stated_removals"]
                )
                job.result = summary_json(summary)
                job.state = "done"
            except CreditnodeError as exc:
                job.error, job.state = plain(str(exc)), "failed"
            except Exception:  # shown as failed; the node's log has the trace
                log.exception("console import failed", list=job.list_code)
                job.error, job.state = "the import failed (see the node's log)", "failed"
            finally:
                job.path.unlink(missing_ok=True)

        job.task = asyncio.get_running_loop().create_task(run(), name="console import")
        return job


# ------------------------------------------------------------------------------- pages


def page(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """The app's render, with this section's strings (``tr``) in the session's language."""
    lang = session_of(request).lang
    return render(request, template, {"tr": partial(tr, lang), **(context or {})}, status)


def routes(deps: ConsoleDeps) -> list[BaseRoute]:
    """The operator section's routes (under /operator)."""
    imports = Imports(deps)

    async def overview(request: Request) -> Response:
        status = await status_of(deps)
        return page(
            request,
            "operator/overview.html",
            {"status": status, "alerts": alerts_of(status), **await alliance(deps, status)},
        )

    async def alerts(request: Request) -> Response:
        status = await status_of(deps)
        return page(request, "operator/alerts.html", {"alerts": alerts_of(status)})

    async def evidence(request: Request) -> Response:
        peer = request.path_params["peer"]
        try:
            doc = await evidence_document(deps, peer)
        except InputError as exc:
            return page(request, "operator/message.html", {"message": shown(str(exc))}, 404)
        body = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        name = f"evidence-{file_part(peer)}.json"
        return Response(
            body,
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def keys(request: Request) -> Response:
        status = await status_of(deps)
        rows, problem = keys_of(deps)
        return page(
            request,
            "operator/keys.html",
            {
                "keys": rows,
                "keys_problem": problem,
                "warnings": status["warnings"],
                "certificates": status["certificates"],
                "roots": status["roots"],
            },
        )

    async def policy(request: Request) -> Response:
        peer = request.query_params.get("peer") or None
        purpose = request.query_params.get("purpose") or None
        status = await status_of(deps)
        peers = [str(p["name"]) for p in status["peers"]]
        if peer is not None and peer not in peers:
            peer = None
        if purpose is not None and purpose not in purposes():
            purpose = None
        return page(
            request,
            "operator/policy.html",
            {"peers": peers, "purposes": purposes(), "peer": peer or "", "purpose": purpose or "",
             **policy_of(deps, peer, purpose)},
        )  # fmt: skip

    async def import_form(request: Request) -> Response:
        return page(request, "operator/import.html", {"lists": imports.lists(), "error": ""})

    async def import_plan(request: Request) -> Response:
        async with request.form() as form:  # a file part is spooled, bounded by the app
            upload = form.get("file")
            list_code = str(form.get("list", ""))
            if not isinstance(upload, UploadFile) or not upload.filename:
                return page(
                    request, "operator/import.html",
                    {"lists": imports.lists(), "error": "choose a list file"}, 400,
                )  # fmt: skip
            try:
                job = await imports.plan(list_code, upload)
            except CreditnodeError as exc:
                return page(
                    request, "operator/import.html",
                    {"lists": imports.lists(), "error": shown(str(exc))}, 400,
                )  # fmt: skip
        return page(request, "operator/import_plan.html", {"job": job})

    async def import_confirm(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        try:
            imports.confirm(token)
        except InputError as exc:
            return page(request, "operator/message.html", {"message": shown(str(exc))}, 409)
        return RedirectResponse(f"{PREFIX}/import/{token}", status_code=303)

    async def import_progress(request: Request) -> Response:
        job = imports.jobs.get(request.path_params["token"])
        if job is None or job.state == "planned":
            return page(request, "operator/message.html", {"message": "no such import"}, 404)
        return page(request, "operator/import_progress.html", {"job": job})

    return [
        Route(PREFIX, overview),
        Route(f"{PREFIX}/alerts", alerts),
        Route(f"{PREFIX}/evidence/{{peer}}", evidence),
        Route(f"{PREFIX}/keys", keys),
        Route(f"{PREFIX}/policy", policy),
        Route(f"{PREFIX}/import", import_form),
        Route(f"{PREFIX}/import", import_plan, methods=["POST"]),
        Route(f"{PREFIX}/import/confirm", import_confirm, methods=["POST"]),
        Route(f"{PREFIX}/import/{{token}}", import_progress),
    ]


def file_part(name: str) -> str:
    """A name as a safe part of a download's file name."""
    kept = "".join(c for c in name if c.isascii() and (c.isalnum() or c in "-_"))
    return kept[:60] or "peer"
