"""Imports follow the layering: CLI → runtime → services and border → feeds, identity and
policy → storage → the node's base. No module imports a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Longest prefix wins. A module may import its own layer or any layer below it.
LAYERS: dict[str, int] = {
    "node.cli": 7,
    # The console (issue 18): an I/O edge at the top, started by the runtime (so beside it).
    "node.console": 6,
    "node.runtime": 6,
    "node.local_federation": 6,
    "node.services": 5,
    # What `status` shows, collected for the CLI and the console's operator pages: reads the
    # feeds, audit, verification and peers, and probes the node's own listener.
    "node.status": 5,
    # Officers (issue 14): their listener's gate and service, and the federated check that
    # asks the peers and builds this node's own report.
    "node.officers": 5,
    "node.border": 5,
    "node.peers.gate": 5,
    "node.peers.heartbeat": 5,
    "node.peers.interceptors": 5,
    # Metrics (issue 16): the server interceptor beside the gate and the border, and the
    # scrape-time collector reading the feeds, verification and witness tables.
    "node.metrics": 5,
    # The `status --html` page (pure): layout, polylines and the template, over feed states.
    "node.status_page": 4,
    "node.feeds": 4,
    # The audit log: on the feeds' Merkle-log machinery; the border and the gate record in it.
    "node.audit": 4,
    # Re-checking stored data: reads the feeds' and the audit log's tables and keys.
    "node.verification": 4,
    "node.identity": 4,
    "node.policy": 4,
    # Witnessing: cosigning, gossip and fork evidence, beside the feeds they watch.
    "node.witness": 4,
    # Signed credit reports: built from the feeds, desensitised by policy, cite cosignatures;
    # the policy's release rule reads a report's payload to judge it at the exit.
    "node.reports": 4,
    # Objections (issue 15): the pure state machine, its table, and marking the entry.
    "node.objections": 4,
    # Responses, hits and lifted acknowledgements (issue 15): a second signed log per node on
    # the feeds' machinery, pulled and verified by origins like a feed.
    "node.actions": 4,
    # Statistics (issue 15): counted from the feeds, actions, objections and imports, signed
    # like reports.
    "node.stats": 4,
    "adapters": 4,
    # Dialling and enrolling peers: below the feeds, whose subscriber dials the origin.
    "node.peers": 3,
    "node.storage": 2,
    # Migrations backfill derived columns with the very functions that write them (0020:
    # normalised names, suspect codes), so they may import the feeds and identity layer.
    "node.storage.migrations": 4,
    "node.home": 1,
    "node.config": 1,
    "node.errors": 1,
    "node.logs": 1,
    "node.regions": 1,
    # The sd_notify datagram to systemd: the standard library only.
    "node.sdnotify": 1,
    # Data values as inert text (no control or bidi character), for the CLI and the logs.
    "node.text": 1,
    "node.api": 1,
    "node._pb": 1,
    "node": 1,
    # The pseudonym key file is read by the node home; the OPRF it derives keys with is a
    # pure primitive without dependencies of its own.
    "node.identity.pseudonym_key": 1,
    "node.identity.oprf": 1,
    # Key roles and the root of trust: pure cores (roles, trusted) and the root files and
    # ceremony on a home; in the base, so that peers, feeds, reports and audit can all ask
    # TrustedRoot whether a key was valid when it signed.
    "node.keys": 1,
    "keys": 0,
}

ROOT_MODULES = {
    "__init__",
    "api",
    "border",
    "config",
    "errors",
    "home",
    "local_federation",
    "logs",
    "regions",
    "runtime",
    "sdnotify",
    "text",
}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        found = LAYERS.get(".".join(parts[:n]))
        if found is not None:
            return found
    raise KeyError(module)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> list[Path]:
    found: list[Path] = []
    for top in ("node", "keys", "adapters"):
        found += [p for p in (ROOT / top).rglob("*.py") if "_pb" not in p.parts]
    return sorted(found)


def imported(tree: ast.AST, package: str) -> set[str]:
    """Every project module a file imports, at any depth (including inside functions)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            # `from node import cli` imports the module node.cli
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in {"node", "keys", "adapters"}}


def _known(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    above = sorted(
        f"{name} (layer {layer(name)})"
        for name in imported(tree, package)
        if _known(name) and layer(name) > layer(me)
    )
    assert not above, f"{me} (layer {layer(me)}) imports a layer above it: {', '.join(above)}"


def test_every_module_has_a_layer() -> None:
    for path in sources():
        layer(module_name(path))  # raises KeyError for a module no layer names


def test_node_root_holds_only_the_nodes_own_modules() -> None:
    modules = {p.stem for p in (ROOT / "node").glob("*.py")}
    assert modules == ROOT_MODULES, f"unexpected modules at node/: {sorted(modules - ROOT_MODULES)}"


def test_the_layering_check_catches_an_upward_import() -> None:
    tree = ast.parse("from node.runtime import Node\nfrom node import cli\n")
    names = imported(tree, "node.feeds")
    assert {"node.runtime", "node.cli"} <= names
    assert layer("node.runtime") > layer("node.feeds.publisher")
    assert layer("node.cli") > layer("node.feeds.publisher")
