"""The ``creditnode`` command. Commands are sync and run their async work with asyncio.run.

Exit codes: 0 ok, 1 internal error, 2 bad input, 3 node home or configuration, 4 peer or
network (unreachable, refused, wrong certificate, not serving), 5 enrollment, 6 storage,
7 verification (a peer's feed or this node's stored data does not verify), 130 interrupted;
`check` adds its verdicts: 10 red-listed, 11 black-listed, 12 unknown, 13 partial.
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.main import get_command_name
from typer.models import CommandInfo, TyperInfo

from node import PROTOCOL_VERSION, __version__
from node.cli import choices
from node.cli.actions import actions_command, respond_command
from node.cli.audit import audit_app, record_commands, verify_bundle_command
from node.cli.ca import ca_app
from node.cli.check import check_command
from node.cli.evidence import evidence_app
from node.cli.identity import entity, identity_app
from node.cli.keys import keys_app
from node.cli.measures import load_measures, measures_app
from node.cli.objection import objection_app
from node.cli.officer import officer_app
from node.cli.options import (
    PERSON_ID_HINT,
    FormatOpt,
    HomeOpt,
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
from node.cli.peer import peer_app
from node.cli.policy import policy_app
from node.cli.remove import home_catalogue, remove, stated_removal
from node.cli.render import emit_json
from node.cli.report import report_app
from node.cli.stats import stats_app
from node.errors import CreditnodeError, InputError, PeerError
from node.text import plain

T = TypeVar("T")

# GRPC_VERBOSITY is set in node/cli/__init__.py, before anything imports grpc.

HELP_OPTIONS = ("-h", "--help")

app = typer.Typer(
    name="creditnode",
    help="Cross-region credit-sharing node.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": list(HELP_OPTIONS)},  # inherited by every command
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(peer_app, name="peer")
app.add_typer(audit_app, name="audit")
app.command("verify-bundle")(verify_bundle_command)
app.add_typer(ca_app, name="ca")
app.add_typer(keys_app, name="keys")
record_commands(
    keys_app, "keys", "key_operation",
    {"root-init", "publish-root", "rotate", "renew", "revoke", "prune"},
)  # fmt: skip
app.add_typer(evidence_app, name="evidence")

app.add_typer(identity_app, name="identity")
app.add_typer(policy_app, name="policy")
app.command("entity")(entity)
app.command("remove")(remove)
app.add_typer(officer_app, name="officer")
app.add_typer(objection_app, name="objection")
app.command("check")(check_command)
app.command("respond")(respond_command)
app.command("actions")(actions_command)
app.add_typer(report_app, name="report")
app.add_typer(measures_app, name="measures")
app.add_typer(stats_app, name="stats")


def _version(value: bool) -> None:
    # Eager: answered before Click insists on a command.
    if value:
        from node import native

        out.print(f"creditnode {__version__} (protocol {PROTOCOL_VERSION}; {native.summary()})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print versions and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Cross-region credit-sharing node."""


@app.command()
def init(
    home: HomeOpt,
    name: Annotated[str, typer.Option(help="Node name, a DNS label (e.g. jinan).")],
    region: Annotated[str, typer.Option(help="GB/T 2260 division code (e.g. 370100).")],
    federation: Annotated[
        str | None, typer.Option(help="Federation name (default: the CA's).")
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            help="Federation CA directory to certify this node; "
            "without it the node creates its own CA."
        ),
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on.")] = "127.0.0.1:7443",
    advertise: Annotated[str, typer.Option(help="HOST:PORT partners dial (default: listen).")] = "",
    database: Annotated[str, typer.Option(help="Database URL (default: SQLite in the home).")] = "",
) -> None:
    """Create a node home: keys, certificate, configuration and database."""
    from keys import certificate_fingerprint
    from node.home import init_home, load_home
    from node.regions import lookup_region
    from node.storage import Store

    existed = home.exists()
    try:
        init_home(
            home,
            name=name,
            region=region,
            federation=federation,
            ca_dir=ca,
            listen=listen,
            advertise=advertise,
            database_url=database,
        )
        loaded = load_home(home)

        async def migrate() -> str:
            async with Store.opened(loaded.database_url) as store:
                return store.backend

        backend = run_coro(migrate())
    except CreditnodeError:
        if not existed:
            shutil.rmtree(home, ignore_errors=True)
        raise
    region_info = lookup_region(region)
    table = Table(show_header=False, title=f"node home {home}", title_justify="left")
    table.add_row("identity", loaded.identity.uri)
    table.add_row("region", f"{region} {region_info.name if region_info else ''}")
    table.add_row("listen", loaded.settings.listen)
    table.add_row("database", backend)
    table.add_row("certificate", certificate_fingerprint(loaded.tls.certificate))
    table.add_row("feed key", loaded.signing_key.verifying_key.to_text())
    out.print(table)


@app.command()
def serve(home: HomeOpt) -> None:
    """Run the node until SIGTERM or SIGINT."""
    import gc

    from node.home import load_home
    from node.logs import configure_logging
    from node.runtime import Node

    settings = load_home(home).settings
    configure_logging(settings.log_level, Path(settings.log_file) if settings.log_file else None)

    async def run() -> None:
        node = await Node.open(home)
        try:
            await node.start()
        except CreditnodeError:
            await node.store.close()
            raise
        # The running node's own start-up (its store, caches, services) lives until it stops:
        # out of the collector's full passes too (run_coro froze what came before).
        gc.freeze()
        await node.serve_until_signal()

    run_coro(run())


@app.command()
def status(
    home: HomeOpt,
    peer: Annotated[str | None, typer.Option(help="Ask this enrolled peer, live.")] = None,
    timeout: Annotated[float, seconds_opt(help="Seconds to wait for an answer.")] = 5.0,
    fmt: FormatOpt = "table",
    receipts: Annotated[
        bool,
        typer.Option(
            "--receipts",
            help="Ask each peer for its receipts: how far it has received this node's feed.",
        ),
    ] = False,
    leaf: Annotated[
        int | None,
        typer.Option(
            "--leaf", min=0, max=2**63 - 1, help="Whether each peer has this leaf of the own feed."
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            dir_okay=False,
            metavar="FILE",
            help="Write a self-contained HTML page instead: the alliance as a graph of nodes "
            "and feeds coloured by state, and each peer's feed lag and disclosures over time.",
        ),
    ] = None,
) -> None:
    """Show this node and its peers; with --peer, call that peer over mutual TLS.

    Exit 0 if the node (or the peer) answers, 4 if it does not.
    """
    from node.cli.status import node_status, remote_status

    quiet_logs()
    if peer is None:
        serving = run_coro(
            node_status(
                home, out, timeout=timeout, fmt=fmt, receipts=receipts, leaf=leaf, html=html
            )
        )
        if not serving:
            raise typer.Exit(PeerError.exit_code)
    else:
        if fmt != "table" or receipts or leaf is not None or html is not None:
            raise InputError(
                "--peer shows a table only (no --format json, --receipts, --leaf, --html)"
            )
        run_coro(remote_status(home, peer, out, timeout=timeout))


@app.command("import")
def import_(
    home: HomeOpt,
    list_ref: Annotated[
        str | None,
        typer.Option("--list", help="The list: its code or official name (catalogue)."),
    ] = None,
    record_class: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Instead of a list, a data class of the report: "
            + ", ".join(choices.RECORD_CLASSES)
            + ".",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Argument(help="Canonical list CSV (UTF-8 or GB18030); optional with --removals."),
    ] = None,
    full_export: Annotated[
        bool,
        typer.Option(
            "--full-export",
            help="The file is the whole list: entries missing from it are removed "
            "(needs a clean file and a stated removal).",
        ),
    ] = False,
    removal_reason: Annotated[
        str | None,
        typer.Option(
            help="Why entries missing from a full export (or rows of --removals without one) "
            "are removed: " + ", ".join(choices.STATED_REASONS) + "."
        ),
    ] = None,
    removal_date: Annotated[
        str | None, typer.Option(help="When those removals take effect (YYYY-MM-DD).")
    ] = None,
    removal_doc: Annotated[
        str | None, typer.Option(help="The document number deciding those removals.")
    ] = None,
    removals: Annotated[
        Path | None,
        typer.Option(
            help="CSV of entries to remove: 统一社会信用代码 or 证件号码, 认定文书号, and "
            "optionally 移出原因, 移出日期, 移出文书号."
        ),
    ] = None,
    max_removals: Annotated[
        int | None,
        count_opt(
            help="Refuse more removals than this (expiry aside; default: 5% of the list's "
            "active entries or 10, whichever is larger)."
        ),
    ] = None,
    confirm_removals: Annotated[
        int | None,
        count_opt(help="Accept exactly this many removals (the number --dry-run printed)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; append nothing.")
    ] = False,
    provenance: Annotated[str, typer.Option(help="authoritative or reference.")] = "authoritative",
) -> None:
    """Import a list file (or, with --class, a file of a report data class): append its adds
    and updates (and stated removals) to the feed.

    Without --full-export nothing is removed except entries past their 公示截止日期 (expiry)
    and those --removals names. Exit 0 if every row was imported, 2 if some were quarantined
    (the rest are imported) or the import was refused (nothing appended).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from node.cli.records import check_class_import
    from node.feeds.importer import PROVENANCES, STATED_REASONS, import_list
    from node.feeds.publisher import Publisher
    from node.feeds.records import import_records
    from node.home import load_home
    from node.keys.signers import FeedSigners
    from node.storage import Store

    quiet_logs()
    if provenance not in PROVENANCES:
        raise InputError(f"--provenance must be one of {', '.join(PROVENANCES)}")
    if (list_ref is None) == (record_class is None):
        raise InputError("give exactly one of --list and --class")
    if record_class is not None:
        check_class_import(record_class, file, removals)
    if file is None and removals is None:
        raise InputError("give the list file, or --removals")
    if full_export and file is None:
        raise InputError("--full-export needs the exported file")
    removal = stated_removal(
        removal_reason, removal_date, removal_doc, allowed=STATED_REASONS, required=False
    )
    if removal is not None and not (full_export or removals):
        raise InputError(
            "--removal-reason/--removal-date/--removal-doc need --full-export or --removals"
        )
    for name, value in (("--max-removals", max_removals), ("--confirm-removals", confirm_removals)):
        if value is not None and value < 0:
            raise InputError(f"{name} must not be negative")
    loaded = load_home(home)
    spec = home_catalogue(loaded).resolve(list_ref) if list_ref is not None else None
    # The measures catalogue in force at this home: rows are checked by it (fail closed).
    in_force = load_measures(home) if spec is not None else None

    async def run() -> Any:
        async with Store.opened(loaded.database_url) as store:
            publisher = await Publisher.open(
                store, loaded.identity.uri, FeedSigners.of_home(loaded)
            )
            if spec is None:
                assert record_class is not None
                assert file is not None
                return await import_records(
                    publisher, file, record_class, pseudonym_key=loaded.pseudonym_key,
                    provenance=PROVENANCES[provenance], full_export=full_export,
                    removal=removal, max_removals=max_removals,
                    confirm_removals=confirm_removals, dry_run=dry_run,
                )  # fmt: skip
            with Progress(
                # A file name is text, never markup.
                TextColumn("{task.description}", markup=False, style="progress.description"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                name = file.name if file is not None else "removals"
                task = bar.add_task(f"importing {plain(name)}", total=None)

                def report(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await import_list(
                    publisher,
                    file,
                    spec,
                    pseudonym_key=loaded.pseudonym_key,
                    provenance=PROVENANCES[provenance],
                    full_export=full_export,
                    removal=removal,
                    removals=removals,
                    max_removals=max_removals,
                    confirm_removals=confirm_removals,
                    dry_run=dry_run,
                    progress=report,
                    measures=in_force,
                )

    summary = run_coro(run())
    source = file if file is not None else removals
    table = Table(
        title=plain(
            f"{'dry run (nothing appended): ' if dry_run else ''}import {source} into "
            f"{summary.list_name} ({summary.list_code}"
            f"{', ' + summary.encoding if summary.encoding else ''})"
        ),
        title_justify="left",
    )
    columns = ("read", "added", "updated", "removed", "unchanged", "expired", "withheld",
               "quarantined", "log size")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(
        *(
            str(v)
            for v in (
                summary.read,
                summary.added,
                summary.updated,
                summary.removed,
                summary.unchanged,
                summary.expired,
                summary.withheld,
                len(summary.quarantined),
                summary.size,
            )
        )
    )
    out.print(table)
    if dry_run:
        for change in summary.changes:
            out.print(plain(change), soft_wrap=True)
        for q in summary.quarantined:
            out.print(plain(f"QUARANTINE {source}:{q.row}: {q.reason}"), markup=False,
                      soft_wrap=True)  # fmt: skip
        out.print(
            f"{summary.stated_removals} removals other than expiry "
            f"(confirm with --confirm-removals {summary.stated_removals})"
        )
        if summary.refused:
            raise InputError(f"the import would be refused: {summary.refused}")
    else:
        for q in summary.quarantined[:20]:  # each reason already names its column
            err.print(plain(f"{source}:{q.row}: {q.reason}"), markup=False,
                      soft_wrap=True)  # fmt: skip
        if len(summary.quarantined) > 20:
            err.print(
                f"... {len(summary.quarantined) - 20} more quarantined rows "
                "(all kept in the node's quarantine table)"
            )
    if summary.quarantined:
        raise typer.Exit(InputError.exit_code)


@app.command()
def sync(
    home: HomeOpt,
    peer: Annotated[str | None, typer.Option(help="Only this peer (default: every peer).")] = None,
    timeout: Annotated[
        float,
        seconds_opt(help="Seconds a peer may send nothing before it counts as unanswered."),
    ] = 600.0,
    disclose: Annotated[
        bool,
        typer.Option(
            "--disclose",
            help="Also ask each peer for the openings its agreement now grants of entries "
            "already held (after an agreement opened more), verified against the held leaves.",
        ),
    ] = False,
) -> None:
    """Catch up with peers' feeds once, verifying every checkpoint and leaf.

    Exit 0 if every peer synced, 4 if one was unreachable or refused, 7 if a feed failed
    verification (fork, rollback or tampering: evidence is kept, see `status`).
    """
    from node.cli.sync import sync_peers

    quiet_logs()
    code = run_coro(sync_peers(home, peer, timeout, out, err, disclose=disclose))
    if code:
        raise typer.Exit(code)


@app.command()
def verify(
    home: HomeOpt,
    fmt: FormatOpt = "table",
    rebuild_name_index: Annotated[
        bool,
        typer.Option(
            "--rebuild-name-index",
            help="First rebuild SQLite's name index from the list state (what a `names` "
            "finding asks for; the index holds nothing else, so nothing is lost).",
        ),
    ] = False,
) -> None:
    """Re-check everything this node stores: its own logs against their signed checkpoints
    leaf by leaf, every mirror against its origin's signed checkpoints, the list state and
    openings against the leaves.

    Names the first bad index or row of each log that fails. Exit 0 if everything verifies,
    7 on any finding.
    """
    from node.cli.verify import verify_home

    quiet_logs()
    code = run_coro(verify_home(home, out, fmt=fmt, rebuild_names=rebuild_name_index))
    if code:
        raise typer.Exit(code)


@app.command("query")
def query_(
    home: HomeOpt,
    peer: Annotated[str, typer.Argument(help="The enrolled peer to ask.")],
    purpose: Annotated[str, typer.Option(help="Why you ask (from the purpose catalogue).")],
    uscc: Annotated[str | None, typer.Option(help="Unified social credit code.")] = None,
    person_id: Annotated[
        str | None, person_id_opt("asked about by pseudonym, never sent in clear")
    ] = None,
    timeout: Annotated[float, seconds_opt(help="Seconds to wait for the answer.")] = 10.0,
    officer: Annotated[
        str, typer.Option(help="Who asks (recorded as a pseudonymous id, never the name).")
    ] = "",
    department: Annotated[str, typer.Option(help="The asking department's USCC.")] = "",
    matter: Annotated[str, typer.Option(help="The matter or case number asked for.")] = "",
    fmt: FormatOpt = "table",
) -> None:
    """Ask a peer what its own lists hold about one subject, for a declared purpose.

    Personal fields come in the form the peer's agreement with this node gives for the purpose
    (the peer records each disclosure). Exit 0 with an answer, 2 for bad options, 4 if the peer
    is unreachable or refuses.
    """
    from node.cli.query import answer_json, ask_peer, check_person_id, lookup_request, print_answer

    quiet_logs()
    refuse_personal_code("--uscc", uscc, hint="to ask about a person, " + PERSON_ID_HINT)
    person_id = read_person_id(person_id)
    request = lookup_request(purpose, uscc=uscc, person_id=person_id)
    if person_id is not None:
        check_person_id(person_id)  # a bad ID is refused before anything is asked
    asked = run_coro(
        ask_peer(
            home, peer, request, person_id=person_id, timeout=timeout,
            officer=officer, department=department, matter=matter,
        )
    )  # fmt: skip
    if fmt == "json":
        emit_json(answer_json(peer, request, asked))
        return
    print_answer(out, peer, request, asked.response)
    out.print(
        f"exchange {asked.exchange}: recorded here as audit #{asked.our_index}, "
        f"at {peer} as audit #{asked.their_index}",
        markup=False, highlight=False,
    )  # fmt: skip


@app.command("lists")
def lists_(
    home: HomeOpt,
    origin: Annotated[str | None, typer.Option(help="Only this origin node.")] = None,
    list_name: Annotated[str | None, typer.Option("--list", help="Only this list.")] = None,
    uscc: Annotated[str | None, typer.Option(help="Only this USCC.")] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed entries.")] = False,
    limit: Annotated[int, count_opt(help="Show at most this many rows (0: all).")] = 50,
    offset: Annotated[int, count_opt(help="Skip this many rows first.")] = 0,
    after: Annotated[
        str | None,
        typer.Option(help="Start after the row with this cursor (from --format json)."),
    ] = None,
    fmt: FormatOpt = "table",
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Exit 0 even if rows of a tampered or forked feed, or of a log with standing "
            "`verify` findings, are shown (they are still marked UNVERIFIED).",
        ),
    ] = False,
    measures: Annotated[
        bool,
        typer.Option(
            "--measures",
            help="Add each entry's measures (name and category from the measures catalogue "
            "it cites) and that catalogue's version.",
        ),
    ] = False,
) -> None:
    """Current state of every list this node holds (its own and its peers'), removals applied.

    Rows of a log that does not stand verified are marked UNVERIFIED with a warning; exit 7
    then, unless --allow-unverified.
    """
    from node.cli.lists import show_lists

    quiet_logs()
    refuse_personal_code("--uscc", uscc, hint="persons are looked up with `entity --person-id -`")
    code = run_coro(
        show_lists(
            home,
            out,
            origin=origin,
            list_name=list_name,
            uscc=uscc,
            include_removed=removed,
            limit=limit,
            err=err,
            allow_unverified=allow_unverified,
            measures=measures,
            offset=offset,
            after=after,
            fmt=fmt,
        )
    )
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to put the three homes (default: a temporary directory)."
        ),
    ] = None,
    seconds: Annotated[
        float | None,
        seconds_opt(
            help="Stop after this many seconds (default: run until Ctrl-C).", maximum=7 * 86_400
        ),
    ] = None,
) -> None:
    """Start a three-city Yellow River federation on loopback and show each node's peers."""
    from node.cli.demo import run_demo

    run_coro(run_demo(directory, seconds, out))


def branch(argv: list[str]) -> typer.Typer:
    """The app cut down to the one top-level command *argv* runs, if it names one.

    Typer builds the whole command tree on every run, evaluating the signature of each of some
    70 commands (about 50 ms of start-up); a run needs only its own branch. Anything else keeps
    the whole tree: no arguments or a -h before the command (the listing), a name that is not
    a command (the error suggests the near ones), and shell completion (which passes none).
    """
    for arg in argv:
        if arg in HELP_OPTIONS:
            return app
        if not arg.startswith("-"):
            commands = [
                c
                for c in app.registered_commands
                if (c.name or get_command_name(getattr(c.callback, "__name__", ""))) == arg
            ]
            groups = [g for g in app.registered_groups if g.name == arg]
            if not commands and not groups:
                return app
            return _cut(commands, groups)
    return _cut([], []) if argv else app  # options only (--version): no command is needed


def _cut(commands: list[CommandInfo], groups: list[TyperInfo]) -> typer.Typer:
    cut = copy.copy(app)  # shallow: the commands and groups themselves are shared
    cut.registered_commands = commands
    cut.registered_groups = groups
    return cut


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear line and a meaningful exit code for every user mistake."""
    try:
        # Not standalone: a usage error comes back here and becomes one `error:` line (Typer
        # itself would print the usage block, a hint and the message).
        rv = branch(sys.argv[1:] if argv is None else argv)(
            args=argv, prog_name="creditnode", standalone_mode=False
        )
    except NoArgsIsHelpError as exc:
        exc.show()  # `creditnode` alone, or a group alone: the help is the answer
        return exc.exit_code
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "creditnode"
        _fail(f"{where}: {exc.format_message()} (see {where} -h)")
        return exc.exit_code
    except ClickException as exc:
        _fail(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        _fail("aborted")
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CreditnodeError as exc:
        _fail(_said(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or _said(exc)}")
        return 3
    return rv if isinstance(rv, int) else 0  # an Exit's code; a command returns None


def _said(exc: BaseException) -> str:
    """*exc*'s message, or what it is when it has none (a bare TimeoutError): never empty."""
    return str(exc).strip() or f"{type(exc).__name__} (no detail given; see the logs)"


def _fail(message: str) -> None:
    # One line: a peer's details or a file's text inside the message are data (node.text).
    text = plain(message).strip() or "failed, with no detail given (see the logs)"
    err.print(f"error: {text}", soft_wrap=True)
