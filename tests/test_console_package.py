"""Issue 18: every template and static file of the console ships in the wheel: each matches a
``[tool.setuptools.package-data]`` pattern of the ``node`` package (the coordinator also lists
a built wheel; this is the check that runs without building one)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pattern(glob: str) -> re.Pattern[str]:
    """A setuptools package-data glob (``**/`` any directories, ``*`` within one) as a regex."""
    out = ""
    for part in re.split(r"(\*\*/|\*)", glob):
        out += {"**/": "(?:[^/]+/)*", "*": "[^/]*"}.get(part, re.escape(part))
    return re.compile(out)


def test_every_console_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = [_pattern(g) for g in config["tool"]["setuptools"]["package-data"]["node"]]
    console = ROOT / "node" / "console"
    files = [
        p.relative_to(ROOT / "node").as_posix()
        for folder in ("templates", "static")
        for p in (console / folder).rglob("*")
        if p.is_file()
    ]
    assert any(f.endswith(".html") for f in files) and any(f.endswith(".js") for f in files)
    missing = [f for f in files if not any(p.fullmatch(f) for p in patterns)]
    assert missing == []


def test_the_pattern_reading_is_strict() -> None:
    assert _pattern("console/templates/**/*.html").fullmatch("console/templates/base.html")
    assert _pattern("console/templates/**/*.html").fullmatch("console/templates/a/b/c.html")
    assert not _pattern("console/static/*").fullmatch("console/static/sub/x.js")
    assert not _pattern("console/templates/**/*.html").fullmatch("console/templates/x.txt")
