"""Which pages each officer role opens: the one place the console decides it (pure).

Every console path under a section prefix belongs to that section; a role opens only the
sections listed for it. The middleware in node.console.app enforces this before any page runs,
so a page module cannot forget it.
"""

from __future__ import annotations

from typing import Final

# Section -> the path prefix its pages live under.
SECTIONS: Final = {"officer": "/officer", "operator": "/operator", "auditor": "/auditor"}

# Role (node.storage.officers.ROLES) -> the sections it may open.
ROLE_SECTIONS: Final[dict[str, frozenset[str]]] = {
    "officer": frozenset({"officer"}),
    "operator": frozenset({"operator"}),
    "auditor": frozenset({"auditor"}),
}


def section_of(path: str) -> str | None:
    """The section a path belongs to (None: a page every admitted officer may open)."""
    for section, prefix in SECTIONS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return section
    return None


def may_open(role: str, path: str) -> bool:
    """Whether an officer of *role* may open *path* (an unknown role opens no section)."""
    section = section_of(path)
    return section is None or section in ROLE_SECTIONS.get(role, frozenset())


def home_of(role: str) -> str:
    """The first page of a role's console."""
    sections = ROLE_SECTIONS.get(role, frozenset())
    for section, prefix in SECTIONS.items():
        if section in sections:
            return prefix
    return "/"
