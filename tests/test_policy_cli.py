"""`creditnode policy check|explain` over agreement files in a node home."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli import main

GOOD = """id = "jinan-lanzhou"
version = 3
peers = ["lanzhou"]
purposes = ["procurement"]

[[rule]]
data_class = "list_entry"
purposes = ["procurement"]
fields = { person_name = "mask:name_surname", person_id = "mask:court_id" }
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "jinan"
    assert main(["init", "--home", str(h), "--name", "jinan", "--region", "370100"]) == 0
    (h / "agreements").mkdir()
    return h


def explain(home: Path, peer: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Field -> form as `policy explain` prints it ({} and a refusal when it shares nothing)."""
    assert main(["policy", "explain", "--home", str(home), "--peer", peer,
                 "--purpose", "procurement"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = [line.split("│") for line in out.splitlines() if line.count("│") == 4]
    forms = {r[1].strip(): r[3].strip() for r in rows}
    assert ("refused" in out) == all(not f.startswith("mask:") for f in forms.values())
    return forms


def test_check_and_explain(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    (home / "agreements" / "lanzhou.toml").write_text(GOOD, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 0
    assert "jinan-lanzhou" in capsys.readouterr().out
    forms = explain(home, "lanzhou", capsys)
    assert forms["person_name"] == "mask:name_surname"
    assert forms["person_id"] == "mask:court_id"
    assert forms["legal_rep_id"] == "withhold"  # not named: withheld
    assert forms["uscc"] == "clear"  # public
    forms = explain(home, "taiyuan", capsys)  # no agreement names taiyuan
    assert forms["person_name"] == forms["person_id"] == "withhold"


def test_malformed_agreement_refuses_to_share(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    bad = GOOD.replace('person_id = "mask:court_id"', 'person_idd = "mask:court_id"')
    (home / "agreements" / "lanzhou.toml").write_text(bad, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "lanzhou.toml:9" in err and "person_idd" in err
    forms = explain(home, "lanzhou", capsys)  # a broken agreement shares nothing
    assert forms["person_name"] == forms["person_id"] == "withhold"
