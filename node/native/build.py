"""Compile :data:`node.native.MODULES` with mypyc: ``python -m node.native.build``.

Each module is built alone (its imports stay interpreted), in a temporary directory, with a
library name carrying its source digest; the extension files and the digest go to
``node/native/compiled/``. A module whose recorded digest matches its source is skipped. No
compiler or no mypyc: a message and exit status 0, and the pure modules stay in use (give
``--strict`` to fail instead). A source edited during its build is not recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from node.native import COMPILED, MANIFEST, MODULES, source_digest, source_path

ROOT = Path(__file__).resolve().parents[2]


def _read_manifest() -> dict[str, Any]:
    try:
        doc = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _compile(module: str, digest: str, work: Path) -> tuple[Path, Path]:
    """Build *module* in *work*; return its (shared library, module extension) files."""
    import importlib

    from mypyc.build import mypycify

    # setuptools has no type stubs here: used through Any.
    setuptools: Any = importlib.import_module("setuptools")

    source = source_path(module)
    group = f"creditnode_{module.rpartition('.')[2]}_{digest[:16]}"
    cwd = Path.cwd()
    os.chdir(ROOT)  # mypy names the module from its path relative to here
    try:
        extensions = mypycify(
            # A cache of its own: the project's .mypy_cache stays the type checker's.
            [str(source.relative_to(ROOT)), f"--cache-dir={work / 'mypy_cache'}"],
            opt_level="3",
            group_name=group,
            target_dir=str(work / "c"),
        )
        dist = setuptools.Distribution({"name": group, "ext_modules": extensions})
        cmd: Any = dist.get_command_obj("build_ext")
        cmd.build_lib = str(work / "lib")
        cmd.build_temp = str(work / "tmp")
        cmd.ensure_finalized()
        cmd.run()
    finally:
        os.chdir(cwd)
    built = sorted((work / "lib").rglob("*.so")) + sorted((work / "lib").rglob("*.pyd"))
    libs = [p for p in built if p.name.startswith(f"{group}__mypyc.")]
    mods = [p for p in built if p not in libs]
    if len(libs) != 1 or len(mods) != 1:
        raise RuntimeError(f"unexpected build output for {module}: {[p.name for p in built]}")
    return libs[0], mods[0]


def build(modules: tuple[str, ...] = MODULES, *, force: bool = False) -> dict[str, str]:
    """Build what is stale; return module → "built" | "current" | "failed: …"."""
    manifest = _read_manifest()
    outcome: dict[str, str] = {}
    COMPILED.mkdir(parents=True, exist_ok=True)
    for old in [m for m in manifest if m not in MODULES]:  # no longer a compiled core
        del manifest[old]
        shutil.rmtree(COMPILED / old, ignore_errors=True)
    for module in modules:
        digest = source_digest(source_path(module))
        entry = manifest.get(module)
        if (
            not force
            and isinstance(entry, dict)
            and entry.get("sha256") == digest
            and (COMPILED / str(entry.get("lib"))).is_file()
            and (COMPILED / str(entry.get("module"))).is_file()
        ):
            outcome[module] = "current"
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="creditnode-mypyc-") as tmp:
            try:
                lib, ext = _compile(module, digest, Path(tmp))
            except (Exception, SystemExit) as exc:  # a compiler or mypy error: stay pure
                outcome[module] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                continue
            if source_digest(source_path(module)) != digest:
                outcome[module] = "failed: the source changed during the build"
                continue
            target = COMPILED / module
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            shutil.copy2(lib, target / lib.name)
            shutil.copy2(ext, target / ext.name)
        manifest[module] = {
            "sha256": digest,
            "lib": f"{module}/{lib.name}",
            "module": f"{module}/{ext.name}",
            "seconds": round(time.monotonic() - started, 1),
        }
        _write_manifest(manifest)
        outcome[module] = "built"
    _write_manifest(manifest)
    return outcome


def _write_manifest(manifest: dict[str, Any]) -> None:
    """Atomically: a reader sees the old manifest or the new one."""
    tmp = MANIFEST.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(MANIFEST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="modules to build (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a build fails")
    args = parser.parse_args(argv)
    wanted = tuple(args.modules) or MODULES
    unknown = [m for m in wanted if m not in MODULES]
    if unknown:
        parser.error(f"not a compiled core: {', '.join(unknown)}")
    outcome = build(wanted, force=args.force)
    for module, what in outcome.items():
        if what != "current":  # quiet when nothing was to do: make venv runs this every time
            print(f"mypyc {module}: {what}")
    failed = any(v.startswith("failed") for v in outcome.values())
    if failed and not args.strict:
        print("compiled cores unavailable: the pure-Python modules are used", file=sys.stderr)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
