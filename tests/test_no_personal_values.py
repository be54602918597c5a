"""No personal value where it does not belong (issue 11, item 3).

Canary persons (resident IDs that pass every check, names no list holds by chance, a legal
representative's name and ID, a first-generation ID, a malformed ID) are imported at an origin
and travel the whole federation: two `creditnode serve` processes logging at debug level to
files, and every command as a process of its own, good input and bad. Then every byte the run
produced is searched: every stdout and stderr, every log, every file under both homes except
the origin's own database (which holds its own list's personal openings by right) and the
input files. A raw ID or a name anywhere is a leak; so is a masked ID or a pseudonym in a log
line, an error or a progress line (the forms a command's answer may show on its stdout).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.samples import generate_rows, write_csv
from node.feeds.dates import shanghai_today
from node.identity.codes import court_mask, resident_id_check_char
from node.identity.validate import upgrade_15
from node.policy.masks import name_surname
from tests.test_cli import _enrolled_pair

CLI = [sys.executable, "-m", "node.cli"]
LIST = "procurement-serious"
LIST_NAME = "政府采购严重违法失信行为记录名单"
# Wide enough that no table cell is folded (a value split over two lines would hide from the
# search), no colour codes between its characters, and progress bars drawn as on a terminal.
ENV = {
    **os.environ, "COLUMNS": "1000", "NO_COLOR": "1", "TTY_COMPATIBLE": "1",
    "TTY_INTERACTIVE": "1",
    "CREDITNODE_REIDENTIFICATION_THRESHOLD": "1000",  # the agreement's name masks (AGREEMENT)
    "CREDITNODE_METRICS_LISTEN": "",  # two servers here; test_metrics checks the labels
}  # fmt: skip
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
SQUASH = re.compile(r"[\s\u2500-\u257f]+")  # whitespace and box drawing

# A Han character from the CJK Unified Ideographs block that names seldom use, so that a
# canary name matches only itself.
_RARE_HAN = [chr(c) for c in range(0x9B3C, 0x9C00)]
_SURNAMES = "金欧赵钱孙李周吴郑王"


def _canary_name() -> str:
    return secrets.choice(_SURNAMES) + "".join(secrets.choice(_RARE_HAN) for _ in range(3))


def _canary_id(birth_year_from: int = 1950) -> str:
    division = secrets.choice(("370102", "370103", "620102", "110105", "140105"))
    birth = dt.date(birth_year_from, 1, 1) + dt.timedelta(days=secrets.randbelow(365 * 45))
    first17 = f"{division}{birth:%Y%m%d}{secrets.randbelow(1000):03d}"
    return first17 + resident_id_check_char(first17)


def _first_generation(idno: str) -> str:
    """The 15-digit ID a person born in the 1900s had before *idno* (no century, no check)."""
    return idno[:6] + idno[8:17]


def _broken(idno: str) -> str:
    """*idno* with a check character that fails: still a person's ID, not a valid one."""
    wrong = "0" if idno[-1] != "0" else "1"
    return idno[:-1] + wrong


@dataclass
class Canaries:
    """The personal values of one run, by what they are."""

    person_ids: list[str] = field(default_factory=lambda: [_canary_id(), _canary_id()])
    person_names: list[str] = field(default_factory=lambda: [_canary_name(), _canary_name()])
    rep_id: str = field(default_factory=_canary_id)
    rep_name: str = field(default_factory=_canary_name)
    legacy_id: str = field(default_factory=lambda: _first_generation(_canary_id(1930)))
    legacy_name: str = field(default_factory=_canary_name)
    bad_id: str = field(default_factory=lambda: _broken(_canary_id()))
    bad_name: str = field(default_factory=_canary_name)

    def raw(self) -> dict[str, str]:
        """Values that must appear nowhere outside the origin's database and the input."""
        return {
            **{f"person ID {i}": v for i, v in enumerate(self.person_ids)},
            **{f"person name {i}": v for i, v in enumerate(self.person_names)},
            "legal rep ID": self.rep_id,
            "legal rep name": self.rep_name,
            "first-generation ID": self.legacy_id,
            "its 18-character upgrade": upgrade_15(self.legacy_id),
            "first-generation ID's name": self.legacy_name,
            "malformed ID": self.bad_id,
            "malformed ID's name": self.bad_name,
        }

    def desensitised(self) -> dict[str, str]:
        """Forms an answer may show on stdout, but no log line, error or progress line."""
        ids = [*self.person_ids, self.rep_id, upgrade_15(self.legacy_id), self.bad_id]
        return {f"masked ID {court_mask(i)}": court_mask(i) for i in ids} | {
            f"tax-masked ID of {i[:6]}": i[:6] + "********" + i[14:] for i in ids
        }


def _rows(c: Canaries, today: dt.date) -> list[dict[str, str]]:
    """Canary rows of the procurement list, live today, built on a generated valid row."""
    template = next(
        r
        for r in generate_rows(
            40, seed=11, list_name=LIST_NAME, list_type="black", region="370100", today=today
        )
        if r["主体类型"] == "法人和其他组织" and r["公示截止日期"] > today.isoformat()
    )

    def person(n: int, idno: str, name: str) -> dict[str, str]:
        return template | {
            "主体名称": name, "主体类型": "自然人", "统一社会信用代码": "", "证件号码": idno,
            "法定代表人": "", "法定代表人证件号码": "", "认定文书号": f"济财采〔2026〕9{n:02d}号",
        }  # fmt: skip

    return [
        person(1, c.person_ids[0], c.person_names[0]),
        person(2, c.person_ids[1], c.person_names[1]),
        person(3, c.legacy_id, c.legacy_name),
        person(4, c.bad_id, c.bad_name),  # quarantined: its ID fails the check character
        template | {"法定代表人": c.rep_name, "法定代表人证件号码": c.rep_id},
    ]


# Surname-masked names to queries (3,500 candidates each: the nodes run with a
# re-identification threshold of 1,000, see ENV) and the pseudonym in the feed. No form of an
# ID: next to the pseudonym evaluations a query by person needs, any ID mask re-identifies.
AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["enforcement"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { person_name = "mask:name_surname", legal_rep_name = "mask:name_surname" }

[feed.list_entry]
person_pseudonym = "clear"
"""


@dataclass
class Ran:
    argv: Sequence[str]
    code: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return (self.out + self.err).decode("utf-8", "replace")


Started = tuple[Sequence[str], bytes, subprocess.Popen[bytes]]


class Runs:
    """Every command run, its exit code and everything it wrote."""

    def __init__(self) -> None:
        self.all: list[Ran] = []

    def start(self, *argv: str, stdin: str | None = None) -> Started:
        proc = subprocess.Popen(
            [*CLI, *argv], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        return argv, (stdin or "").encode(), proc

    def wait(self, started: Iterable[Started]) -> list[Ran]:
        done = []
        for argv, stdin, proc in started:
            out, err = proc.communicate(stdin, timeout=90)
            done.append(Ran(argv, proc.returncode, out, err))
        self.all.extend(done)
        return done

    def run(self, *argv: str, stdin: str | None = None, code: int = 0) -> Ran:
        [ran] = self.wait([self.start(*argv, stdin=stdin)])
        assert ran.code == code, (ran.argv, ran.code, ran.text)
        return ran

    def parallel(self, *commands: tuple[tuple[str, ...], str | None, int]) -> list[Ran]:
        """Run independent commands at once: (argv, stdin, expected exit code) each."""
        done = self.wait([self.start(*argv, stdin=stdin) for argv, stdin, _ in commands])
        for ran, (_, _, code) in zip(done, commands, strict=True):
            assert ran.code == code, (ran.argv, ran.code, ran.text)
        return done


def one_line_error(ran: Ran) -> str:
    lines = [line for line in ran.err.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.text
    return lines[0]


def _serve(home: Path) -> subprocess.Popen[bytes]:
    env = ENV | {
        "CREDITNODE_HEARTBEAT_SECONDS": "0.3",
        "CREDITNODE_LOG_LEVEL": "debug",  # everything the node and its libraries would say
        "CREDITNODE_LOG_FILE": str(home / "serve.log"),
    }
    return subprocess.Popen(
        [*CLI, "serve", "--home", str(home)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_serving(runs: Runs, *homes: Path) -> None:
    deadline = time.monotonic() + 30
    pending = list(homes)
    while pending:
        assert time.monotonic() < deadline, f"{pending} did not start serving"
        status = runs.wait([runs.start("status", "--home", str(h), "--timeout", "1")
                            for h in pending])  # fmt: skip
        pending = [h for h, ran in zip(pending, status, strict=True) if ran.code != 0]
        if pending:
            time.sleep(0.2)


def _search(blob: bytes, needles: dict[str, str]) -> list[str]:
    """Which needles occur in *blob*: as UTF-8 or JSON-escaped, or once colour codes, line
    breaks, spaces and table borders are taken out (a value folded over two lines)."""
    plain = ANSI.sub(b"", blob)
    squashed = SQUASH.sub("", plain.decode("utf-8", "replace")).encode()
    found = []
    for label, value in needles.items():
        forms = {value.encode(), json.dumps(value)[1:-1].encode()}
        if any(f in blob or f in plain or f in squashed for f in forms):
            found.append(label)
    return found


def _pseudonyms(db: Path) -> dict[str, str]:
    """Every pseudonym a node's database holds (the forms a log must not carry either)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT value FROM disclosures WHERE field = 'person_pseudonym'"
        ).fetchall()
    return {f"pseudonym {v}": v for (v,) in rows if v}


def _person_entry(db: Path) -> str:
    """The id of an active entry about a person in the node's own list."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        [(entry_id,), *_] = conn.execute(
            "SELECT entry_id FROM list_state WHERE uscc = '' AND status = 1 ORDER BY entry_id"
        ).fetchall()
    return str(entry_id)


def test_no_command_and_no_node_lets_a_personal_value_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    homes = tmp_path / "homes"
    homes.mkdir()
    jinan, lanzhou = _enrolled_pair(homes)
    setup = capsys.readouterr()
    inputs = tmp_path / "input"
    inputs.mkdir()
    c = Canaries()
    today = shanghai_today()
    csv_file = inputs / "canaries.csv"
    write_csv(csv_file, _rows(c, today))
    removals = inputs / "removals.csv"  # names a canary ID, states no date: refused
    removals.write_text(
        f"证件号码,认定文书号,移出原因\n{c.person_ids[0]},济财采〔2026〕901号,correction\n",
        encoding="utf-8",
    )
    h = {"jinan": str(jinan), "lanzhou": str(lanzhou)}
    runs = Runs()
    servers = [_serve(jinan), _serve(lanzhou)]
    try:
        _wait_serving(runs, jinan, lanzhou)
        imp = ["import", "--home", h["jinan"], "--list", LIST, str(csv_file)]
        dry = runs.run(*imp, "--dry-run", code=2)  # one row quarantined: exit 2
        assert "QUARANTINE" in dry.text and "证件号码" in dry.text
        ran = runs.run(*imp, code=2)
        assert "canaries.csv:5: 证件号码:" in ran.text  # the quarantined row, named, not shown
        assert b"importing canaries.csv" in ran.err  # the progress line was drawn
        runs.parallel(
            (("identity", "check", str(csv_file), "--column", "证件号码"), None, 2),
            (("identity", "check", str(csv_file), "--column", "证件号码", "--format", "json"),
             None, 2),
            (("identity", "check", str(csv_file), "--column", "法定代表人证件号码"), None, 2),
            (("import", "--home", h["jinan"], "--list", LIST, "--removals", str(removals)),
             None, 2),
            (("sync", "--home", h["lanzhou"]), None, 0),
        )  # fmt: skip

        # An agreement opens the pseudonym in the feed, masked names to queries; the serving
        # origin re-reads agreements within a second.
        (jinan / "agreements").mkdir(exist_ok=True)
        (jinan / "agreements" / "lanzhou.toml").write_text(AGREEMENT, encoding="utf-8")
        time.sleep(1.2)
        explain = ("policy", "explain", "--home", h["jinan"], "--peer", "lanzhou")
        runs.parallel(
            (("policy", "check", "--home", h["jinan"]), None, 0),
            ((*explain, "--purpose", "enforcement"), None, 0),
            (("sync", "--home", h["lanzhou"], "--disclose"), None, 0),
        )
        person = c.person_ids[0]
        found, _, asked_person, asked_legacy, *_ = runs.parallel(
            (("entity", "--home", h["jinan"], "--person-id", "-", "--purpose", "enforcement"),
             person + "\n", 0),
            (("entity", "--home", h["lanzhou"], "--person-id", "-", "--purpose", "enforcement"),
             person + "\n", 0),
            (("query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement",
              "--person-id", "-"), f"{person}\n", 0),
            (("query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement",
              "--person-id", "-"), f"{c.legacy_id}\n", 0),
            (("lists", "--home", h["lanzhou"]), None, 0),
            (("lists", "--home", h["jinan"], "--removed"), None, 0),
        )  # fmt: skip
        assert LIST_NAME in found.text and court_mask(person) in found.text
        assert f"person={name_surname(c.person_names[0])} (mask:name_surname)" in asked_person.text
        assert f"person={name_surname(c.legacy_name)} (mask:name_surname)" in asked_legacy.text
        uscc = _rows(c, today)[-1]["统一社会信用代码"]
        asked = runs.run(
            "query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement", "--uscc", uscc
        )
        assert f"legal rep={name_surname(c.rep_name)} (mask:name_surname)" in asked.text

        # Bad input: an ID as an argument (refused, not repeated), malformed or missing IDs.
        bad = c.bad_id + "\n"
        refused = runs.parallel(
            (("entity", "--home", h["jinan"], "--person-id", person), None, 2),
            (("query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement",
              "--person-id", person), None, 2),
            (("entity", "--home", h["jinan"], "--uscc", person), None, 2),
            (("entity", "--home", h["jinan"], "--person-id", "-", "--purpose", "enforcement"),
             bad, 2),
            (("query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement",
              "--person-id", "-"), bad, 2),
            (("entity", "--home", h["jinan"], "--person-id", "-", "--purpose", "enforcement"),
             "", 2),
            (("remove", "--home", h["jinan"], "--list", LIST, "--uscc", person, "--reason",
              "correction", "--date", today.isoformat(), "--doc", "济财采更〔2026〕1号", "--yes"),
             None, 2),
            (("entity", "--home", h["jinan"], "--org-code", c.bad_id[:-1]), None, 2),
            (("query", "--home", h["lanzhou"], "jinan", "--purpose", "enforcement",
              "--uscc", upgrade_15(c.legacy_id)), None, 2),
            (("lists", "--home", h["lanzhou"], "--uscc", c.rep_id), None, 2),
        )  # fmt: skip
        for ran in refused[:2]:
            assert "give --person-id - and type or pipe the ID" in one_line_error(ran)
        for ran in refused[2:]:
            one_line_error(ran)

        entry = _person_entry(jinan / "node.db")
        runs.run(
            "remove", "--home", h["jinan"], "--list", LIST, "--entry", entry, "--reason",
            "correction", "--date", today.isoformat(), "--doc", "济财采更〔2026〕2号", "--yes",
        )  # fmt: skip
        runs.run("sync", "--home", h["lanzhou"])
        runs.parallel(
            (("status", "--home", h["jinan"]), None, 0),
            (("status", "--home", h["lanzhou"]), None, 0),
            (("status", "--home", h["lanzhou"], "--peer", "jinan"), None, 0),
            (("identity", "conflicts", "--home", h["jinan"]), None, 0),
            (("identity", "conflicts", "--home", h["lanzhou"]), None, 0),
            (("lists", "--home", h["lanzhou"], "--removed"), None, 0),
            (("verify", "--home", h["jinan"], "--format", "json"), None, 0),
            (("verify", "--home", h["lanzhou"]), None, 0),
        )
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        served = [proc.communicate(timeout=30) for proc in servers]
    assert [p.returncode for p in servers] == [0, 0], served

    # The search. Raw values: nowhere. Desensitised forms: not in logs or on stderr.
    raw = c.raw()
    strict = raw | c.desensitised() | _pseudonyms(jinan / "node.db")
    strict |= _pseudonyms(lanzhou / "node.db")
    assert any(k.startswith("pseudonym") for k in strict), "the origin holds no pseudonym"
    leaks: list[str] = []
    outputs: list[tuple[str, bytes, dict[str, str]]] = [
        ("setup stdout", setup.out.encode(), raw),
        ("setup stderr", setup.err.encode(), strict),
    ]
    for ran in runs.all:
        what = " ".join(ran.argv[:2])
        outputs += [(f"stdout of {what}", ran.out, raw), (f"stderr of {what}", ran.err, strict)]
    for name, (out, err) in zip(("jinan", "lanzhou"), served, strict=True):
        outputs += [(f"{name} serve stdout", out, strict), (f"{name} serve stderr", err, strict)]
    own_db = {jinan / n for n in ("node.db", "node.db-wal", "node.db-shm", "node.db-journal")}
    files = [p for p in sorted(homes.rglob("*")) if p.is_file() and p not in own_db]
    assert jinan / "serve.log" in files and lanzhou / "serve.log" in files
    assert (jinan / "serve.log").stat().st_size > 0
    for path in files:
        needles = strict if path.suffix == ".log" else raw
        outputs.append((str(path.relative_to(tmp_path)), path.read_bytes(), needles))
    for where, blob, needles in outputs:
        leaks += [f"{label} in {where}" for label in _search(blob, needles)]

    # The origin's own database may hold its list's openings, but not in what it records about
    # imports, quarantined rows or disclosures.
    with sqlite3.connect(f"file:{jinan / 'node.db'}?mode=ro", uri=True) as conn:
        for table in ("imports", "quarantine", "audit_entries"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                text = "\x1f".join(str(v) for v in row).encode()
                leaks += [f"{label} in jinan's {table} table" for label in _search(text, strict)]
        audit = conn.execute(
            "SELECT l.data FROM log_leaves l JOIN logs g ON g.id = l.log_id "
            "WHERE g.origin LIKE '%/audit'"
        ).fetchall()
        for (data,) in audit:
            leaks += [f"{label} in jinan's audit log" for label in _search(bytes(data), strict)]
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert quarantined >= 1
    assert not leaks, "personal values leaked:\n" + "\n".join(leaks)


def test_the_prompt_on_a_terminal_does_not_echo(tmp_path: Path) -> None:
    """With a terminal on stdin, `--person-id -` prompts and reads without echo."""
    home = tmp_path / "jinan"
    subprocess.run(
        [*CLI, "init", "--home", str(home), "--name", "jinan", "--region", "370100"],
        env=ENV, check=True, capture_output=True,
    )  # fmt: skip
    idno = _canary_id()
    master, slave = pty.openpty()
    # A session of its own: no controlling terminal, so getpass reads the pty on stdin.
    proc = subprocess.Popen(
        [*CLI, "entity", "--home", str(home), "--person-id", "-", "--purpose", "enforcement"],
        env=ENV, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    assert proc.stderr is not None
    stderr = proc.stderr.fileno()
    prompt = b""
    deadline = time.monotonic() + 30
    while b"resident ID" not in prompt:
        assert time.monotonic() < deadline and proc.poll() is None, prompt
        ready, _, _ = select.select([stderr, master], [], [], 0.5)
        if stderr in ready:
            prompt += os.read(stderr, 4096)
        if master in ready:
            prompt += os.read(master, 4096)  # a prompt written to the terminal
    os.write(master, idno.encode() + b"\n")
    out, err = proc.communicate(timeout=60)
    echoed = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        echoed += chunk
    os.close(master)
    assert proc.returncode == 0, (out, err)
    assert court_mask(idno) in out.decode()
    for blob in (prompt, echoed, out, err):
        assert idno.encode() not in blob
