"""The ``creditnode`` command: the typer app (``app.py``), one module per command group, and the
table rendering they share (``render.py``). Run it as ``creditnode`` or ``python -m node.cli``.

Every run builds the command tree, so a command module imports at its top only what the tree
needs (typer, rich, the shared CLI modules, ``choices``) and its implementation inside each
command: grpc, SQLAlchemy, cryptography, TUF and Alembic cost about a second of start-up.
tests/test_startup.py fails if one of them is imported by a help page."""

import os

# First, before anything imports grpc: its C core reads GRPC_VERBOSITY once, at import, and
# would print its own unstructured lines (E0000 ... handshake failed) to stderr; the CLI
# reports every failure itself, in one line. A value set by the operator still wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from node.cli.app import app, main  # after the variable above

__all__ = ["app", "main"]
