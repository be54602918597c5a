"""``creditnode keys``: the node's root of trust and its key roles (the ceremony).

A passphrase never comes from the command line (shell history, ``ps``): it is typed at a prompt
without echo, or read from the first line of a file given with ``--passphrase-file``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from node.cli import choices
from node.cli.console import data_text
from node.cli.options import (
    FormatOpt,
    HomeOpt,
    count_opt,
    out,
    quiet_logs,
    run_coro,
    seconds_opt,
)
from node.cli.render import emit_json
from node.errors import InputError

if TYPE_CHECKING:
    from node.keys.ceremony import HolderKey, Proposal
    from node.keys.roles import RootContent
    from node.keys.trusted import RootProgress, SignatureCount

keys_app = typer.Typer(
    help="The node's root of trust (k-of-n offline holders) and its online key roles.",
    no_args_is_help=True,
)

# A root version or an overlap window longer than these is a unit slip (and a date past the
# calendar's end would be a traceback).
MAX_ROOT_DAYS = 3650
MAX_OVERLAP_HOURS = 24 * 366.0


def _days_opt(help: str) -> Any:
    # From 0: the ceremony refuses 0 itself, with its own message ("at least 1").
    return count_opt(help=help, minimum=0, maximum=MAX_ROOT_DAYS)


_STATE_STYLE = {"active": "green", "pending": "cyan", "expired": "yellow", "revoked": "red"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _read_passphrase_file(path: Path, option: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{option} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{option} {path}: not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise InputError(f"{option} {path}: the first line (the passphrase) is empty")
    return line


def _prompt(what: str, *, confirm: bool) -> str:
    if sys.stdin is None or not sys.stdin.isatty():
        raise InputError(f"no passphrase for {what}: give --passphrase-file or run on a terminal")
    first = getpass.getpass(f"passphrase for {what} (not echoed): ")
    if confirm and getpass.getpass(f"again, passphrase for {what}: ") != first:
        raise InputError(f"the two passphrases for {what} differ")
    return first


def _holder_names(*contents: RootContent) -> dict[str, str]:
    from node.keys.roles import short_id

    return {k.keyid: c.holder_name(k) or short_id(k.keyid) for c in contents for k in c.holders}


def _count_line(count: SignatureCount, names: dict[str, str]) -> str:
    from node.keys.roles import short_id

    line = count.describe()
    if not count.met:
        missing = ", ".join(names.get(k, short_id(k)) for k in count.unsigned)
        line += f" (not yet signed by {missing})"
    return line


def _progress_line(progress: RootProgress, names: dict[str, str] | None = None) -> str:
    """Both counts a root N+1 needs: root N's holders and its own (they differ after a holder
    rotation; a holder in both sets counts once in each)."""
    names = names or {}
    state = "ready: run `creditnode keys publish-root`" if progress.complete else "needs more"
    return (
        f"root v{progress.version}: {_count_line(progress.previous, names)}, "
        f"{_count_line(progress.own, names)} — {state}"
    )


@keys_app.command("root-init")
def keys_root_init(
    home: HomeOpt,
    threshold: Annotated[
        int, count_opt(help="How many holders must sign a new root.", minimum=0, maximum=100)
    ],
    holders: Annotated[
        str, typer.Option(help="Comma-separated holder names, e.g. alice,bob,carol.")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the holders' key files (default HOME/keys/root-holders); "
            "move each to its holder's offline machine.",
        ),
    ] = None,
    passphrase_file: Annotated[
        list[str] | None,
        typer.Option(
            "--passphrase-file",
            metavar="HOLDER=FILE",
            help="Read HOLDER's passphrase from the first line of FILE (repeat per holder); "
            "holders without one are prompted.",
        ),
    ] = None,
    days: Annotated[int, _days_opt("Days until root v1 expires.")] = choices.DEFAULT_DAYS,
) -> None:
    """Create the root holders' keys (Ed25519, sealed under each holder's passphrase, 0600) and
    root version 1, signed by every holder, listing this node's online keys."""
    from node.keys.ceremony import check_holders, root_init
    from node.keys.roles import format_time

    quiet_logs()
    names = [n.strip() for n in holders.split(",") if n.strip()]
    check_holders(names, threshold=threshold, days=days)
    passphrases = _new_passphrases(
        passphrase_file, names, "--passphrase-file", "holder", "is not one of --holders"
    )
    result = root_init(
        home,
        holders=names,
        threshold=threshold,
        passphrases=passphrases,
        out_dir=out_dir or home / "keys" / "root-holders",
        now=_now(),
        days=days,
    )
    content = result.root.content
    out.print(
        f"root v1 for {content.node}: {content.threshold} of {len(content.holders)} holders, "
        f"expires {format_time(content.expires)}, written to {result.root_path}",
        markup=False,
    )
    for key_file in result.holder_files:
        out.print(f"holder key {key_file} (0600, sealed)", markup=False)
    out.print("move each holder key to its holder's offline machine; the node does not need them")


@keys_app.command("propose-root")
def keys_propose_root(
    home: HomeOpt,
    days: Annotated[int, _days_opt("Days until the new version expires.")] = choices.DEFAULT_DAYS,
) -> None:
    """Start the next root version (the current one with a new expiry) as the pending root,
    for the holders to sign with `sign-root`."""
    from node.keys.ceremony import propose_root
    from node.keys.roles import format_time

    quiet_logs()
    content = propose_root(home, now=_now(), days=days)
    out.print(
        f"pending root v{content.version} (expires {format_time(content.expires)}) written; "
        "holders add their signatures with `creditnode keys sign-root`",
        markup=False,
    )


@keys_app.command("sign-root")
def keys_sign_root(
    home: HomeOpt,
    holder_key: Annotated[Path, typer.Option(help="This holder's sealed root key file.")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="Read the passphrase from the first line of this file."),
    ] = None,
) -> None:
    """Add one holder's signature to the pending root (HOME/keys/root/pending.json). It does
    not publish: once enough holders signed, run `publish-root`."""
    from node.keys.ceremony import sign_pending
    from node.keys.roles import ONLINE_ROLES, format_time
    from node.keys.store import RootStore

    quiet_logs()
    try:
        key_bytes = holder_key.read_bytes()
    except OSError as exc:
        raise InputError(f"--holder-key {holder_key}: {exc.strerror or exc}") from None
    passphrase = (
        _read_passphrase_file(passphrase_file, "--passphrase-file")
        if passphrase_file is not None
        else _prompt(f"holder key {holder_key.name}", confirm=False)
    )
    result = sign_pending(
        home, holder_key=key_bytes, passphrase=passphrase, source=f"--holder-key {holder_key}"
    )
    content = result.content
    current = RootStore(home).load().content
    online = ", ".join(
        f"{role} {len(content.online_keys(role))}"
        for role in ONLINE_ROLES
        if content.online_keys(role)
    )
    out.print(
        f"{result.holder} signed root v{content.version} for {content.node} "
        f"(expires {format_time(content.expires)}; {content.threshold} of "
        f"{len(content.holders)} holders; online keys: {online or 'none'})",
        markup=False,
    )
    if _holder_names(current) != _holder_names(content) or current.threshold != content.threshold:
        out.print(
            f"root v{content.version} changes the root holders: it needs a threshold of root "
            f"v{current.version}'s holders ({current.threshold} of {len(current.holders)}) "
            f"and of its own ({content.threshold} of {len(content.holders)})",
            markup=False,
            soft_wrap=True,
        )
    out.print(
        _progress_line(result.progress, _holder_names(current, content)),
        markup=False,
        soft_wrap=True,
    )


@keys_app.command("publish-root")
def keys_publish_root(home: HomeOpt) -> None:
    """Verify the pending root against the current one (a threshold of the current root's
    holders and of its own, version N+1, unexpired) and make it current."""
    from node.cli.notify import notify_peers_of_root
    from node.keys.ceremony import publish_pending

    quiet_logs()
    path, root = publish_pending(home, now=_now())
    out.print(f"root v{root.version} is current ({path})", markup=False)
    notify_peers_of_root(home, root.version)


@keys_app.command("list")
def keys_list(home: HomeOpt, fmt: FormatOpt = "table") -> None:
    """Every key of this node: role, id, window and state (active, pending, expired, revoked)."""
    from node.keys.ceremony import key_rows
    from node.keys.roles import short_id

    quiet_logs()
    rows = key_rows(home, now=_now())
    if fmt == "json":
        emit_json(
            {
                "keys": [
                    {"role": r.role, "id": r.keyid, "holder": r.name, "window": r.window,
                     "state": r.state}
                    for r in rows
                ]
            }
        )  # fmt: skip
        return
    table = Table(title="keys")
    for column in ("role", "id", "holder", "window", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.role,
            short_id(row.keyid),
            data_text(row.name),
            row.window,
            Text(row.state, style=_STATE_STYLE[row.state]),
        )
    out.print(table)


HolderKeysOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--holder-key",
        help="A holder's sealed root key file, to sign the new root at once (repeat; pair "
        "each with a --passphrase-file in the same order, or type each passphrase).",
    ),
]
PassphraseFilesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--passphrase-file",
        help="The passphrase of the --holder-key in the same position (first line).",
    ),
]


def _holder_keys(keys: list[Path] | None, passphrases: list[Path] | None) -> list[HolderKey]:
    from node.keys.ceremony import HolderKey

    keys, passphrases = keys or [], passphrases or []
    if passphrases and len(passphrases) != len(keys):
        raise InputError(
            f"{len(keys)} --holder-key but {len(passphrases)} --passphrase-file: give one "
            "passphrase file per holder key, in the same order (or none, to type them)"
        )
    found = []
    for i, path in enumerate(keys):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"--holder-key {path}: {exc.strerror or exc}") from None
        passphrase = (
            _read_passphrase_file(passphrases[i], "--passphrase-file")
            if passphrases
            else _prompt(f"holder key {path.name}", confirm=False)
        )
        found.append(HolderKey(data, passphrase, f"--holder-key {path}"))
    return found


def _report(home: Path, proposal: Proposal) -> None:
    from node.cli.notify import notify_peers_of_root
    from node.keys.store import RootStore

    content = proposal.content
    for warning in proposal.warnings:
        out.print(f"warning: {warning}", markup=False, soft_wrap=True)
    if proposal.published is not None:
        out.print(f"root v{content.version} is current ({proposal.published_path})", markup=False)
        notify_peers_of_root(home, content.version)
        return
    progress = proposal.progress
    if progress is not None:
        names = _holder_names(RootStore(home).load().content, content)
        out.print(_progress_line(progress, names), markup=False, soft_wrap=True)
    out.print(
        f"root v{content.version} is pending, not in force: holders sign it with `creditnode "
        "keys sign-root`, then `creditnode keys publish-root` makes it current",
        markup=False,
        soft_wrap=True,
    )


CaDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        help="transport: the directory of the CA that issued this node's certificate "
        "(ca.pem, ca.key); default HOME/ca/ when the node made its own CA.",
    ),
]
CertDaysOpt = Annotated[
    int,
    count_opt(
        help="transport: days the new certificate is valid (at most 825).",
        minimum=0,
        maximum=825,
    ),
]
OverlapOpt = Annotated[
    float,
    seconds_opt(
        help="How long the old key stays valid beside the new one, in hours.",
        maximum=MAX_OVERLAP_HOURS,
        allow_zero=True,
        metavar="HOURS",
    ),
]
DaysOpt = Annotated[int, _days_opt("Days until the new root expires.")]


def _overlap(hours: float) -> dt.timedelta:
    if not 0 <= hours <= 24 * 366:
        raise InputError("--overlap-hours must be between 0 and 8784 (a year)")
    return dt.timedelta(hours=hours)


@keys_app.command("rotate")
def keys_rotate(
    home: HomeOpt,
    role: Annotated[
        str,
        typer.Option(help=f"The key role to rotate ({', '.join(choices.ROTATABLE_ROLES)})."),
    ],
    overlap_hours: OverlapOpt = 24.0,
    days: DaysOpt = choices.DEFAULT_DAYS,
    holder_key: HolderKeysOpt = None,
    passphrase_file: PassphraseFilesOpt = None,
    ca: CaDirOpt = None,
    cert_days: CertDaysOpt = 825,
    holders: Annotated[
        str | None,
        typer.Option(help="root: the new holders, comma-separated (current names keep their key)."),
    ] = None,
    threshold: Annotated[
        int | None,
        count_opt(help="root: how many of the new holders must sign.", minimum=0, maximum=100),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="root: where to write new holders' key files (default HOME/keys/root-holders).",
        ),
    ] = None,
    new_passphrase_file: Annotated[
        list[str] | None,
        typer.Option(
            "--new-passphrase-file",
            metavar="HOLDER=FILE",
            help="root: read a new holder's passphrase from the first line of FILE (repeat); "
            "new holders without one are prompted.",
        ),
    ] = None,
) -> None:
    """Make a new key for ROLE and propose the next root listing it, with the current key's
    window closing after the overlap. feed, audit, report, witness: a new Ed25519 key
    (keys/ROLE.KEYID.key). transport: a new TLS key and certificate from the node's CA replace
    tls/node.pem and node.key (the old pair is kept as tls/node.KEYID.*); a serving node
    presents them from its next handshake. pseudonym: a new OPRF key generation, this node's own
    pseudonyms re-derived. root: new holders (--holders, --threshold); the new root needs a
    threshold of the old holders and of the new. Signed and published at once if enough
    --holder-key are given; otherwise left pending for `sign-root` and `publish-root`."""
    from node.keys.ceremony import ROTATABLE_ROLES
    from node.keys.roles import PSEUDONYM, ROOT_ROLE

    quiet_logs()
    if role not in ROTATABLE_ROLES:
        raise InputError(f"--role {role}: unknown role; roles are {', '.join(ROTATABLE_ROLES)}")
    if role != ROOT_ROLE and (holders or threshold is not None or out_dir or new_passphrase_file):
        raise InputError(
            "--holders, --threshold, --out and --new-passphrase-file are for --role root"
        )
    if role == PSEUDONYM:
        rotate_pseudonym_key(home, overlap_hours, days, holder_key, passphrase_file)
    elif role == ROOT_ROLE:
        _rotate_root(
            home,
            holders,
            threshold,
            out_dir,
            new_passphrase_file,
            days,
            holder_key,
            passphrase_file,
        )
    else:
        _rotate(home, role, overlap_hours, days, holder_key, passphrase_file, ca, cert_days)


@keys_app.command("renew")
def keys_renew(
    home: HomeOpt,
    role: Annotated[str, typer.Option(help="The role to renew (transport).")],
    overlap_hours: Annotated[
        float,
        seconds_opt(
            help="How long the old certificate stays valid beside the new one, in hours.",
            maximum=MAX_OVERLAP_HOURS,
            allow_zero=True,
            metavar="HOURS",
        ),
    ] = 24.0,
    days: DaysOpt = choices.DEFAULT_DAYS,
    holder_key: HolderKeysOpt = None,
    passphrase_file: PassphraseFilesOpt = None,
    ca: CaDirOpt = None,
    cert_days: CertDaysOpt = 825,
) -> None:
    """Reissue this node's TLS certificate before it expires (same identity, a new key and a
    later expiry), as `rotate --role transport` does."""
    from node.keys.roles import TRANSPORT

    quiet_logs()
    if role != TRANSPORT:
        raise InputError(f"--role {role}: only transport certificates are renewed")
    _rotate(home, role, overlap_hours, days, holder_key, passphrase_file, ca, cert_days)


def _rotate(
    home: Path,
    role: str,
    overlap_hours: float,
    days: int,
    holder_key: list[Path] | None,
    passphrase_file: list[Path] | None,
    ca: Path | None,
    cert_days: int,
) -> None:
    from node.keys.ceremony import rotate_key
    from node.keys.roles import TRANSPORT, format_time, short_id

    overlap = _overlap(overlap_hours)
    holders = _holder_keys(holder_key, passphrase_file)
    proposal = rotate_key(
        home,
        role=role,
        now=_now(),
        overlap=overlap,
        days=days,
        holder_keys=holders,
        ca_dir=ca,
        cert_days=cert_days,
    )
    new = proposal.new_key
    assert new is not None
    out.print(
        f"new transport key {short_id(new.keyid)}: certificate written to "
        f"{proposal.new_key_path}, its key beside it (node.key, 0600)"
        if role == TRANSPORT
        else f"new {role} key {short_id(new.keyid)} written to {proposal.new_key_path} (0600)",
        markup=False,
        soft_wrap=True,
    )
    if proposal.kept:
        out.print(
            f"the replaced pair is kept as {' and '.join(str(p) for p in proposal.kept)} "
            "(to go back, copy them over tls/node.key and tls/node.pem while the root still "
            "lists the old key as valid; `keys prune` deletes them once its window closed)",
            markup=False,
            soft_wrap=True,
        )
    if new.certificate_sha256 is not None and new.window.valid_until is not None:
        out.print(
            f"certificate SHA-256 {new.certificate_sha256}, expires "
            f"{format_time(new.window.valid_until)}",
            markup=False,
            soft_wrap=True,
        )
    retiring = ", ".join(
        f"{short_id(o.keyid)} until {format_time(o.window.end)}"
        for o in proposal.closed
        if o.window.end is not None
    )
    out.print(
        f"root v{proposal.content.version}: {role} key {short_id(new.keyid)} valid from "
        f"{format_time(new.window.valid_from)}; retiring {retiring or 'none'}",
        markup=False,
        soft_wrap=True,
    )
    _report(home, proposal)
    if role == TRANSPORT:
        out.print(
            "a serving node presents the new certificate from its next handshake (within a "
            "second); open connections keep the old one, valid until it expires",
            markup=False,
            soft_wrap=True,
        )
    elif proposal.published is not None:
        out.print(
            f"a serving node signs with every {role} key valid now: both until the old "
            "window closes, then the new one only",
            markup=False,
            soft_wrap=True,
        )


def rotate_pseudonym_key(
    home: Path,
    overlap_hours: float = 24.0,
    days: int = choices.DEFAULT_DAYS,
    holder_key: list[Path] | None = None,
    passphrase_file: list[Path] | None = None,
) -> None:
    """`keys rotate --role pseudonym` and its alias `identity rotate-pseudonym-key`: a new key
    generation, this origin's own pseudonyms re-derived locally (appended as updates), and,
    with a root, root N+1 recording the generation."""
    from node.feeds.publisher import Publisher
    from node.feeds.rederive import rederive_pseudonyms
    from node.home import load_home
    from node.keys.ceremony import rotate_pseudonym
    from node.keys.roles import format_time
    from node.keys.signers import FeedSigners
    from node.storage import Store

    overlap = _overlap(overlap_hours)
    holders = _holder_keys(holder_key, passphrase_file)
    rotation = rotate_pseudonym(home, now=_now(), overlap=overlap, days=days, holder_keys=holders)
    loaded = load_home(home)
    new = rotation.key

    async def run() -> int:
        async with Store.opened(loaded.database_url) as store:
            publisher = await Publisher.open(
                store, loaded.identity.uri, FeedSigners.of_home(loaded)
            )
            return await rederive_pseudonyms(publisher, new)

    count = run_coro(run())
    out.print(
        f"pseudonym key v{rotation.old_version} → v{new.version}; {count} own entries "
        "re-derived (appended as updates)",
        markup=False,
    )
    proposal = rotation.proposal
    if proposal is None:
        out.print(
            "no root yet: `creditnode keys root-init` records the generation in force",
            markup=False,
        )
        return
    closing = ", ".join(
        f"v{g.version} until {format_time(g.window.end)}"
        for g in proposal.closed_generations
        if g.window.end is not None
    )
    generation = proposal.new_generation
    assert generation is not None
    out.print(
        f"root v{proposal.content.version}: pseudonym v{new.version} valid from "
        f"{format_time(generation.window.valid_from)}; retiring {closing or 'none'}",
        markup=False,
        soft_wrap=True,
    )
    _report(home, proposal)


def _rotate_root(
    home: Path,
    holders: str | None,
    threshold: int | None,
    out_dir: Path | None,
    new_passphrase_file: list[str] | None,
    days: int,
    holder_key: list[Path] | None,
    passphrase_file: list[Path] | None,
) -> None:
    from node.keys.ceremony import check_holders, rotate_holders
    from node.keys.store import RootStore

    if holders is None or threshold is None:
        raise InputError("--role root needs --holders a,b,c and --threshold K (the new holders)")
    names = [n.strip() for n in holders.split(",") if n.strip()]
    check_holders(names, threshold=threshold, days=days)
    store = RootStore(home)
    current = store.load().content
    if store.read_pending() is not None:  # before anyone types a passphrase
        raise InputError(f"{store.pending_path} exists; publish it or delete it first")
    held = {current.holder_name(k) for k in current.holders}
    new_names = [n for n in names if n not in held]
    passphrases = _new_passphrases(
        new_passphrase_file, new_names, "--new-passphrase-file", "new holder", "is not a new holder"
    )
    signers = _holder_keys(holder_key, passphrase_file)
    proposal = rotate_holders(
        home,
        holders=names,
        threshold=threshold,
        passphrases=passphrases,
        out_dir=out_dir or home / "keys" / "root-holders",
        now=_now(),
        days=days,
        holder_keys=signers,
    )
    content = proposal.content
    kept = [n for n in names if n in held]
    dropped = sorted(n for n in held if n and n not in names)
    out.print(
        f"root v{content.version}: held by {', '.join(names)} ({content.threshold} of "
        f"{len(names)}); kept {', '.join(kept) or 'none'}, new {', '.join(new_names) or 'none'}, "
        f"dropped {', '.join(dropped) or 'none'}",
        markup=False,
        soft_wrap=True,
    )
    for path in proposal.holder_files:
        out.print(f"holder key {path} (0600, sealed)", markup=False)
    out.print(
        f"root v{content.version} needs signatures by {current.threshold} of root "
        f"v{current.version}'s {len(current.holders)} holders and by {content.threshold} of its "
        f"own {len(content.holders)}: new holders sign with `creditnode keys sign-root "
        "--holder-key THEIR_FILE`",
        markup=False,
        soft_wrap=True,
    )
    _report(home, proposal)


def _new_passphrases(
    items: list[str] | None, names: list[str], option: str, who: str, unknown: str
) -> dict[str, str]:
    """The passphrase of each holder in *names* whose key is made now: from ``HOLDER=FILE``
    items of *option*, else prompted (twice)."""
    files: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"{option} {item!r}: expected HOLDER=FILE")
        if name not in names:
            raise InputError(f"{option} {item!r}: {name} {unknown}")
        files[name] = Path(path)
    return {
        name: _read_passphrase_file(files[name], option)
        if name in files
        else _prompt(f"{who} {name}", confirm=True)
        for name in names
    }


@keys_app.command("revoke")
def keys_revoke(
    home: HomeOpt,
    role: Annotated[str, typer.Option(help=f"The key's role ({', '.join(choices.ONLINE_ROLES)}).")],
    key_id: Annotated[str, typer.Option(help="The key id, or its start as `keys list` shows.")],
    reason: Annotated[str, typer.Option(help="Why (kept in HOME/keys/revocations.jsonl).")],
    at: Annotated[
        str | None,
        typer.Option(help="When the key stops being valid, YYYY-MM-DDTHH:MM:SSZ (default: now)."),
    ] = None,
    days: DaysOpt = choices.DEFAULT_DAYS,
    holder_key: HolderKeysOpt = None,
    passphrase_file: PassphraseFilesOpt = None,
) -> None:
    """Propose the next root with KEY-ID revoked at --at (default now): signatures it makes
    from then on are refused. Signed and published at once if enough --holder-key are given."""
    from node.keys.ceremony import revocations_path, revoke_key
    from node.keys.roles import format_time, parse_time, short_id

    quiet_logs()
    when = None
    if at is not None:
        try:
            when = parse_time(at, "--at")
        except ValueError as exc:
            raise InputError(str(exc)) from None
    holders = _holder_keys(holder_key, passphrase_file)
    proposal = revoke_key(
        home,
        role=role,
        keyid=key_id,
        reason=reason,
        now=_now(),
        at=when,
        days=days,
        holder_keys=holders,
    )
    for entry in proposal.closed:
        out.print(
            f"root v{proposal.content.version}: {role} key {short_id(entry.keyid)} revoked at "
            f"{format_time(entry.window.revoked_at or _now())} (reason recorded in "
            f"{revocations_path(home)})",
            markup=False,
            soft_wrap=True,
        )
    _report(home, proposal)


@keys_app.command("prune")
def keys_prune(
    home: HomeOpt,
    overlap_hours: Annotated[
        float,
        seconds_opt(
            help="Keep a key whose window closed less than this many hours ago.",
            maximum=MAX_OVERLAP_HOURS,
            allow_zero=True,
            metavar="HOURS",
        ),
    ] = 24.0,
    yes: Annotated[bool, typer.Option("--yes", help="Delete them (else only list them).")] = False,
) -> None:
    """Delete retired private keys of every role (keys/ROLE.KEYID.key, and TLS pairs kept as
    tls/node.KEYID.key/.pem): those the current root no longer lists, or lists with a window
    closed more than --overlap-hours ago. Never keys/ROLE.key, tls/node.key nor a key valid
    now."""
    from node.keys.prune import retired_keys
    from node.keys.roles import short_id

    quiet_logs()
    retired = retired_keys(home, now=_now(), overlap=_overlap(overlap_hours))
    if not retired:
        out.print("no retired private keys to delete", markup=False)
        return
    for key in retired:
        verb = "deleting" if yes else "would delete"
        out.print(
            f"{verb} {' and '.join(str(p) for p in key.files)} ({key.role} key "
            f"{short_id(key.keyid)}: {key.reason})",
            markup=False,
            soft_wrap=True,
        )
    if not yes:
        raise InputError(f"nothing deleted: run again with --yes to delete {len(retired)} key(s)")
    for key in retired:
        for path in key.files:
            path.unlink(missing_ok=True)
    out.print(f"deleted {len(retired)} retired private key(s)", markup=False)
