"""``creditnode peer``: export this node's bundle, enroll, list and remove partners."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from node.cli.options import FormatOpt, HomeOpt, err, out, quiet_logs, run_coro
from node.cli.render import emit_json, peer_rows_from_records, peer_table, region_label
from node.errors import InputError
from node.text import plain

if TYPE_CHECKING:
    from node.peers.enrollment import Enrolled, Repin
    from node.storage.models import PeerRecord

peer_app = typer.Typer(help="Enroll and list partner nodes.", no_args_is_help=True)


def _check_endpoint(endpoint: str) -> None:
    """Refuse an --endpoint partners could not dial: HOST (a DNS name or an IP address) and a
    port in 1-65535."""
    from node.config import parse_hostport

    try:
        host, _ = parse_hostport(endpoint, allow_zero=False)
        bracketed = endpoint.rpartition(":")[0]
        if bracketed != host:  # [IPv6]:PORT, brackets whole and only around an IPv6 address
            if bracketed != f"[{host}]" or ipaddress.ip_address(host).version != 6:
                raise ValueError(endpoint)
        elif not _DNS_NAME.fullmatch(host):
            ipaddress.IPv4Address(host)
    except ValueError:
        raise InputError("--endpoint must be HOST:PORT with a port in 1-65535") from None


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?")


@peer_app.command("export")
def peer_export(
    home: HomeOpt,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Override the advertised HOST:PORT.")] = None,
) -> None:
    """Write this node's public bundle (name, region, endpoint, CA certificate, public keys),
    and print its CA fingerprint for partners to check out of band."""
    from node.home import load_home
    from node.peers.enrollment import ca_fingerprint, export_bundle

    if endpoint is not None:
        _check_endpoint(endpoint)
    bundle = export_bundle(load_home(home), endpoint=endpoint)
    if output is None:
        sys.stdout.write(bundle.to_json())
    else:
        output.write_text(bundle.to_json(), encoding="utf-8")
        err.print(f"bundle for {bundle.identity.uri} written to {output}")
    # On stderr: stdout may be the bundle itself. Partners read this over the phone.
    err.print(
        f"CA fingerprint (SHA-256): {ca_fingerprint(bundle.ca_certificate)}",
        soft_wrap=True,
        highlight=False,
    )


@peer_app.command("add")
def peer_add(
    home: HomeOpt,
    bundle_file: Annotated[Path, typer.Argument(metavar="BUNDLE", help="A peer's bundle file.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Accept a new CA, feed key or root v1 for an enrolled peer (check the new "
            "fingerprint with the peer out of band first); re-pins the peer's root.",
        ),
    ] = False,
) -> None:
    """Enroll a peer from its bundle (a running node admits it within a second)."""
    from node.audit.local import record_local
    from node.home import load_home
    from node.peers.enrollment import enroll, read_bundle
    from node.storage import Store

    quiet_logs()
    loaded = load_home(home)
    bundle = read_bundle(bundle_file)

    async def add() -> Enrolled:
        async with Store.opened(loaded.database_url) as store:
            done = await enroll(loaded, store, bundle, source=str(bundle_file), replace=replace)
            await record_local(loaded, store, kind="enrollment", method="peer add",
                               peer=bundle.name)  # fmt: skip
            return done

    enrolled = run_coro(add())
    verb = "enrolled" if enrolled.created else "re-enrolled"
    out.print(
        f"{verb} {plain(bundle.name)} ({region_label(bundle.region)}) at {plain(bundle.endpoint)}\n"
        f"CA fingerprint (SHA-256): {enrolled.ca_fingerprint}",
        soft_wrap=True,
        highlight=False,
    )
    for change in enrolled.replaced:
        if "none" in (change.old, change.new):  # a root pinned or unpinned
            old, new = (f"SHA-256 {d}" if d != "none" else d for d in (change.old, change.new))
        else:
            old, new = f"SHA-256 {change.old}", change.new
        out.print(
            f"{change.what} replaced: {old} -> {new}",
            soft_wrap=True,
            highlight=False,
        )
    if enrolled.root is not None:
        out.print(
            f"root v1 pinned (SHA-256 {enrolled.root.sha256}; {enrolled.root.threshold} of "
            f"{enrolled.root.holders} holders): {bundle.name}'s feed keys are trusted as its "
            "root says",
            soft_wrap=True,
            highlight=False,
        )
    else:
        out.print(
            f"no root in the bundle: {bundle.name}'s enrolled feed key is the only one trusted",
            soft_wrap=True,
            highlight=False,
        )


@peer_app.command("repin")
def peer_repin(
    home: HomeOpt,
    bundle_file: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="The peer's new bundle, with its new root v1.")
    ],
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm",
            metavar="FINGERPRINT",
            help="The new root v1's SHA-256 (as shown without --confirm), after checking it "
            "with the peer out of band.",
        ),
    ] = None,
) -> None:
    """Replace an enrolled peer's pinned root with the bundle's root v1 (after the peer lost
    its root). Without --confirm it shows both fingerprints and changes nothing."""
    from node.audit.local import record_local
    from node.home import load_home
    from node.peers.enrollment import read_bundle, repin, repin_preview
    from node.storage import Store

    quiet_logs()
    loaded = load_home(home)
    bundle = read_bundle(bundle_file)
    source = str(bundle_file)

    async def preview() -> Repin:
        async with Store.opened(loaded.database_url) as store:
            return await repin_preview(store, bundle, source=source)

    shown = run_coro(preview())
    old = "none" if shown.old == "none" else f"SHA-256 {shown.old}"
    out.print(
        f"peer {shown.peer}: pinned root v1 {old}\n"
        f"new root v1 in {bundle_file}: SHA-256 {shown.new}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    for change in shown.others:
        out.print(
            f"also replaces its {change.what}: SHA-256 {change.old} -> SHA-256 {change.new}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
    if confirm is None or confirm.strip().lower() != shown.new:
        given = "no --confirm" if confirm is None else f"--confirm {confirm} does not match"
        raise InputError(
            f"{given}: nothing changed; check the new fingerprint with {shown.peer} out of "
            f"band, then run again with --confirm {shown.new}"
        )

    async def apply() -> Enrolled:
        async with Store.opened(loaded.database_url) as store:
            done = await repin(loaded, store, bundle, confirm=confirm, source=source)
            await record_local(loaded, store, kind="enrollment", method="peer repin",
                               peer=bundle.name)  # fmt: skip
            return done

    enrolled = run_coro(apply())
    assert enrolled.root is not None
    out.print(
        f"re-pinned {shown.peer}: root v1 SHA-256 {enrolled.root.sha256} ({enrolled.root.threshold}"
        f" of {enrolled.root.holders} holders); its held chain starts again from v1",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


@peer_app.command("remove")
def peer_remove(home: HomeOpt, name: Annotated[str, typer.Argument(help="Peer name.")]) -> None:
    """Withdraw a peer's enrollment: a running node refuses it and cuts its open calls and
    streams within a second."""
    from node.audit.local import record_local
    from node.home import load_home
    from node.storage import Store
    from node.storage.peers import PeerRepository

    quiet_logs()
    loaded = load_home(home)

    async def remove() -> bool:
        async with Store.opened(loaded.database_url) as store:
            removed = await PeerRepository(store).remove(name)
            if removed:
                await record_local(loaded, store, kind="removal", method="peer remove",
                                   peer=name)  # fmt: skip
            return removed

    if not run_coro(remove()):
        raise InputError(f"no enrolled peer named {name!r}")
    out.print(f"removed {name}")


def peer_json(r: PeerRecord) -> dict[str, Any]:
    """One enrolled peer as `peer list --format json` prints it (docs/json.md)."""
    from node.regions import lookup_region

    region = lookup_region(r.region)
    return {
        "name": r.name,
        "federation": r.federation,
        "region": r.region,
        "region_name": region.name if region else None,
        "endpoint": r.endpoint,
        "state": r.state,
        "last_seen": r.last_seen.isoformat() if r.last_seen else None,
        "last_error": r.last_error,
        "software_version": r.software_version,
        "protocol_version": r.protocol_version,
        "enrolled_at": r.enrolled_at.isoformat(),
        "feed_key": r.feed_key,
    }


@peer_app.command("list")
def peer_list(home: HomeOpt, fmt: FormatOpt = "table") -> None:
    """List enrolled peers and their last observed state."""
    from node.home import load_home
    from node.storage import Store
    from node.storage.peers import PeerRepository

    quiet_logs()
    loaded = load_home(home)

    async def rows() -> list[Any]:
        async with Store.opened(loaded.database_url) as store:
            return await PeerRepository(store).list()

    found = run_coro(rows())
    if fmt == "json":
        emit_json({"node": loaded.identity.uri, "peers": [peer_json(r) for r in found]})
        return
    out.print(peer_table(f"{loaded.identity.uri} peers", peer_rows_from_records(found)))
