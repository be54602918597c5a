"""The report's data classes on the command line (issue 14): what `import --class` and
`remove --class` check before touching the node."""

from __future__ import annotations

from pathlib import Path

from node.errors import InputError
from node.feeds.classes import CLASSES


def check_class(code: str) -> str:
    """*code* if it names a data class; InputError otherwise."""
    if code not in CLASSES:
        raise InputError(f"--class must be one of {', '.join(CLASSES)}")
    return code


def check_class_import(code: str, file: Path | None, removals: Path | None) -> None:
    """The options an import of a data class takes: a file, and no --removals file (a record
    is removed by `remove --class`, or missing from a --full-export)."""
    check_class(code)
    if file is None:
        raise InputError(f"give the {code} file")
    if removals is not None:
        raise InputError(
            "--removals is for lists; remove records with `creditnode remove --class` or a "
            "--full-export"
        )
