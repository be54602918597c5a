"""`creditnode identity …` and `creditnode entity`: checking, resolving and reconciling."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from node.cli import choices
from node.cli.console import data_text
from node.cli.keys import (
    DaysOpt,
    HolderKeysOpt,
    OverlapOpt,
    PassphraseFilesOpt,
    rotate_pseudonym_key,
)
from node.cli.options import (
    PERSON_ID_HINT,
    FormatOpt,
    HomeOpt,
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
    from adapters.list_csv import Quarantined
    from node.identity.registry import Conflict, EntityView, Membership
    from node.identity.validate import CodeCheck
    from node.storage import Store
    from node.verification.standing import Unverified

identity_app = typer.Typer(help="Identifiers: batch checks, crosswalks, conflicts, this "
                           "node's pseudonym key.", no_args_is_help=True)  # fmt: skip
KNOWN_COLUMNS = ("统一社会信用代码", "证件号码", "组织机构代码", "注册号", "认定部门代码")


@identity_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8 or GB18030) with a header.")],
    column: Annotated[
        str | None,
        typer.Option(
            help="Column to check (default: the first known code column, else the first)."
        ),
    ] = None,
    fmt: FormatOpt = "table",
    strict: Annotated[
        bool,
        typer.Option(
            help="Reject pre-2016 codes that fail only the final check (lenient: warning)."
        ),
    ] = False,
) -> None:
    """Check a column of codes (USCC, organisation codes, registration numbers, resident IDs).

    A list CSV column (统一社会信用代码 and 认定部门代码: USCCs; 证件号码 and 法定代表人证件号码:
    resident IDs or residence permits) must hold its own kind, exactly as `import` decides.
    Exit 0 only if every row is valid (no warnings, no duplicates); 2 otherwise.
    """
    from adapters.list_csv import CsvError, sniff_encoding
    from node.identity.batch import check_values
    from node.identity.validate import COLUMN_EXPECTS

    if fmt not in ("table", "json"):
        raise InputError("--format must be table or json")
    try:
        encoding = sniff_encoding(file)
    except CsvError as exc:
        raise InputError(str(exc)) from None
    with file.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise InputError(f"{file}: is empty")
        if column is None:
            column = next((c for c in KNOWN_COLUMNS if c in header), header[0])
        if column not in header:
            raise InputError(f"{file}: no column {column!r} (columns: {', '.join(header)})")
        idx = header.index(column)
        values = [
            (line, rec[idx] if idx < len(rec) else "")
            for line, rec in enumerate(reader, start=2)
            if any(c.strip() for c in rec)
        ]
    report = check_values(values, strict=strict, expect=COLUMN_EXPECTS.get(column))
    if fmt == "json":
        emit_json(report.to_json())
    else:
        table = Table(title=plain(f"{file} [{column}]"), title_justify="left")
        for col in ("row", "input", "kind", "status", "reason"):
            table.add_column(col, overflow="fold")
        for r in report.rows:
            if r.status != "valid" or r.duplicate_of is not None:
                reason = r.reason + (
                    f" (duplicate of row {r.duplicate_of})" if r.duplicate_of is not None else ""
                )
                table.add_row(
                    str(r.row), data_text(r.input_display), r.kind, r.status, data_text(reason)
                )
        out.print(table)
        totals = report.to_json()
        out.print(
            " ".join(
                f"{k}={totals[k]}" for k in ("valid", "warning", "invalid", "duplicate", "damaged")
            )
        )
    if not report.all_valid:
        raise typer.Exit(InputError.exit_code)


@identity_app.command("crosswalk")
def crosswalk(
    home: HomeOpt,
    file: Annotated[
        Path,
        typer.Argument(help="Registry export: 统一社会信用代码 with 注册号 and/or 组织机构代码."),
    ],
) -> None:
    """Load a registry crosswalk of legacy identifiers to USCCs. Exit 2 if rows were
    quarantined (the rest are loaded)."""
    from adapters.list_csv import CsvError
    from node.home import load_home
    from node.identity.registry import load_crosswalk
    from node.storage import Store

    loaded = load_home(home)

    async def run() -> tuple[int, list[Quarantined]]:
        async with Store.opened(loaded.database_url) as store:
            return await load_crosswalk(store, file)

    try:
        n, quarantined = run_coro(run())
    except CsvError as exc:
        raise InputError(str(exc)) from None
    out.print(f"loaded {n} mappings from {file}; {len(quarantined)} rows quarantined")
    for q in quarantined[:20]:
        err.print(plain(f"{file}:{q.row}: {q.reason}"), soft_wrap=True)
    if quarantined:
        raise typer.Exit(InputError.exit_code)


@identity_app.command("conflicts")
def conflicts(home: HomeOpt) -> None:
    """Same USCC under different names, legacy codes naming two USCCs, invalid codes in
    peers' feeds (重错码 candidates)."""
    from node.home import load_home
    from node.identity.registry import find_conflicts
    from node.storage import Store

    loaded = load_home(home)

    async def run() -> list[Conflict]:
        async with Store.opened(loaded.database_url) as store:
            return await find_conflicts(store, loaded.settings.name)

    found = run_coro(run())
    table = Table(title=f"identity conflicts held by {loaded.identity.uri}", title_justify="left")
    for col in ("kind", "key", "detail"):
        table.add_column(col, overflow="fold")
    for c in found:
        table.add_row(c.kind, data_text(c.key), data_text(c.detail))
    if not found:
        table.add_row("(none)", "", "")
    out.print(table)


@identity_app.command("rotate-pseudonym-key")
def rotate_pseudonym_key_alias(
    home: HomeOpt,
    overlap_hours: OverlapOpt = 24.0,
    days: DaysOpt = choices.DEFAULT_DAYS,
    holder_key: HolderKeysOpt = None,
    passphrase_file: PassphraseFilesOpt = None,
) -> None:
    """Start a new generation of this node's pseudonym key and re-derive its own pseudonyms
    (the same as `creditnode keys rotate --role pseudonym`).

    Locally, from the IDs this origin holds: no ID leaves. A serving node evaluates with the new
    key within a second; partners see the new pseudonyms as updates in the feed and obtain new
    ones by asking again. With a root, root N+1 lists the new generation (published at once
    with enough --holder-key, else pending for `keys sign-root`).
    """
    quiet_logs()
    rotate_pseudonym_key(home, overlap_hours, days, holder_key, passphrase_file)


def entity_table(
    title: str, view: EntityView, unverified: dict[str, Unverified] | None = None
) -> Table:
    """The memberships; an origin whose log does not stand verified is marked UNVERIFIED."""
    from node.cli.lists import REASON, SEVERITY, TYPE

    table = Table(title=title, title_justify="left")
    for col in ("origin", "list", "type", "severity", "listed", "until", "status", "name"):
        table.add_column(col, overflow="fold")
    for m in view.memberships:
        status = "active" if m.status == 1 else f"removed ({REASON.get(m.removal_reason, '?')})"
        table.add_row(
            data_text(
                f"{m.origin} (UNVERIFIED)" if unverified and m.origin in unverified else m.origin
            ),
            data_text(m.list_name),
            TYPE.get(m.list_type, "?"),
            SEVERITY.get(m.severity, ""),
            data_text(m.listing_date),
            data_text(m.disclosure_end),
            status,
            data_text(m.subject_name or "(natural person)"),
        )
    if not view.memberships:
        table.add_row("(nothing held)", "", "", "", "", "", "", "")
    return table


def membership_json(m: Membership, unverified: dict[str, Unverified]) -> dict[str, Any]:
    """One membership as `entity --format json` prints it (docs/json.md)."""
    from node.cli.lists import REASON, SEVERITY, TYPE

    active = m.status == 1
    return {
        "origin": m.origin,
        "list": m.list_name,
        "type": TYPE.get(m.list_type, "?"),
        "severity": SEVERITY.get(m.severity, ""),
        "listed": m.listing_date,
        "until": m.disclosure_end,
        "status": "active" if active else "removed",
        "removal_reason": None if active else REASON.get(m.removal_reason, "?"),
        "subject": m.subject_name or None,
        "verified": m.origin not in unverified,
    }


def view_json(view: EntityView, unverified: dict[str, Unverified]) -> dict[str, Any]:
    return {
        "key": view.key,
        "names": {o: sorted(n) for o, n in sorted(view.names.items())},
        "memberships": [membership_json(m, unverified) for m in view.memberships],
    }


def _code_check(option: str) -> Callable[[str], CodeCheck]:
    """The check of the code *option* names: each code option is checked as that code (an
    organisation code given as --uscc is a mistake too)."""
    from node.identity.validate import check_org_code, check_reg_no, check_tax_no, check_uscc

    checks = {
        "--uscc": check_uscc,
        "--org-code": check_org_code,
        "--reg-no": check_reg_no,
        "--tax-no": check_tax_no,
    }
    return checks[option]


def entity(
    home: HomeOpt,
    uscc: Annotated[str | None, typer.Option(help="Unified social credit code.")] = None,
    org_code: Annotated[str | None, typer.Option(help="9-character organisation code.")] = None,
    reg_no: Annotated[str | None, typer.Option(help="15-digit registration number.")] = None,
    tax_no: Annotated[str | None, typer.Option(help="15-character tax registration no.")] = None,
    person_id: Annotated[str | None, person_id_opt("matched by pseudonym, never shown")] = None,
    name: Annotated[
        str | None, typer.Option(help="Name, when there is no code: candidates only.")
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            help="Why you look a person up (from the purpose catalogue): each peer evaluates "
            "its pseudonym of the person for this purpose, and records it."
        ),
    ] = None,
    timeout: Annotated[float, seconds_opt(help="Seconds to wait for each peer.")] = 10.0,
    fmt: FormatOpt = "table",
) -> None:
    """Everything this node knows about one entity, locally and from every mirrored peer.

    A person is found in each peer's mirrored feed by that peer's own pseudonym of it, which
    the peer evaluates obliviously (it never sees the ID) for --purpose.
    """
    from node.cli.query import check_person_id
    from node.home import load_home
    from node.identity.oblivious import pseudonyms_at
    from node.identity.pseudonym import own_pseudonym
    from node.identity.registry import entity_by_person, entity_by_uscc, resolve
    from node.identity.validate import INVALID, classify
    from node.peers.directory import PeerDirectory
    from node.policy.agreement import PURPOSES
    from node.storage import Store
    from node.verification.standing import unverified_logs

    given = [v for v in (uscc, org_code, reg_no, tax_no, person_id, name) if v]
    if len(given) != 1:
        raise InputError(
            "give exactly one of --uscc, --org-code, --reg-no, --tax-no, --person-id, --name"
        )
    codes = (("--uscc", uscc), ("--org-code", org_code), ("--reg-no", reg_no), ("--tax-no", tax_no))
    for option, code in codes:
        refuse_personal_code(option, code, hint="to look up a person, " + PERSON_ID_HINT)
        if code and (checked := _code_check(option)(code)).status == INVALID:
            # A mistyped code found nothing, and exit 0 read as "not listed"; the reason
            # says what is wrong (length, a character's position), not the code.
            raise InputError(f"{option}: {checked.reason}")
    if person_id and person_id != "-":
        read_person_id(person_id)  # refuses an ID given as an argument, with the hint
    if person_id and (purpose is None or purpose not in PURPOSES):
        # Asked before the ID is read: nobody types an ID only to hear the purpose is missing.
        raise InputError(
            "--purpose: name why you look the person up "
            f"(one of {', '.join(PURPOSES)}); each peer records it"
        )
    person_id = read_person_id(person_id)
    loaded = load_home(home)
    own = loaded.settings.name

    as_json = fmt == "json"
    doc: dict[str, Any] = {"lookup": "name" if name else "person" if person_id else "code",
                           "entities": [], "candidates": []}  # fmt: skip

    async def run() -> None:
        async with Store.opened(loaded.database_url) as store:
            if name:
                doc["candidates"] = await _by_name(store, name, show=not as_json)
            elif person_id:
                idno = check_person_id(person_id)
                assert purpose is not None
                found = {loaded.identity.uri: own_pseudonym(loaded.pseudonym_key, idno)}
                directory = PeerDirectory(store, loaded.settings.federation, loaded.tls.ca_pem)
                await directory.refresh()
                for peer in directory.peers():
                    try:
                        [found[peer.identity.uri]] = await pseudonyms_at(
                            peer, loaded.tls, [idno], purpose=purpose, timeout=timeout
                        )
                    except PeerError as exc:
                        err.print(f"warning: not matched at {plain(exc)}", soft_wrap=True)
                view = await entity_by_person(store, own, found)
                asked = ", ".join(sorted(u.rsplit("/", 1)[-1] for u in found))
                flagged = await unverified_logs(store, own)
                if as_json:
                    doc["matched_at"] = sorted(u.rsplit("/", 1)[-1] for u in found)
                    doc["entities"].append(view_json(view, flagged))
                    _warn_unverified(view, flagged)
                    return
                out.print(
                    entity_table(
                        f"person {classify(idno).display()} (matched at {asked})", view, flagged
                    )
                )
                _warn_unverified(view, flagged)
            else:
                text = uscc or org_code or reg_no or tax_no or ""
                res = await resolve(store, text)
                masked = res.check.display()  # what is left of a mistyped personal ID
                shown = masked if masked != res.check.input else res.check.normalised or text
                if as_json:
                    doc["resolved"] = {
                        "kind": str(res.check.kind),
                        "input": shown,
                        "status": str(res.check.status),
                        "reason": res.check.reason or None,
                        "how": res.how,
                    }
                for code in res.usccs if as_json else ():
                    view = await entity_by_uscc(store, own, code)
                    flagged = await unverified_logs(store, own)
                    doc["entities"].append(view_json(view, flagged))
                    _warn_unverified(view, flagged)
                if as_json:
                    return
                out.print(
                    plain(
                        f"{res.check.kind} {shown}: {res.check.status}"
                        + (f" ({res.check.reason})" if res.check.reason else "")
                        + f"; {res.how}"
                    )
                )
                for code in res.usccs:
                    view = await entity_by_uscc(store, own, code)
                    title = f"entity {code}"
                    if len(view.names) > 0:
                        title += " — names: " + "; ".join(
                            f"{o}: {'/'.join(sorted(n))}" for o, n in sorted(view.names.items())
                        )
                    flagged = await unverified_logs(store, own)
                    out.print(entity_table(plain(title), view, flagged))
                    _warn_unverified(view, flagged)

    run_coro(run())
    if as_json:
        emit_json(doc)


def _warn_unverified(view: EntityView, flagged: dict[str, Unverified]) -> None:
    for name in sorted({m.origin for m in view.memberships if m.origin in flagged}):
        err.print(
            f"warning: {plain(name)}: {plain(flagged[name].why())}: what it holds here is not "
            "verified "
            "(see `creditnode status`, `creditnode verify`)",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


async def _by_name(store: Store, query: str, *, show: bool = True) -> list[dict[str, Any]]:
    """Candidates for a name (printed as a table if *show*), as JSON objects."""
    from node.identity.name_search import search_names

    matches = await search_names(store, query)  # through the trigram index, never a scan
    found = [
        {"uscc": m.key, "name": m.name, "score": round(m.score, 4), "exact": m.exact}
        for m in matches
    ]
    if not show:
        return found
    table = Table(
        title=f"candidates for {plain(repr(query))} (a name alone never merges entities: check "
        "the code)",
        title_justify="left",
    )
    for col in ("USCC", "name", "score", "match"):
        table.add_column(col)
    for m in matches:
        table.add_row(
            data_text(m.key), data_text(m.name), f"{m.score:.2f}", "exact" if m.exact else "similar"
        )
    if not matches:
        table.add_row("(no candidates)", "", "", "")
    out.print(table)
    return found


__all__ = ["entity", "identity_app"]
