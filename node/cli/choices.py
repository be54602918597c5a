"""The fixed choices that option help texts and defaults name, as plain literals.

The command tree (names, options, help) is built on every run, ``--help`` and ``--version``
included, so it must import without the modules that define these (they pull in grpc,
SQLAlchemy, cryptography or TUF: about a second of start-up). Each value here is checked
against its source of truth by tests/test_startup.py; commands still validate input against the
source itself.
"""

from __future__ import annotations

from typing import Final

RECORD_CLASSES: Final = ("penalty", "licence", "evaluation", "commitment")
"""node.feeds.classes.CLASSES: `import --class`."""

STATED_REASONS: Final = ("repair", "correction", "revocation", "fulfilled")
"""node.feeds.importer.STATED_REASONS: why entries are removed, as stated."""

ACTIONS: Final = ("applied", "not_applicable", "pending", "suspended_objection", "lifted")
"""node.actions.record.ACTIONS: `respond --action`."""

AUDIT_OUTCOMES: Final = ("hit", "no_hit", "sent", "received", "refused", "error", "ok")
"""node.audit.entry.OUTCOMES: `audit --outcome`."""

GROUNDS: Final = ("identity_mismatch", "content_error", "repaired_or_expired", "decision_revoked")
"""The keys of node.objections.core.GROUNDS: `objection raise --grounds`."""

PURPOSES: Final = (
    "licensing_review",
    "procurement",
    "bidding",
    "subsidy",
    "enforcement",
    "market_entry",
    "honors",
    "credit_repair",
)
"""The keys of node.policy.agreement.PURPOSES."""

DEFAULT_DAYS: Final = 365
"""node.keys.ceremony.DEFAULT_DAYS: how long a key or root version is valid by default."""

ROTATABLE_ROLES: Final = ("feed", "audit", "report", "witness", "transport", "pseudonym", "root")
"""node.keys.ceremony.ROTATABLE_ROLES: `keys rotate --role`."""

ONLINE_ROLES: Final = ("feed", "audit", "report", "witness", "transport")
"""node.keys.roles.ONLINE_ROLES."""
