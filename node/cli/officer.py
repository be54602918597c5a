"""``creditnode officer``: issue, list and revoke officers' credentials.

An officer credential is a client certificate from the node's CA whose only identity is a
``creditnode-officer://FED/NODE/ID`` URI (a random id), in a PKCS#12 file under a passphrase.
It opens the node's officer listener (setting ``officer_listen``) and nothing else: the peer
port refuses it. The officer's name is stored here for ``officer list``; logs, audit entries
and the certificate carry only the id.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from node.cli.options import FormatOpt, HomeOpt, err, out, quiet_logs, run_coro
from node.cli.render import emit_json
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from keys import OfficerCredential
    from node.storage.officers import OfficerRecord

officer_app = typer.Typer(
    help="Officers' credentials for the officer listener.", no_args_is_help=True
)

MIN_PASSPHRASE = 8
CONFIG_SUFFIX = ".toml"


def read_passphrase(path: Path | None) -> bytes | None:
    """The first line of *path* (None without it); at least 8 characters."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--passphrase-file: cannot read {path} ({type(exc).__name__})") from None
    phrase = text[0].strip() if text else ""
    if len(phrase) < MIN_PASSPHRASE:
        raise InputError(f"--passphrase-file: the passphrase needs {MIN_PASSPHRASE}+ characters")
    return phrase.encode("utf-8")


@officer_app.command("add")
def officer_add(
    home: HomeOpt,
    name: Annotated[str, typer.Option(help="The officer's name (stored here only).")],
    dept_uscc: Annotated[str, typer.Option("--dept-uscc", help="The department's USCC.")],
    role: Annotated[str, typer.Option(help="officer (checks), auditor or operator.")] = "officer",
    purpose: Annotated[
        list[str] | None,
        typer.Option(help="A purpose the officer may check for (repeat; default: all)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="PKCS#12 file (default: officer-ID.p12 here).")
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File whose first line is the passphrase (default: a new one, shown once)."
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=825, help="Validity in days.")] = 365,
    ca: Annotated[
        Path | None, typer.Option(help="CA directory that certified this node (default: HOME/ca).")
    ] = None,
) -> None:
    """Issue an officer credential: a PKCS#12 file (0600) for `creditnode check`."""
    from keys import write_private_file, write_public_file
    from node.home import load_home
    from node.officers.issue import issue_officer
    from node.storage import Store

    quiet_logs()
    loaded = load_home(home)
    phrase = read_passphrase(passphrase_file)
    shown = phrase is None
    if phrase is None:
        phrase = secrets.token_urlsafe(18).encode()
    target = output
    if target is not None and target.exists():
        raise InputError(f"--out: {target} exists; refusing to overwrite a credential")

    async def add() -> tuple[OfficerCredential, OfficerRecord]:
        async with Store.opened(loaded.database_url) as store:
            return await issue_officer(
                loaded, store, name=name, department=dept_uscc, role=role,
                purposes=purpose or (), ca_dir=ca, days=days,
            )  # fmt: skip

    credential, record = run_coro(add())
    ident = credential.identity
    cert = credential.certificate
    target = target or Path(f"officer-{ident.officer[:12]}.p12")
    write_private_file(target, credential.to_pkcs12(phrase))
    config = target.with_suffix(CONFIG_SUFFIX)
    listen = loaded.settings.officer_listen
    write_public_file(
        config,
        (f'# creditnode check --officer {target.name}\nnode = "{listen}"\n'
         f'server = "{loaded.identity.uri}"\n').encode(),
    )  # fmt: skip
    table = Table(show_header=False, title=f"officer credential {target}", title_justify="left")
    table.add_row("officer id", ident.officer)
    table.add_row("identity", ident.uri)
    table.add_row("role", record.role)
    table.add_row("purposes", ", ".join(record.purposes))
    table.add_row("expires", f"{cert.not_valid_after_utc:%Y-%m-%d}")
    table.add_row("node", listen or "(officer_listen not set: set it and restart the node)")
    if shown:
        table.add_row("passphrase (shown once)", phrase.decode())
    out.print(table)


def _state(r: OfficerRecord, now: dt.datetime) -> str:
    if r.revoked_at is not None:
        return f"revoked {r.revoked_at:%Y-%m-%d %H:%M}"
    return "expired" if r.expires_at <= now else "active"


@officer_app.command("list")
def officer_list(
    home: HomeOpt,
    fmt: FormatOpt = "table",
) -> None:
    """Officers this node issued credentials to."""
    from node.home import load_home
    from node.storage import Store
    from node.storage.officers import OfficerRepository

    quiet_logs()
    if fmt not in ("table", "json"):
        raise InputError("--format: table or json")
    loaded = load_home(home)

    async def read() -> list[OfficerRecord]:
        async with Store.opened(loaded.database_url) as store:
            return await OfficerRepository(store).list()

    records = run_coro(read())
    now = dt.datetime.now(dt.UTC)
    if fmt == "json":
        rows = [
            {"id": r.id, "name": r.name, "department": r.department, "role": r.role,
             "purposes": list(r.purposes), "fingerprint": r.fingerprint,
             "issued_at": r.issued_at.isoformat(), "expires_at": r.expires_at.isoformat(),
             "revoked_at": None if r.revoked_at is None else r.revoked_at.isoformat(),
             "state": _state(r, now).split(" ")[0]}
            for r in records
        ]  # fmt: skip
        emit_json(rows)
        return
    table = Table(title=f"officers of {loaded.identity.uri}", title_justify="left")
    for col in ("id", "name", "department", "role", "issued", "expires", "state"):
        table.add_column(col)
    for r in records:
        table.add_row(
            *map(plain, (r.id, r.name, r.department, r.role)), f"{r.issued_at:%Y-%m-%d}",
            f"{r.expires_at:%Y-%m-%d}", _state(r, now),
        )  # fmt: skip
    if not records:
        table.add_row("(none)", "", "", "", "", "", "")
    # Names are hostile text: rendered as text, never as markup.
    out.print(table, markup=False, highlight=False)


@officer_app.command("revoke")
def officer_revoke(
    home: HomeOpt,
    officer: Annotated[str, typer.Argument(metavar="OFFICER_ID", help="Id (or 8+ leading hex).")],
) -> None:
    """Revoke an officer's credential: the running node refuses it within a second."""
    from node.home import load_home
    from node.officers.issue import revoke_officer
    from node.storage import Store

    quiet_logs()
    loaded = load_home(home)

    async def revoke() -> OfficerRecord:
        async with Store.opened(loaded.database_url) as store:
            return await revoke_officer(loaded, store, officer)

    record = run_coro(revoke())
    err.print(f"revoked officer {record.id}", highlight=False)
