"""A home's sharing agreements (``HOME/agreements/*.toml``) as an operator sees them: loaded
and checked, and explained field by field for a peer and purpose.

Shared by `creditnode policy check|explain` and the console's operator pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from node.errors import InputError

if TYPE_CHECKING:
    from node.policy.agreement import Loaded
    from node.policy.decide import Decision

FEED: Final = "feed"  # the purpose that stands for the feed itself (no request purpose)


def agreements_dir(home: Path) -> Path:
    return home / "agreements"


def read_agreements(home: Path) -> Loaded:
    """The agreements of *home*, checked against its ``reidentification_threshold``."""
    from node.feeds.catalogue import list_kinds
    from node.feeds.measures import agreement_check
    from node.home import load_home
    from node.policy.agreement import load_agreements

    at = load_home(home)
    threshold = at.settings.reidentification_threshold
    directory = agreements_dir(home)
    texts = {}
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            texts[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    # The measures an agreement commits to are checked against this home's catalogues.
    check = agreement_check(home, lambda: list_kinds(at.catalogue_path))
    return load_agreements(texts, threshold=threshold, check=check)


def field_classes() -> dict[int, str]:
    """The sensitivity option's values as `policy explain` names them."""
    from node.api import options

    return {
        options.SENSITIVITY_PUBLIC: "public",
        options.SENSITIVITY_INTERNAL: "internal",
        options.SENSITIVITY_TRADE_SECRET: "trade secret",
        options.SENSITIVITY_PERSONAL: "personal",
        options.SENSITIVITY_PERSONAL_SENSITIVE: "personal-sensitive",
    }


@dataclass(frozen=True)
class Explained:
    """What a peer receives for a purpose: refused or by which agreement, and each field of a
    list entry with its class and form."""

    decision: Decision
    head: str  # "refused: why" or "decided by ID vN"
    refused: bool
    fields: list[dict[str, str]]


def explain(loaded: Loaded, peer: str, purpose: str, threshold: int) -> Explained:
    """Field by field, what *peer* receives for *purpose* (``feed``: the feed itself).
    Agreements with problems refuse everything (fail closed), whatever one decides."""
    from node.api import feeds, options
    from node.policy.decide import decide

    request = None if purpose == FEED else purpose
    decision = decide(loaded.agreements, peer, request, "list_entry", threshold=threshold)
    head = (
        f"refused: {decision.reason}"
        if decision.refused
        else f"decided by {decision.agreement_id} v{decision.agreement_version}"
    )
    if loaded.problems:
        head = f"refused: {len(loaded.problems)} problem(s) in the agreements (policy check)"
    classes = field_classes()
    fields = [
        {
            "field": f.name,
            "class": classes.get(f.GetOptions().Extensions[options.sensitivity], "unclassified"),
            "form": "withhold" if loaded.problems else str(decision.fields.get(f.name, "withhold")),
        }
        for f in feeds.ListEntry.DESCRIPTOR.fields
    ]
    return Explained(decision, head, decision.refused or bool(loaded.problems), fields)
