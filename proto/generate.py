"""Generate node/_pb from proto/ (python, grpc, and mypy-protobuf stubs).

    python proto/generate.py           # regenerate in place
    python proto/generate.py --check   # exit 1 if the committed code is stale

protoc names modules after the proto path (``creditnode.v1``); the node imports them as
``node._pb.creditnode.v1``, so import lines are rewritten. Serialized descriptors are left alone.
"""

from __future__ import annotations

import filecmp
import os
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUT = ROOT / "node" / "_pb"
PREFIX = "node._pb."

# Rewritten only at the start of import lines (.py) or as qualified names (.pyi stubs).
_PY_IMPORT = re.compile(r"^(from|import) (creditnode\.)", re.MULTILINE)
_PYI_NAME = re.compile(r"(?<![\w.])(creditnode\.v\d+\.)")


def generate(out: Path) -> None:
    # protoc finds the mypy plugins on PATH; they sit beside this interpreter in the venv.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    wkt = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out.rglob("*.py*"):
        text = path.read_text()
        text = _PY_IMPORT.sub(rf"\1 {PREFIX}\2", text)
        if path.suffix == ".pyi":
            text = _PYI_NAME.sub(rf"{PREFIX}\1", text)
            text = text.replace(f"import {PREFIX}{PREFIX}", f"import {PREFIX}")
        path.write_text(text)
    for d in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()


def _same_tree(a: Path, b: Path) -> list[str]:
    files_a = {
        p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    files_b = {
        p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    diff = sorted(str(p) for p in files_a ^ files_b)
    diff += sorted(
        str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False)
    )
    return diff


def main() -> int:
    if "--check" in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = _same_tree(Path(tmp), OUT)
        if stale:
            print(f"generated code is stale, run `make proto`: {', '.join(stale)}", file=sys.stderr)
            return 1
        print("generated code is current")
        return 0
    for old in OUT.rglob("*_pb2*.py*"):
        old.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    generate(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
