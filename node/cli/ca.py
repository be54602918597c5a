"""``creditnode ca``: a development federation CA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from node.cli.options import out
from node.errors import InputError

ca_app = typer.Typer(help="Development federation CA.", no_args_is_help=True)


@ca_app.command("init")
def ca_init(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write ca.pem and ca.key.")],
    federation: Annotated[str, typer.Option(help="Federation (alliance) name.")],
) -> None:
    """Create a federation CA for development and demos."""
    from keys import FederationCA, certificate_fingerprint

    if (directory / "ca.key").exists():
        raise InputError(f"{directory / 'ca.key'} already exists; refusing to overwrite a CA")
    try:
        ca = FederationCA.create(federation)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    ca.save(directory)
    out.print(
        f"federation CA for {federation} written to {directory} "
        f"(fingerprint {certificate_fingerprint(ca.certificate)[:16]}…)"
    )
