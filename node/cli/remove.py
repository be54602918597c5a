"""`creditnode remove`: remove entries of one of this node's lists, with a stated reason, date
and deciding document (and what `import` shares with it: the catalogue, stated removals)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from node.cli import choices
from node.cli.options import HomeOpt, out, quiet_logs, refuse_personal_code, run_coro
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from node.feeds import catalogue
    from node.feeds.importer import Held, Removal
    from node.home import Home


def _shown(held: list[Held]) -> list[tuple[str, str]]:
    """What a confirmation covers: each entry and its published content."""
    return [(h.entry_id, h.content) for h in held]


def home_catalogue(loaded: Home) -> catalogue.Catalogue:
    """The node's list catalogue (setting ``catalogue``, default HOME/lists.toml)."""
    from node.feeds import catalogue

    return catalogue.load(loaded.catalogue_path)


def stated_removal(
    reason: str | None,
    date: str | None,
    doc: str | None,
    *,
    allowed: tuple[str, ...],
    required: bool,
    prefix: str = "--removal-",
) -> Removal | None:
    """The removal the options (named *prefix*reason, -date, -doc) state: all three of reason,
    date and document, or (unless *required*) none of them."""
    from adapters.list_csv import parse_date
    from node.feeds.dates import shanghai_today
    from node.feeds.importer import Removal

    if not (reason or date or doc) and not required:
        return None
    if not (reason and date and doc):
        missing = [
            prefix + n for n, v in (("reason", reason), ("date", date), ("doc", doc)) if not v
        ]
        raise InputError(
            f"a removal states its reason, date and document: {', '.join(missing)} missing"
        )
    if reason not in allowed:
        raise InputError(f"{prefix}reason must be one of {', '.join(allowed)}")
    day = parse_date(date)
    if not isinstance(day, dt.date):
        raise InputError(f"{prefix}date {day or 'is empty'}")
    if day > shanghai_today():
        raise InputError(f"{prefix}date is in the future")
    return Removal(reason, day, doc.strip())


def remove(
    home: HomeOpt,
    reason: Annotated[
        str,
        typer.Option(help="Why: repair, correction, revocation, fulfilled or expiry."),
    ],
    date: Annotated[str, typer.Option(help="When it takes effect (YYYY-MM-DD, Shanghai).")],
    doc: Annotated[str, typer.Option(help="The deciding document's number.")],
    uscc: Annotated[str, typer.Option(help="Remove this organisation's active entries.")] = "",
    entry: Annotated[str, typer.Option(help="Remove the entry with this id.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    list_ref: Annotated[
        str | None,
        typer.Option("--list", help="The list: its code or official name (catalogue)."),
    ] = None,
    record_class: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Instead of a list, a data class: " + ", ".join(choices.RECORD_CLASSES) + ".",
        ),
    ] = None,
) -> None:
    """Remove one entry (or an organisation's entries) from a list of this node, for a stated
    reason, and publish the removal to every peer.

    Shows what it will remove, then asks (or takes --yes). Exit 0 removed, 2 nothing to remove,
    refused by the list's rule, or not confirmed.
    """
    from node.cli.records import check_class
    from node.feeds.classes import CLASSES
    from node.feeds.importer import REMOVAL_REASONS, find_held, remove_entries
    from node.feeds.publisher import Publisher
    from node.feeds.records import find_records, remove_records
    from node.home import load_home
    from node.keys.signers import FeedSigners
    from node.storage import Store
    from node.storage.locks import list_lock

    quiet_logs()
    if (list_ref is None) == (record_class is None):
        raise InputError("give exactly one of --list and --class")
    if record_class is not None:
        check_class(record_class)
    if bool(uscc) == bool(entry):
        raise InputError("give exactly one of --uscc and --entry")
    refuse_personal_code(
        "--uscc", uscc, hint="remove a person's entry by --entry, or by its 证件号码 in a file "
        "(import --removals FILE)",
    )  # fmt: skip
    removal = stated_removal(
        reason.strip(), date, doc, allowed=tuple(REMOVAL_REASONS), required=True, prefix="--"
    )
    assert removal is not None
    loaded = load_home(home)
    spec = home_catalogue(loaded).resolve(list_ref) if list_ref is not None else None
    name, code = (
        (spec.name, spec.code) if spec else (CLASSES[str(record_class)].label, record_class)
    )

    async def run() -> int:
        async with Store.opened(loaded.database_url) as store:
            publisher = await Publisher.open(
                store, loaded.identity.uri, FeedSigners.of_home(loaded)
            )
            code_ = uscc.strip().upper()
            if spec is not None:
                held = await find_held(publisher, spec, uscc=code_, entry_id=entry)
            else:
                held = await find_records(publisher, str(code), uscc=code_, entry_id=entry)
            if not held:
                what = f"USCC {uscc}" if uscc else f"entry {entry}"
                raise InputError(f"no active entry of {name} for {what}")
            table = Table(
                title=plain(
                    f"to remove from {name} ({code}): {removal.reason}, "
                    f"{removal.date.isoformat()}, {removal.doc_no}"
                ),
                title_justify="left",
            )
            for col in ("entry", "subject", "认定文书号", "认定日期", "公示截止日期"):
                table.add_column(col, overflow="fold")
            for h in held:
                e = h.entry
                subject = f"{e.subject_name} {e.uscc}" if e.uscc else "(a person)"
                table.add_row(*map(plain, (
                    h.entry_id, subject, e.decision_doc_no, e.decision_date or e.listing_date,
                    e.disclosure_end or "-",
                )))  # fmt: skip
            out.print(table)
            if not yes:
                if not sys.stdin.isatty():
                    raise InputError("removing needs confirmation: run it again with --yes")
                if not typer.confirm(f"Remove {len(held)} entr{'y' if len(held) == 1 else 'ies'}?"):
                    raise InputError("not confirmed: nothing removed")
            # The lock an import of this list takes, not held while a person confirms: the
            # entries shown are read again under it and must be the ones confirmed.
            async with list_lock(store, name):
                if spec is not None:
                    now_held = await find_held(publisher, spec, uscc=code_, entry_id=entry)
                else:
                    now_held = await find_records(publisher, str(code), uscc=code_, entry_id=entry)
                if _shown(now_held) != _shown(held):
                    raise InputError(
                        f"{name} changed meanwhile (an import?): nothing removed; run it again"
                    )
                if spec is not None:
                    removed = await remove_entries(publisher, spec, now_held, removal)
                else:
                    removed = await remove_records(publisher, str(code), now_held, removal)
            out.print(f"removed {removed}; log size {publisher.log.frontier.size}")
            return removed

    run_coro(run())
