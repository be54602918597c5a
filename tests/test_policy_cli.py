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
fields = { person_name = "mask:name_surname", person_id = "pseudonym" }
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "jinan"
    assert main(["init", "--home", str(h), "--name", "jinan", "--region", "370100"]) == 0
    (h / "agreements").mkdir()
    # GOOD's surname mask leaves 3,500 candidates of a name: this node accepts that (the
    # default threshold, 10,000, does not; see the last test).
    with (h / "creditnode.toml").open("a", encoding="utf-8") as f:
        f.write("reidentification_threshold = 3500\n")
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
    assert forms["person_id"] == "pseudonym"
    assert forms["legal_rep_id"] == "withhold"  # not named: withheld
    assert forms["uscc"] == "clear"  # public
    forms = explain(home, "taiyuan", capsys)  # no agreement names taiyuan
    assert forms["person_name"] == forms["person_id"] == "withhold"


def test_malformed_agreement_refuses_to_share(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    bad = GOOD.replace('person_id = "pseudonym"', 'person_idd = "pseudonym"')
    (home / "agreements" / "lanzhou.toml").write_text(bad, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "lanzhou.toml:9" in err and "person_idd" in err
    forms = explain(home, "lanzhou", capsys)  # a broken agreement shares nothing
    assert forms["person_name"] == forms["person_id"] == "withhold"


def test_reidentifying_agreements_are_refused_with_file_and_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    court = GOOD.replace('person_id = "pseudonym"', 'person_id = "mask:court_id"')
    path = home / "agreements" / "lanzhou.toml"
    path.write_text(court, encoding="utf-8")
    capsys.readouterr()
    assert main(["policy", "check", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    # lanzhou may query for procurement: it can have each of the 32 candidates' pseudonyms
    # evaluated and look them up.
    assert (
        f"{path}:9: re-identifying combination for peer 'lanzhou' (list_entry): court_id "
        f"mask (person_id for procurement, {path}:9) + pseudonym evaluations and look-ups "
        f"(allowed for procurement, {path}:4): lanzhou could recover the ID" in err
    )
    forms = explain(home, "lanzhou", capsys)  # refused: nothing personal
    assert forms["person_name"] == forms["person_id"] == "withhold"
    # At the default threshold even the surname mask narrows a name too far.
    path.write_text(GOOD, encoding="utf-8")
    config = home / "creditnode.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("reidentification_threshold = 3500\n", ""), encoding="utf-8")
    assert main(["policy", "check", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{path}:9: re-identifying combination for peer 'lanzhou' (list_entry): name_surname "
        f"mask (person_name for procurement, {path}:9): lanzhou could narrow the name to 3,500 "
        "candidates, fewer than the threshold of 10,000" in err
    )
