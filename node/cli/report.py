"""``creditnode report verify`` and ``report render``: a saved report file checked offline
with only the alliance's peer bundles, and its printable HTML."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from node.cli.options import FormatOpt, out
from node.cli.render import emit_json
from node.errors import InputError, VerificationError
from node.text import plain

if TYPE_CHECKING:
    from keys import PeerBundle

report_app = typer.Typer(help="Signed credit reports: verify offline, render as HTML.",
                         no_args_is_help=True)  # fmt: skip

MAX_BUNDLES = 1000


def load_trust(path: Path) -> list[PeerBundle]:
    """The peer bundles in *path* (one bundle file, or a directory of ``*.json`` bundles)."""
    from keys import PeerBundle

    files = sorted(path.glob("*.json"))[:MAX_BUNDLES] if path.is_dir() else [path]
    bundles = []
    for f in files:
        try:
            bundles.append(PeerBundle.from_json(f.read_text(encoding="utf-8")))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"--trust: {f}: not a peer bundle ({type(exc).__name__})") from None
    if not bundles:
        raise InputError(f"--trust: {path}: no peer bundle found")
    return bundles


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: {exc.strerror or exc}") from None


@report_app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(help="A saved report file.")],
    trust: Annotated[
        Path, typer.Option(help="The alliance's peer bundles: one file or a directory of them.")
    ],
    fmt: FormatOpt = "table",
) -> None:
    """Check a report offline: the issuer's pinned root v1 → its chain → the report key valid
    when it signed; every item's proof to its origin's signed checkpoint. Exit 0 / 7."""
    from node.reports.envelope import digest, verify_report
    from node.reports.payload import SECTIONS, ReportError

    bundles = load_trust(trust)
    data = _read(file)
    try:
        v = verify_report(data, bundles)
    except ReportError as exc:
        if fmt == "json":
            emit_json({"verified": False, "problem": str(exc)})
        raise VerificationError(f"{file}: {exc}") from None
    doc = {
        "verified": True, "report_number": v.payload.get("report_number"), "issuer": v.issuer,
        "issued_at": v.issued_at.isoformat(), "root_version": v.root_version,
        "items": v.items, "sha256": digest(data), "cosignatures": v.cosignatures,
        "unchecked_cosignatures": v.unchecked_cosignatures,
    }  # fmt: skip
    if fmt == "json":
        emit_json(doc)
        return
    counts = ", ".join(f"{title} {len(v.payload['sections'][name])}" for name, title in SECTIONS)
    out.print(
        f"verified: report {plain(str(doc['report_number']))} by {plain(v.issuer)}, signed "
        f"{v.issued_at.isoformat()}"
        + ("" if v.root_version is None else f" (root v{v.root_version})")
        + f"; {v.items} items proved ({plain(counts)}); "
        f"{v.cosignatures} cosignatures checked, {v.unchecked_cosignatures} by unknown witnesses"
    )


@report_app.command("render")
def render_command(
    file: Annotated[Path, typer.Argument(help="A saved report file.")],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")],
) -> None:
    """Write the printable HTML of a report file (with a QR code of its number and digest).
    It does not verify the report: run `report verify` for that."""
    from node.reports.payload import ReportError
    from node.reports.render import render_html

    try:
        html = render_html(_read(file))
    except ReportError as exc:
        raise InputError(f"{file}: {exc}") from None
    out_file.write_text(html, encoding="utf-8")
    out.print(f"written {plain(str(out_file))}")
