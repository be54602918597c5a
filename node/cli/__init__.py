"""The ``creditnode`` command: the typer app (``app.py``), one module per command group, and the
table rendering they share (``render.py``). Run it as ``creditnode`` or ``python -m node.cli``."""

from node.cli.app import app, main

__all__ = ["app", "main"]
