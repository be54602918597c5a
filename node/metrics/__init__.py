"""Prometheus metrics of one node (issue 16): its own registry, the counters the server
interceptor and the border's exit move, and the label rule.

Each node has its own :class:`~prometheus_client.CollectorRegistry` (never the global one), so
several nodes in one process do not share counters. A label value is only ever one of the
node's own words: a gRPC method, a peer's enrolled node name, an outcome, a form, a list code.
Data values (entity names, IDs, matters, purposes) never become labels; :func:`label` bounds
and checks every value and puts ``other`` in place of anything else.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Letters, digits and the punctuation of method paths and list codes; bounded.
_LABEL = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")
FORM_KINDS = frozenset({"clear", "mask", "pseudonym", "generalise", "withhold"})


def label(value: str) -> str:
    """*value* if it is one of the node's own words (bounded, no spaces or markup), else
    ``other``; "" stays "" (no peer)."""
    if value == "":
        return ""
    return value if _LABEL.fullmatch(value) else "other"


def form_label(form: str) -> str:
    """The kind of a released field's form (``mask:name`` → ``mask``), else ``other``."""
    kind = form.partition(":")[0]
    return kind if kind in FORM_KINDS or kind == "oprf_evaluation" else "other"


class NodeMetrics:
    """The counters of one node, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpcs = Counter(
            "creditnode_rpc",
            "gRPC calls served, by method, calling peer and status code",
            ["method", "peer", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "creditnode_rpc_duration_seconds",
            "Time to serve a gRPC call (for a stream: until it ends), by method and peer",
            ["method", "peer"],
            registry=r,
        )
        self.open_streams = Gauge(
            "creditnode_rpc_open_streams",
            "Server streams open now, by method",
            ["method"],
            registry=r,
        )
        self.denials = Counter(
            "creditnode_policy_denials",
            "Calls the border's policy decision refused (failed closed), by peer",
            ["peer"],
            registry=r,
        )
        self.disclosures = Counter(
            "creditnode_disclosures",
            "Messages that let personal values out to a peer, by peer and form of the fields",
            ["peer", "form"],
            registry=r,
        )
        self.disclosed_values = Counter(
            "creditnode_disclosed_values",
            "Personal values let out to a peer, by peer",
            ["peer"],
            registry=r,
        )

    def released(self, peer: str, forms: dict[str, str], values: int) -> None:
        """One message let out to *peer* carrying *values* personal values in *forms*."""
        if not peer or values <= 0:
            return
        p = label(peer)
        for form in sorted({form_label(f) for f in forms.values()}):
            self.disclosures.labels(peer=p, form=form).inc()
        self.disclosed_values.labels(peer=p).inc(values)
