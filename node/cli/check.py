"""``creditnode check``: an officer's federated credit check through their own node.

The officer holds a PKCS#12 credential (``creditnode officer add``) and talks only to their
own city's node, on its officer listener; the node asks every partner in parallel and answers
with one consolidated view and every signed report. Exit codes (for scripts):

    0 clear  10 red-listed  11 black-listed  12 unknown  13 partial

(and, as every command: 2 bad input, 4 node unreachable or refused).
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from node.api import officers
from node.cli.console import data_text
from node.cli.options import (
    PERSON_ID_HINT,
    FormatOpt,
    count_opt,
    err,
    out,
    person_id_opt,
    quiet_logs,
    read_person_id,
    refuse_personal_code,
    run_coro,
    seconds_opt,
)
from node.cli.render import emit_json
from node.errors import InputError, PeerError
from node.text import plain

if TYPE_CHECKING:
    from keys import OfficerCredential

EXIT_CLEAR = 0
EXIT_RED = 10
EXIT_BLACK = 11
EXIT_UNKNOWN = 12
EXIT_PARTIAL = 13
EXIT_CODES = {
    officers.CHECK_OUTCOME_CLEAR: EXIT_CLEAR,
    officers.CHECK_OUTCOME_RED_LISTED: EXIT_RED,
    officers.CHECK_OUTCOME_BLACK_LISTED: EXIT_BLACK,
    officers.CHECK_OUTCOME_UNKNOWN: EXIT_UNKNOWN,
    officers.CHECK_OUTCOME_PARTIAL: EXIT_PARTIAL,
}
VERDICTS = {
    officers.CHECK_OUTCOME_CLEAR: "clear",
    officers.CHECK_OUTCOME_RED_LISTED: "red-listed",
    officers.CHECK_OUTCOME_BLACK_LISTED: "black-listed",
    officers.CHECK_OUTCOME_UNKNOWN: "unknown",
    officers.CHECK_OUTCOME_PARTIAL: "partial",
}
STATES = {
    officers.PARTNER_STATE_ANSWERED: "answered",
    officers.PARTNER_STATE_TIMED_OUT: "TIMED OUT",
    officers.PARTNER_STATE_REFUSED: "REFUSED",
    officers.PARTNER_STATE_UNREACHABLE: "UNREACHABLE",
    officers.PARTNER_STATE_INVALID: "INVALID",
}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def load_credential(path: Path, passphrase_file: Path | None) -> OfficerCredential:
    """Open the PKCS#12 credential; the passphrase from the file, else a prompt (no echo)."""
    from keys import OfficerCredential

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"--officer: cannot read {path} ({exc.strerror})") from None
    if passphrase_file is not None:
        try:
            lines = passphrase_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise InputError(f"--passphrase-file: cannot read {passphrase_file}") from None
        phrase = lines[0].strip() if lines else ""
    elif sys.stdin is not None and sys.stdin.isatty():
        phrase = getpass.getpass(f"passphrase for {path.name}: ")
    else:
        raise InputError("--passphrase-file: needed when standard input is not a terminal")
    try:
        return OfficerCredential.from_pkcs12(data, phrase.encode("utf-8"))
    except ValueError as exc:
        raise InputError(f"--officer: {exc}") from None


def node_address(credential_path: Path, node: str | None) -> str:
    """--node, else ``node`` from the officer config written beside the credential."""
    if node:
        return node
    config = credential_path.with_suffix(".toml")
    try:
        value = tomllib.loads(config.read_text(encoding="utf-8")).get("node", "")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        value = ""
    if not isinstance(value, str) or not value or value.endswith(":0"):
        raise InputError(
            f"--node: give HOST:PORT of your node's officer listener ({config} has none)"
        )
    return value


async def call_check(
    credential: OfficerCredential, node: str, request: officers.CheckRequest, timeout: float
) -> officers.CheckResponse:
    import grpc

    from node.api import officers_rpc

    cert, key, ca = credential.pem()
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    target = credential.identity.node.dns_name  # the own node's certificate, whatever the address
    options = [("grpc.ssl_target_name_override", target)]
    async with grpc.aio.secure_channel(node, creds, options) as channel:
        try:
            return await officers_rpc.OfficerServiceStub(channel).Check(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            details = (exc.details() or "").splitlines()[0] if exc.details() else ""
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InputError(details) from None
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PeerError(f"your node refused: {details}") from None
            raise PeerError(f"your node at {node}: {exc.code().name.lower()} {details}") from None


def _measures(item: officers.CheckItem) -> str:
    return "; ".join(
        f"{m.code} ({'mandatory' if m.mandatory else 'recommended'})" for m in item.measures
    )


def view_table(resp: officers.CheckResponse) -> Table:
    subject = resp.subject_name or resp.uscc or "the person asked about"
    if resp.uscc and resp.subject_name:
        subject = f"{resp.subject_name} ({resp.uscc})"
    table = Table(title=plain(f"credit check: {subject}"), title_justify="left", show_lines=True)
    for col in ("origin", "section", "list", "measures", "reason", "legal basis", "decision",
                "authority"):  # fmt: skip
        table.add_column(col, overflow="fold")
    for i in resp.items:
        table.add_row(*map(data_text, (
            i.origin_city or i.origin, i.section, i.list_name, _measures(i) or "-", i.reason,
            i.legal_basis, i.decision_doc_no, i.authority_name,
        )))  # fmt: skip
    if not resp.items:
        table.add_row("(no items)", "", "", "", "", "", "", "")
    return table


def partners_table(resp: officers.CheckResponse) -> Table:
    table = Table(title="reports", title_justify="left")
    for col in ("node", "state", "seconds", "report number / why not"):
        table.add_column(col, overflow="fold")
    for r in resp.reports:
        table.add_row(*map(data_text, (
            r.partner, STATES.get(r.state, "?"), f"{r.seconds:.3f}",
            r.report.report_number if r.state == officers.PARTNER_STATE_ANSWERED else r.detail,
        )))  # fmt: skip
    return table


def candidates_table(resp: officers.CheckResponse) -> Table:
    table = Table(title="candidates (check again with --pick N or --uscc)", title_justify="left")
    for col in ("N", "USCC", "name", "known at"):
        table.add_column(col)
    for n, c in enumerate(resp.candidates, 1):
        table.add_row(*map(data_text, (n, c.uscc, c.subject_name, ", ".join(c.origins))))
    if not resp.candidates:
        table.add_row("", "(no subject matches)", "", "")
    return table


def as_json(resp: officers.CheckResponse, saved: list[str]) -> dict[str, Any]:
    return {
        "verdict": VERDICTS.get(resp.outcome, "unknown"),
        "exchange": resp.exchange_id,
        "subject": {"name": resp.subject_name, "uscc": resp.uscc},
        "items": [
            {"origin": i.origin, "origin_city": i.origin_city, "section": i.section,
             "list_type": i.list_type, "list": i.list_name,
             "measures": [{"code": m.code, "mandatory": m.mandatory} for m in i.measures],
             "reason": i.reason, "legal_basis": i.legal_basis,
             "decision_doc_no": i.decision_doc_no, "authority": i.authority_name,
             "listing_date": i.listing_date, "entry_id": i.entry_id,
             "reported_by": i.reported_by}
            for i in resp.items
        ],
        "reports": [
            {"node": r.partner, "state": STATES.get(r.state, "?").lower(),
             "seconds": round(r.seconds, 4), "report_number": r.report.report_number,
             "detail": r.detail}
            for r in resp.reports
        ],
        "candidates": [
            {"uscc": c.uscc, "name": c.subject_name, "origins": list(c.origins)}
            for c in resp.candidates
        ],
        "saved": saved,
        "audit_index": resp.audit_index,
    }  # fmt: skip


def save_reports(resp: officers.CheckResponse, directory: Path) -> list[str]:
    """Every signed report as its self-contained file (``creditnode report verify FILE``)."""
    from node.reports.envelope import report_file

    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for r in resp.reports:
        if r.state != officers.PARTNER_STATE_ANSWERED or not r.report.envelope:
            continue
        number = r.report.report_number
        # The number comes from a peer: a file name only if it is a plain one.
        stem = number if _SAFE_NAME.fullmatch(number) else f"{r.partner}-{resp.exchange_id}"
        path = directory / f"{stem}.json"
        roots = {c.origin: [bytes(v) for v in c.versions] for c in r.report.roots}
        path.write_bytes(report_file(bytes(r.report.envelope), roots))
        saved.append(str(path))
    return saved


def check_command(
    officer: Annotated[Path, typer.Option("--officer", help="Your PKCS#12 credential.")],
    purpose: Annotated[str, typer.Option(help="Purpose from the alliance catalogue.")],
    matter: Annotated[str, typer.Option(help="Case or matter number.")],
    uscc: Annotated[str | None, typer.Option(help="Organisation's USCC.")] = None,
    name: Annotated[str | None, typer.Option(help="Organisation's name: lists candidates.")] = None,
    person_id: Annotated[str | None, person_id_opt("sent to your own node only")] = None,
    pick: Annotated[
        int | None,
        count_opt(help="With --name: check candidate N of the list.", minimum=1, maximum=1000),
    ] = None,
    node: Annotated[
        str | None,
        typer.Option(
            help="Your node's officer listener HOST:PORT (default: "
            "the .toml beside the credential)."
        ),
    ] = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="Passphrase, first line.")] = None,
    fmt: FormatOpt = "table",
    save: Annotated[Path | None, typer.Option(help="Save every signed report here.")] = None,
    timeout: Annotated[float, seconds_opt(help="Seconds to wait for your node.")] = 15.0,
) -> None:
    """Check a subject across the alliance through your own node; print one consolidated
    view and save every signed report.

    Exit codes: 0 clear, 10 red-listed, 11 black-listed (by any origin, even if a partner did
    not answer), 12 unknown (a name with no candidate, or candidates listed and none picked),
    13 partial (a partner timed out, refused or was unreachable, and no answer black-lists
    the subject); 2 bad input, 4 your node unreachable or refusing.
    """

    quiet_logs()
    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    # An ID given as an organisation's code or name travels no further than this line.
    refuse_personal_code("--uscc", uscc, hint=PERSON_ID_HINT)
    refuse_personal_code("--name", name, hint=PERSON_ID_HINT)
    person = read_person_id(person_id)
    if sum(v is not None for v in (uscc, name, person)) != 1:
        raise InputError("give exactly one of --uscc, --name, --person-id -")
    if pick is not None and name is None:
        raise InputError("--pick goes with --name")
    credential = load_credential(officer, passphrase_file)
    address = node_address(officer, node)
    request = officers.CheckRequest(purpose=purpose, matter=matter)
    if uscc is not None:
        request.uscc = uscc
    elif name is not None:
        request.name = name
    else:
        assert person is not None
        request.person_id = person
    started = dt.datetime.now(dt.UTC)
    resp = run_coro(call_check(credential, address, request, timeout))
    if name is not None and pick is not None:
        if pick > len(resp.candidates):
            raise InputError(f"--pick: there are {len(resp.candidates)} candidates")
        request = officers.CheckRequest(
            purpose=purpose, matter=matter, uscc=resp.candidates[pick - 1].uscc
        )
        resp = run_coro(call_check(credential, address, request, timeout))
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    saved = save_reports(resp, save) if save is not None else []
    if fmt == "json":
        emit_json(as_json(resp, saved))
    else:
        # Every value comes from a report: text, never markup.
        if request.WhichOneof("subject") == "name":
            out.print(candidates_table(resp), markup=False, highlight=False)
        else:
            out.print(view_table(resp), markup=False, highlight=False)
        out.print(partners_table(resp), markup=False, highlight=False)
        for path in saved:
            out.print(f"saved {path}", markup=False, highlight=False)
        verdict = VERDICTS.get(resp.outcome, "unknown")
        out.print(
            f"verdict: {verdict} (exchange {resp.exchange_id}, {elapsed:.2f} s)",
            markup=False, highlight=False,
        )  # fmt: skip
    if saved and fmt == "table":
        err.print("verify offline: creditnode report verify FILE", highlight=False)
    raise typer.Exit(EXIT_CODES.get(resp.outcome, EXIT_UNKNOWN))
