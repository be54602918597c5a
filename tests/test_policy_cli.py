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


def test_check_and_explain(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    (home / "agreements" / "lanzhou.toml").write_text(GOOD, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 0
    assert "jinan-lanzhou" in capsys.readouterr().out
    assert (
        main(
            [
                "policy",
                "explain",
                "--home",
                str(home),
                "--peer",
                "lanzhou",
                "--purpose",
                "procurement",
            ]
        )
        == 0
    )
    rows = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in capsys.readouterr().out.splitlines()
        if line.count("│") == 4
    }
    assert rows["person_name"] == "mask:name_surname"
    assert rows["person_id"] == "mask:court_id"
    assert rows["legal_rep_id"] == "withhold"  # not named: withheld
    assert rows["uscc"] == "clear"  # public
    assert (
        main(
            [
                "policy",
                "explain",
                "--home",
                str(home),
                "--peer",
                "taiyuan",
                "--purpose",
                "procurement",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "refused" in out and "mask:" not in out


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
    assert (
        main(
            [
                "policy",
                "explain",
                "--home",
                str(home),
                "--peer",
                "lanzhou",
                "--purpose",
                "procurement",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "refused" in out and "mask:" not in out  # a broken agreement shares nothing
