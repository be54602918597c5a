"""Compiled builds of the strictly typed pure cores, used only when built from today's source.

``python -m node.native.build`` (run by ``make venv``) compiles each module in
:data:`MODULES` with mypyc into ``node/native/compiled/``, one module per build so that no
compiled module calls another's compiled code, and records the sha256 of the source it
compiled. :func:`install` (called by ``node/__init__.py``) puts a finder first on
``sys.meta_path``: importing one of these modules loads the compiled extension only if the
source file's sha256 still equals the recorded one. A stale or missing build, a failed load,
or ``CREDITNODE_PURE=1`` in the environment: the pure module, silently. The pure modules
stay the reference; the tests run on both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ExtensionFileLoader, ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, Final

__all__ = [
    "COMPILED",
    "MODULES",
    "PURE_ENV",
    "active",
    "current",
    "install",
    "source_digest",
    "source_path",
]

# The pure cores worth compiling: Merkle hashing and proofs, the USCC fast path, name ranking
# (2.3x on a search's candidates: bench/native.py). The leaf checks (node.feeds.leaf) compile
# too, but gain nothing: their time is protobuf's, in C.
MODULES: Final = ("node.feeds.merkle", "node.identity.uscc_fast", "node.identity.names")
COMPILED: Final = Path(__file__).resolve().parent / "compiled"
MANIFEST: Final = COMPILED / "manifest.json"
PURE_ENV: Final = "CREDITNODE_PURE"
_ROOT: Final = Path(__file__).resolve().parents[2]


def _pure() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def source_digest(path: Path) -> str:
    """sha256 of a source file's bytes, hex."""
    import hashlib  # here: its OpenSSL load is not worth paying for every command

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest() -> dict[str, Any]:
    import json

    try:
        doc = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def source_path(fullname: str) -> Path:
    """The module's source file, where the import system finds it (beside node/)."""
    return _ROOT.joinpath(*fullname.split(".")).with_suffix(".py")


def current(fullname: str) -> tuple[Path, Path] | None:
    """(shared library, module) files of a build of *fullname* from its current source."""
    entry = _manifest().get(fullname)
    if not isinstance(entry, dict):
        return None
    try:
        if entry.get("sha256") != source_digest(source_path(fullname)):
            return None
    except OSError:
        return None
    lib, module = COMPILED / str(entry.get("lib", "")), COMPILED / str(entry.get("module", ""))
    if not (lib.is_file() and module.is_file()):
        return None
    return lib, module


class _Finder:
    """Finds the compiled build of a module in :data:`MODULES` when it is current (a
    sys.meta_path finder; not derived from importlib.abc, whose import costs 6 ms)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in MODULES or _pure():
            return None
        files = current(fullname)
        if files is None:
            return None
        lib, module = files
        # mypyc puts the code in a shared library the module's own extension imports by name.
        lib_name = lib.name.partition(".")[0]
        try:
            if lib_name not in sys.modules:
                loader = ExtensionFileLoader(lib_name, str(lib))
                spec = ModuleSpec(lib_name, loader, origin=str(lib))
                shared = loader.create_module(spec)
                if shared is None:  # pragma: no cover - extension loaders always create
                    return None
                sys.modules[lib_name] = shared
                loader.exec_module(shared)
        except (ImportError, OSError):
            sys.modules.pop(lib_name, None)
            return None
        return ModuleSpec(fullname, ExtensionFileLoader(fullname, str(module)), origin=str(module))


_FINDER: Final = _Finder()


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def summary() -> str:
    """Which cores this process would load compiled, for ``creditnode --version``."""
    if _pure():
        return f"pure-Python cores ({PURE_ENV}=1)"
    built = [m.rpartition(".")[2] for m in MODULES if current(m) is not None]
    if len(built) == len(MODULES):
        return "compiled cores (mypyc)"
    if not built:
        return "pure-Python cores"
    return f"compiled cores: {', '.join(built)}; the rest pure-Python"


def active() -> dict[str, bool]:
    """Which of :data:`MODULES` are loaded compiled (imports them)."""
    import importlib

    out: dict[str, bool] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        out[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    return out
