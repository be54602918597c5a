"""Compiled pure cores (node.native): loaded only when current, and identical to the pure ones.

The pure module is loaded beside the compiled one under another name, from the same source
file, so each property compares both on the same inputs in one process. Under
CREDITNODE_PURE=1 (the Makefile's second pass) both sides are pure, and the finder must
decline everything.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.native as native
from node.feeds import merkle
from node.identity import uscc_fast

ROOT = Path(__file__).resolve().parent.parent
PURE = os.environ.get(native.PURE_ENV, "") not in ("", "0")


def _load_pure(name: str) -> ModuleType:
    path = ROOT.joinpath(*name.split(".")).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"_pure_{name.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and annotations look the module up
    spec.loader.exec_module(module)
    return module


PURE_MERKLE = _load_pure("node.feeds.merkle")
PURE_USCC = _load_pure("node.identity.uscc_fast")


def _is_compiled(module: ModuleType) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")


@pytest.mark.parametrize("name", native.MODULES)
def test_compiled_module_is_active_exactly_when_current(name: str) -> None:
    module = sys.modules[name] if name in sys.modules else importlib.import_module(name)
    built = native.current(name) is not None
    if PURE:
        assert not _is_compiled(module)
        return
    if not built:
        pytest.skip(f"no current build of {name} (run `make venv` with a C compiler)")
    # A build from the current source exists, so the loaded module must be that build
    # (unless the source changed after this process imported it).
    assert _is_compiled(module) == (native.current(name) is not None)
    assert _is_compiled(module)


def test_stale_or_missing_build_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    finder = native._FINDER
    name = "node.identity.uscc_fast"
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    real = native._manifest().get(name)
    stale = {"sha256": "0" * 64, "lib": "x.so", "module": "y.so"}
    monkeypatch.setattr(native, "_manifest", lambda: {name: stale})
    assert finder.find_spec(name, None) is None
    monkeypatch.setattr(native, "_manifest", lambda: {})
    assert finder.find_spec(name, None) is None
    assert finder.find_spec("node.feeds.leaf", None) is None  # not a compiled core
    if isinstance(real, dict):
        missing = {**real, "module": "gone/nothing.so"}
        monkeypatch.setattr(native, "_manifest", lambda: {name: missing})
        assert finder.find_spec(name, None) is None
        monkeypatch.setattr(native, "_manifest", lambda: {name: real})
        monkeypatch.setenv(native.PURE_ENV, "1")
        assert finder.find_spec(name, None) is None
        monkeypatch.delenv(native.PURE_ENV)
        assert (finder.find_spec(name, None) is not None) == (native.current(name) is not None)


def test_pure_env_in_a_fresh_process() -> None:
    code = "import node.native as n, json; print(json.dumps(n.active()))"
    env = {**os.environ, native.PURE_ENV: "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "true" not in out.stdout and all(m in out.stdout for m in native.MODULES)


# ---------------------------------------------------------------- same results, both ways


def _outcome(fn: Callable[[], Any]) -> Any:
    """A result, or the exception's class name and message (the classes differ by module)."""
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70), st.data())
def test_merkle_compiled_equals_pure(leaves: list[bytes], data: st.DataObject) -> None:
    m, p = merkle, PURE_MERKLE
    assert [m.leaf_hash(x) for x in leaves] == [p.leaf_hash(x) for x in leaves]
    fm, fp = m.Frontier(), p.Frontier()
    store: dict[int, bytes] = {}
    for x in leaves:
        got = fm.append(m.leaf_hash(x))
        assert got == fp.append(p.leaf_hash(x))
        store.update(got)
        assert fm.root() == fp.root() and fm.hashes == fp.hashes
    t = len(leaves)
    roots = {s: m.tree_hash(s, store) for s in range(t + 1)}
    assert roots == {s: p.tree_hash(s, store) for s in range(t + 1)}
    assert roots[t] == m.root_from_leaf_hashes([m.leaf_hash(x) for x in leaves])
    n = data.draw(st.integers(0, t - 1))
    t1 = data.draw(st.integers(0, t))
    proof = m.inclusion_proof(t, n, store)
    assert proof == p.inclusion_proof(t, n, store)
    cons = m.consistency_proof(t1, t, store)
    assert cons == p.consistency_proof(t1, t, store)
    leaf = m.leaf_hash(leaves[n])
    bad = data.draw(st.binary(min_size=32, max_size=32))
    for args in (
        (proof, t, roots[t], n, leaf),
        (proof, t, roots[t], n, bad),
        (proof[1:], t, roots[t], n, leaf),
    ):
        assert _outcome(partial(m.verify_inclusion, *args)) == _outcome(
            partial(p.verify_inclusion, *args)
        )
    for args2 in (
        (cons, t1, roots[t1], t, roots[t]),
        (cons, t1, bad, t, roots[t]),
        (cons[:-1], t1, roots[t1], t, roots[t]),
    ):
        assert _outcome(partial(m.verify_consistency, *args2)) == _outcome(
            partial(p.verify_consistency, *args2)
        )
    assert _outcome(lambda: m.verify_inclusion(proof, t, roots[t], n, leaf))[0] == "ok"
    for i in range(m.stored_hash_count(t)):
        assert m.split_stored_hash_index(i) == p.split_stored_hash_index(i)
    assert m.Frontier.from_hashes(t, store).root() == roots[t]
    if hasattr(m.Frontier, "extend"):  # the batch path, where present
        fe, pe = m.Frontier(), p.Frontier()
        fe.extend(leaves)
        pe.extend(leaves)
        assert fe.root() == pe.root() == roots[t]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXYIOSVZa \u00e9", min_size=0, max_size=20))
def test_uscc_verdict_compiled_equals_pure(text: str) -> None:
    assert uscc_fast.uscc_verdict(text) == PURE_USCC.uscc_verdict(text)


def test_uscc_verdict_on_realistic_codes() -> None:
    from tests.uscc_codes import realistic_mix

    codes = realistic_mix(20_000, seed=99)
    got = [uscc_fast.uscc_verdict(c.upper()) for c in codes]
    assert got == [PURE_USCC.uscc_verdict(c.upper()) for c in codes]
    assert {0, 1, 2, 4} <= set(got)  # position 17 failing alone is rare in a typo


def test_version_says_which_cores_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert native.summary() == "pure-Python cores (CREDITNODE_PURE=1)"
    monkeypatch.delenv(native.PURE_ENV)
    monkeypatch.setattr(native, "_manifest", dict)
    assert native.summary() == "pure-Python cores"
