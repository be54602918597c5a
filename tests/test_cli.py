"""The operator CLI: clear one-line errors with stable exit codes, and real end-to-end runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keys import FederationCA
from node.cli import main
from node.policy.masks import name_surname

CLI = [sys.executable, "-m", "node.cli"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--region", "999999"], 2, "region code 999999 is not a GB/T 2260 division code"),
        (["--region", "3701"], 2, "must be six digits"),
        (["--region", "370100", "--name", "Jinan!"], 2, "node name 'Jinan!' must be"),
        (["--region", "370100", "--listen", "nowhere"], 2, "address 'nowhere' must be HOST:PORT"),
        (["--region", "370100", "--ca", "/nonexistent"], 2, "cannot load federation CA"),
        (["--region", "370100", "--database", "mysql://x/y"], 6, "only sqlite and postgresql"),
    ],
)
def test_init_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    home = tmp_path / "h"
    argv = ["init", "--home", str(home), "--name", "jinan", *args]
    if "--name" in args:
        argv = ["init", "--home", str(home), *args]
    rc, _, err = run(capsys, *argv)
    assert rc == code
    assert message in one_line_error(err)
    assert not home.exists()  # nothing half-made is left behind


def test_init_then_commands_on_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "jinan"
    rc, out, _ = run(
        capsys,
        "init",
        "--home",
        str(home),
        "--name",
        "jinan",
        "--region",
        "370100",
        "--federation",
        "yellow-river",
        "--advertise",
        "127.0.0.1:7001",
    )
    assert rc == 0
    assert "creditnode://yellow-river/jinan" in out and "济南市" in out
    rc, _, err = run(capsys, "init", "--home", str(home), "--name", "jinan", "--region", "370100")
    assert rc == 2 and "already exists" in one_line_error(err)

    rc, out, _ = run(capsys, "peer", "export", "--home", str(home))
    assert rc == 0
    bundle = json.loads(out)
    assert bundle["endpoint"] == "127.0.0.1:7001" and "PRIVATE" not in out

    rc, _, err = run(capsys, "peer", "add", "--home", str(home), str(tmp_path / "missing.json"))
    assert rc == 5 and "no such bundle file" in one_line_error(err)
    (tmp_path / "bad.json").write_text("{not json")
    rc, _, err = run(capsys, "peer", "add", "--home", str(home), str(tmp_path / "bad.json"))
    assert rc == 5 and "bad.json: not JSON" in one_line_error(err)
    rc, _, err = run(capsys, "peer", "add", "--home", str(home), _write(tmp_path, bundle))
    assert rc == 5 and "own bundle" in one_line_error(err)

    rc, _, err = run(capsys, "status", "--home", str(home), "--peer", "nobody")
    assert rc == 2 and "no enrolled peer named 'nobody'" in one_line_error(err)
    rc, _, err = run(capsys, "peer", "remove", "--home", str(home), "nobody")
    assert rc == 2 and "no enrolled peer named 'nobody'" in one_line_error(err)


def _write(tmp_path: Path, data: dict[str, str]) -> str:
    path = tmp_path / f"{data['name']}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_missing_home_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["serve"], ["status"], ["peer", "list"], ["peer", "export"]):
        rc, _, err = run(capsys, *argv, "--home", str(tmp_path / "nope"))
        assert rc == 3, argv
        assert "no such node home" in one_line_error(err)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "init", "--name", "x")
    assert rc == 2
    assert "Missing option" in err and "Traceback" not in err


def _init(tmp_path: Path, name: str, region: str, ca: Path, port: int = 0) -> Path:
    home = tmp_path / name
    assert (
        main(
            [
                "init",
                "--home",
                str(home),
                "--name",
                name,
                "--region",
                region,
                "--ca",
                str(ca),
                "--listen",
                f"127.0.0.1:{port or _free_port()}",
            ]
        )
        == 0
    )
    return home


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _enrolled_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Jinan and Lanzhou homes from one CA, enrolled with each other through the CLI."""
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    jinan = _init(tmp_path, "jinan", "370100", tmp_path / "ca")
    lanzhou = _init(tmp_path, "lanzhou", "620100", tmp_path / "ca")
    for a, b in ((jinan, lanzhou), (lanzhou, jinan)):
        assert main(["peer", "export", "--home", str(a), "--out", str(tmp_path / "b.json")]) == 0
        assert main(["peer", "add", "--home", str(b), str(tmp_path / "b.json")]) == 0
    return jinan, lanzhou


def _serve(home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CREDITNODE_HEARTBEAT_SECONDS": "0.3"}
    return subprocess.Popen(
        [*CLI, "serve", "--home", str(home)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_serving(home: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if main(["status", "--home", str(home), "--timeout", "1"]) == 0:
            return
        time.sleep(0.2)
    raise AssertionError("node did not start serving")


def test_two_processes_enroll_and_see_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two `creditnode serve` processes, enrolled by CLI, each sees the other; SIGTERM exits 0."""
    jinan, lanzhou = _enrolled_pair(tmp_path)
    capsys.readouterr()

    # Unreachable peer: one line, exit 4.
    rc, _, err = run(capsys, "status", "--home", str(jinan), "--peer", "lanzhou", "--timeout", "1")
    assert rc == 4 and "lanzhou at 127.0.0.1:" in one_line_error(err)

    procs = [_serve(jinan), _serve(lanzhou)]
    try:
        for home, proc in zip((jinan, lanzhou), procs, strict=True):
            _wait_serving(home, proc)
        capsys.readouterr()
        rc, out, _ = run(capsys, "status", "--home", str(jinan), "--peer", "lanzhou")
        assert rc == 0
        assert "creditnode://yellow-river/lanzhou" in out and "620100 兰州市" in out
        assert "jinan" in out  # lanzhou's own view lists jinan
        time.sleep(1.0)  # a heartbeat round
        rc, out, _ = run(capsys, "peer", "list", "--home", str(jinan))
        assert rc == 0 and "lanzhou" in out and " up " in out

        # A second node on the same port: one clear line, exit 3, no traceback.
        clash = tmp_path / "clash"
        port = _port_of(jinan)
        _init(tmp_path, "clash", "140100", tmp_path / "ca", port=port)
        clashing = subprocess.run(
            [*CLI, "serve", "--home", str(clash)], capture_output=True, text=True, timeout=60
        )
        assert clashing.returncode == 3
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in one_line_error(
            clashing.stderr
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outs = [proc.communicate(timeout=30) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    logs = [json.loads(line) for line in outs[0][1].splitlines() if line.startswith("{")]
    assert {"shutdown requested", "node stopped"} <= {entry["event"] for entry in logs}


def _port_of(home: Path) -> int:
    text = (home / "creditnode.toml").read_text()
    return int(text.split('listen = "127.0.0.1:')[1].split('"')[0])


def test_demo_runs_three_cities_and_stops(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "demo", "--dir", str(tmp_path / "demo"), "--seconds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for city in ("jinan", "lanzhou", "taiyuan"):
        assert f"{city} (127.0.0.1:" in out
    assert out.count(" up ") >= 6  # every node sees both others up
    assert "every city holds every list, verified" in out
    forms = out[out.index("as each partner holds it") :]
    lanzhou_row = next(line for line in forms.splitlines() if line.startswith("│ lanzhou"))
    taiyuan_row = next(line for line in forms.splitlines() if line.startswith("│ taiyuan"))
    # Only the pseudonym opened: a masked ID beside it would let lanzhou recover the ID.
    assert "****" not in lanzhou_row and lanzhou_row.count("digest only") == 3
    assert taiyuan_row.count("digest only") == 4  # no agreement: digests only
    # Officers ask jinan: lanzhou gets the forms of its agreement, for its purpose only.
    asked = out[out.index("lanzhou asks jinan about that person, for enforcement") :]
    enforcement, rest = asked.split("lanzhou asks jinan about that person, for subsidy")
    subsidy, taiyuan = rest.split("taiyuan asks jinan about that person, for enforcement")
    assert "(pseudonym)" in enforcement and "mask:" not in enforcement
    assert "decided by jinan-lanzhou v1" in enforcement
    assert "(none sent)" in subsidy and "is not allowed" in subsidy
    assert "(none sent)" in taiyuan and "no agreement names peer taiyuan" in taiyuan
    record = out[out.index("jinan's audit log: answers that let personal data out") :]
    assert "Subscribe" in record and "Lookup" in record and "jinan-lanzhou v1" in record
    assert "the removal reached lanzhou in" in out and "the removal reached taiyuan in" in out
    # The oblivious lookup, the repair and the expiry scenes, each checked in the files.
    assert "jinan evaluated its pseudonym obliviously" in out
    assert "in lanzhou's mirror of jinan's feed: jinan:" in out
    assert "after credit repair" in out and "found nowhere in jinan's database" in out
    assert "REMOVE(expiry)" in out and "both holders applied them" in out
    # The audit scene: every node's stored data verifies; the demo's Jinan–Lanzhou queries
    # are in both logs under one exchange id; an export verifies offline with the witnesses'
    # cosignatures; the two sides' receipts reconcile.
    audit = out[out.index("audit: every exchange is in both sides") :]
    verified = audit[: audit.index("the demo's Jinan–Lanzhou queries")]
    assert verified.count("│ none") == 3
    both = audit[audit.index("the demo's Jinan–Lanzhou queries") : audit.index("audit export")]
    rows = [line for line in both.splitlines() if line.startswith("│ ")]
    assert len(rows) == 3 and all(" in " in r and " out " in r for r in rows)
    assert sum("✓" in r for r in rows) == 2  # the two lookups' answers hash the same
    assert "offline with only the peer bundles: verified" in audit
    assert " 0 exchange(s) recorded on one side only" in audit
    commands = out[out.index("an auditor can run, while the demo runs") :]
    for command in ("verify --home", "audit show", "audit export", "verify-bundle",
                    "audit reconcile", "evidence export"):  # fmt: skip
        assert f"creditnode {command}" in commands
    # A Jinan officer's check: Lanzhou's black list and its mandatory measure, Taiyuan's red
    # list, every report saved and verified offline.
    check = out[out.index("a Jinan officer's credit check") :]
    assert "serious_dishonesty" in check and "red_lists" in check and "(mandatory)" in check
    assert "verdict: black-listed (exit code 11)" in check
    assert check.count("verified offline, issued by") == 3
    # Joint punishment: Lanzhou's check matches the ban (a hit), Taiyuan's objection is
    # rejected with a reason it sees, and the repair comes back as lifted from both cities.
    loop = out[out.index("joint punishment across cities") :]
    assert "black-listed; jinan's entry matched (GP.BAN (mandatory)" in loop
    assert "taiyuan sees 异议不成立 (rejected): 经复核" in loop
    assert 'sees "measures lifted" from lanzhou and taiyuan' in loop
    for lifted in ("lanzhou lifted GP.BAN on", "taiyuan lifted GP.BAN on",
                   "taiyuan lifted BID.LIMIT on"):  # fmt: skip
        assert lifted in loop
    assert "lanzhou lifted BID.LIMIT" not in loop  # not applicable there: nothing to lift
    objections = loop[loop.index("objections to that entry at jinan: 1") :]
    assert "异议不成立 (rejected)" in objections and "on time" in objections
    for command in ("import", "respond", "check", "objection raise", "objection resolve",
                    "remove", "actions"):  # fmt: skip
        assert f"$ creditnode {command} --" in loop
    assert "federation stopped cleanly" in out


def _sample_csv(
    path: Path,
    n: int,
    *,
    list_name: str = "政府采购严重违法失信行为记录名单",
    encoding: str = "utf-8",
) -> Path:
    import datetime as dt

    from adapters.samples import generate_rows, write_csv

    write_csv(
        path,
        generate_rows(
            n,
            seed=7,
            list_name=list_name,
            list_type="black",
            region="370100",
            today=dt.date.today(),
        ),
        encoding=encoding,
    )
    return path


PROCUREMENT_AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["procurement"]

[[rule]]
data_class = "list_entry"
purposes = ["procurement"]
fields = { legal_rep_name = "mask:name_surname" }
"""


def test_import_sync_lists_between_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jinan serves and imports (another process); lanzhou syncs once, then sees a removal."""
    monkeypatch.setenv("COLUMNS", "250")  # whole table cells, not folded lines
    jinan, lanzhou = _enrolled_pair(tmp_path)
    # Jinan accepts the surname mask its agreement below sends (3,500 candidates of a name).
    with (jinan / "creditnode.toml").open("a", encoding="utf-8") as f:
        f.write("reidentification_threshold = 3500\n")
    csv_file = _sample_csv(tmp_path / "jinan.csv", 60, encoding="gb18030")
    name = "政府采购严重违法失信行为记录名单"
    proc = _serve(jinan)
    try:
        _wait_serving(jinan, proc)
        capsys.readouterr()
        rc, out, _ = run(capsys, "import", "--home", str(jinan), "--list", name, str(csv_file))
        assert rc == 0
        assert "gb18030" in out
        rc, out, _ = run(capsys, "sync", "--home", str(lanzhou))
        assert rc == 0, out
        assert "jinan" in out and " ok " in out
        rc, out, _ = run(
            capsys, "lists", "--home", str(lanzhou), "--origin", "jinan", "--limit", "100"
        )
        assert rc == 0
        active = int(out.split(" of ")[1].split()[0])
        assert active > 0

        # An officer in lanzhou asks jinan about one organisation; jinan's agreement decides.
        lines = csv_file.read_text(encoding="gb18030").splitlines()
        today = dt.date.today().isoformat()
        row = next(line.split(",") for line in lines[1:] if line.split(",")[15] > today)
        uscc, rep = row[2], row[4]
        ask = ["query", "--home", str(lanzhou), "jinan", "--uscc", uscc]
        rc, out, _ = run(capsys, *ask, "--purpose", "procurement")
        assert rc == 0, out
        assert "no agreement names peer lanzhou" in out and rep not in out
        (jinan / "agreements").mkdir(exist_ok=True)
        (jinan / "agreements" / "lanzhou.toml").write_text(PROCUREMENT_AGREEMENT)
        time.sleep(1.2)  # a serving node re-reads its agreements within a second
        rc, out, _ = run(capsys, *ask, "--purpose", "procurement")
        assert rc == 0, out
        assert f"legal rep={name_surname(rep)} (mask:name_surname)" in out
        assert rep not in out and "jinan-lanzhou v1" in out
        rc, out, _ = run(capsys, *ask, "--purpose", "subsidy")
        assert rc == 0 and "not allowed" in out and name_surname(rep) not in out
        rc, _, err = run(capsys, *ask, "--purpose", "gossip")
        assert rc == 2 and "unknown purpose 'gossip'" in one_line_error(err)
        rc, out, _ = run(capsys, "sync", "--home", str(lanzhou), "--disclose")
        assert rc == 0 and "disclosed" in out
        rc, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "2")
        released = out[out.index("personal data released") :]
        peer_row = next(line for line in released.splitlines() if line.startswith("│ lanzhou"))
        assert peer_row.split("│")[2].strip() == "1"  # one answer let a masked name out
        assert rep not in out

        lines = csv_file.read_text(encoding="gb18030").splitlines(keepends=True)
        live = next(i for i, line in enumerate(lines[1:], 1) if line.split(",")[15] > today)
        del lines[live]  # an entry still within its disclosure period leaves the export
        csv_file.write_text("".join(lines), encoding="gb18030")
        # Its export no longer has it: without --full-export that removes nothing; a full
        # export states why (a correction: a repair would come too early for this list).
        rc, out, _ = run(capsys, "import", "--home", str(jinan), "--list", name, str(csv_file))
        assert rc == 0
        assert run(capsys, "sync", "--home", str(lanzhou))[0] == 0
        rc, out, _ = run(capsys, "lists", "--home", str(lanzhou), "--origin", "jinan",
                         "--removed", "--limit", "200")  # fmt: skip
        assert "removed (correction)" not in out
        rc, out, _ = run(
            capsys, "import", "--home", str(jinan), "--list", "procurement-serious",
            str(csv_file), "--full-export", "--removal-reason", "correction",
            "--removal-date", today, "--removal-doc", "济南财采更〔2026〕1号",
        )  # fmt: skip
        assert rc == 0, out
        assert run(capsys, "sync", "--home", str(lanzhou))[0] == 0
        rc, out, _ = run(
            capsys,
            "lists",
            "--home",
            str(lanzhou),
            "--origin",
            "jinan",
            "--removed",
            "--limit",
            "200",
        )
        assert out.count("removed (correction)") == 1
        rc, out, _ = run(capsys, "status", "--home", str(lanzhou), "--timeout", "1")
        assert "jinan" in out and "feeds" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)

    # With jinan stopped, a sync is a clear network failure.
    rc, out, _ = run(capsys, "sync", "--home", str(lanzhou), "--timeout", "2")
    assert rc == 4
    assert "unreachable" in out


def test_import_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "jinan"
    assert main(["init", "--home", str(home), "--name", "jinan", "--region", "370100"]) == 0
    name = "政府采购严重违法失信行为记录名单"
    good = _sample_csv(tmp_path / "l.csv", 10)
    lines = good.read_text(encoding="utf-8").splitlines(keepends=True)
    bad_row = lines[2].replace(lines[2].split(",")[2], "91370100MA0000000X", 1)
    (tmp_path / "mixed.csv").write_text(
        "".join([*lines[:2], bad_row, *lines[3:]]), encoding="utf-8"
    )
    capsys.readouterr()
    rc, out, err = run(
        capsys, "import", "--home", str(home), "--list", name, str(tmp_path / "mixed.csv")
    )
    assert rc == 2
    assert "mixed.csv:3: 统一社会信用代码:" in err and "Traceback" not in err
    counts = [line for line in out.splitlines() if line.startswith("│")][-1]
    read, added, _upd, _rem, _same, expired, withheld, quarantined, _size = (
        int(c) for c in counts.strip("│").split("│")
    )
    assert (read, quarantined) == (10, 1)
    # every good row imported (or not shared: already expired, or minor)
    assert added + expired + withheld == 9

    (tmp_path / "nohead.csv").write_text("主体名称,名单名称\nx,y\n", encoding="utf-8")
    rc, _, err = run(
        capsys, "import", "--home", str(home), "--list", name, str(tmp_path / "nohead.csv")
    )
    assert rc == 2
    assert "missing" in one_line_error(err)
    rc, _, err = run(
        capsys, "import", "--home", str(home), "--list", name, str(tmp_path / "none.csv")
    )
    assert rc == 2
    assert "none.csv" in one_line_error(err)
