"""Imports that cannot remove by accident, stated removals, and the list catalogue's rules on
import: real databases (SQLite and PostgreSQL through the fixtures), the CLI for exit codes."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters.list_csv import COLUMNS, OPTIONAL_COLUMNS
from adapters.samples import generate_rows, write_csv
from keys import SigningKey
from node.api import feeds
from node.cli import main
from node.feeds import catalogue
from node.feeds.dates import shanghai_today
from node.feeds.importer import (
    ImportRefused,
    ImportSummary,
    Removal,
    find_held,
    import_list,
    mass_removal_problems,
    read_removals,
    remove_entries,
)
from node.feeds.logstore import LEAVES, LOGS
from node.feeds.publisher import Publisher
from node.feeds.state import STATE
from node.home import load_home
from node.identity.pseudonym_key import PseudonymKey
from node.storage import Store

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = catalogue.load(ROOT / "deploy" / "lists.yellow-river.toml")
PROCUREMENT = CATALOGUE.resolve("procurement-serious")
TAX = CATALOGUE.resolve("tax-major")
GENERAL = CATALOGUE.resolve("joint-punishment")
ORIGIN = "creditnode://yellow-river/jinan"
DAY = dt.date(2026, 11, 1)  # "today" for the library-level tests
KEY = PseudonymKey.generate()


def rows_of(
    n: int, seed: int = 7, spec: catalogue.ListSpec = PROCUREMENT, today: dt.date = DAY
) -> list[dict[str, str]]:
    return list(
        generate_rows(
            n, seed=seed, list_name=spec.name, list_type=spec.kind, region="370100", today=today
        )
    )


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    write_csv(path, rows)
    return path


def header_only(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow((*COLUMNS, *OPTIONAL_COLUMNS))
    return path


@pytest.fixture
async def pub(db_url: str) -> AsyncIterator[Publisher]:
    store = await Store.open(db_url)
    try:
        yield await Publisher.open(store, ORIGIN, SigningKey.generate(ORIGIN))
    finally:
        await store.close()


async def active_uscc(p: Publisher) -> set[str]:
    async with p.store.engine.connect() as conn:
        rows = await conn.execute(
            select(STATE.c.uscc, STATE.c.entry_id).where(
                STATE.c.log_id == p.log.log_id, STATE.c.status == feeds.ENTRY_STATUS_ACTIVE
            )
        )
        return {u or e for u, e in rows}


async def leaf(p: Publisher, idx: int) -> feeds.LeafEntry:
    async with p.store.engine.connect() as conn:
        data = (
            await conn.execute(
                select(LEAVES.c.data).where(LEAVES.c.log_id == p.log.log_id, LEAVES.c.idx == idx)
            )
        ).scalar_one()
    return feeds.LeafEntry.FromString(data)


async def stored_size(p: Publisher) -> int:
    async with p.store.engine.connect() as conn:
        size = await conn.execute(select(LOGS.c.size).where(LOGS.c.origin == ORIGIN))
        return int(size.scalar_one())


async def do_import(
    p: Publisher,
    path: Path | None,
    *,
    spec: catalogue.ListSpec = PROCUREMENT,
    today: dt.date = DAY,
    full_export: bool = False,
    removal: Removal | None = None,
    removals: Path | None = None,
    max_removals: int | None = None,
    confirm_removals: int | None = None,
    dry_run: bool = False,
) -> ImportSummary:
    return await import_list(
        p, path, spec, pseudonym_key=KEY, today=today, full_export=full_export, removal=removal,
        removals=removals, max_removals=max_removals, confirm_removals=confirm_removals,
        dry_run=dry_run,
    )  # fmt: skip


CORRECTION = Removal("correction", DAY, "济财采更〔2026〕1号")


# --- without --full-export nothing is removed by absence -----------------------------------------


async def test_an_import_only_adds_and_updates(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(20)
    s = await do_import(pub, write(tmp_path / "a.csv", rows))
    assert (s.added, s.removed) == (20, 0)
    before = await active_uscc(pub)
    changed = dict(rows[5], 列入原因="与其他供应商恶意串通（更正）")
    s = await do_import(pub, write(tmp_path / "b.csv", [changed, *rows[10:]]))
    assert (s.added, s.updated, s.removed, s.unchanged) == (0, 1, 0, 10)
    assert await active_uscc(pub) == before  # the 9 rows missing from the file stay listed


async def test_entries_carry_the_catalogue_code_and_decision_date(
    pub: Publisher, tmp_path: Path
) -> None:
    rows = rows_of(5)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    async with pub.store.engine.connect() as conn:
        codes = {r[0] for r in await conn.execute(select(STATE.c.list_code))}
    assert codes == {"procurement-serious"}
    assert (await leaf(pub, 0)).list_code == "procurement-serious"
    [held] = await find_held(
        pub, PROCUREMENT, uscc=next(r for r in rows if r["统一社会信用代码"])["统一社会信用代码"]
    )
    assert held.entry.decision_date and held.entry.decision_date <= held.entry.listing_date


# --- the accidents, refused with nothing appended ------------------------------------------------


async def test_full_export_refusals_append_nothing(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(40)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    size, listed = await stored_size(pub), await active_uscc(pub)

    wrong = write(tmp_path / "tax.csv", rows_of(40, seed=3, spec=TAX))  # another list's export
    with pytest.raises(ImportRefused, match="40 of 40 rows quarantined"):
        await do_import(pub, wrong, full_export=True, removal=CORRECTION)

    damaged = [dict(r) for r in rows]
    victim = next(r for r in damaged if r["统一社会信用代码"])
    victim["统一社会信用代码"] = "91370100MA0000000X"  # neither check character holds
    with pytest.raises(ImportRefused, match="1 of 40 rows quarantined"):
        await do_import(
            pub, write(tmp_path / "d.csv", damaged), full_export=True, removal=CORRECTION
        )

    with pytest.raises(ImportRefused, match="has a header and no rows"):
        await do_import(pub, header_only(tmp_path / "h.csv"), full_export=True, removal=CORRECTION)

    with pytest.raises(ImportRefused, match="no removal is stated"):
        await do_import(pub, write(tmp_path / "m.csv", rows[:-1]), full_export=True)

    assert await stored_size(pub) == size and pub.log.frontier.size == size
    assert await active_uscc(pub) == listed

    # The same damaged file without --full-export imports the rest and removes nothing.
    s = await do_import(pub, write(tmp_path / "d.csv", damaged))
    assert len(s.quarantined) == 1 and s.removed == 0
    assert await active_uscc(pub) == listed


async def test_max_removals_and_confirmed_removals(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(40)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    size = await stored_size(pub)
    fewer = write(tmp_path / "b.csv", rows[12:])  # 12 gone; default limit max(10, 5% of 40)
    with pytest.raises(ImportRefused, match="more than --max-removals 10"):
        await do_import(pub, fewer, full_export=True, removal=CORRECTION)
    with pytest.raises(ImportRefused, match="not the 11 confirmed"):
        await do_import(pub, fewer, full_export=True, removal=CORRECTION, confirm_removals=11)
    with pytest.raises(ImportRefused, match="not the 13 confirmed"):
        await do_import(pub, fewer, full_export=True, removal=CORRECTION, confirm_removals=13)
    assert await stored_size(pub) == size

    plan = await do_import(pub, fewer, full_export=True, removal=CORRECTION, dry_run=True)
    assert plan.stated_removals == 12 and "max-removals" in plan.refused
    assert await stored_size(pub) == size

    s = await do_import(pub, fewer, full_export=True, removal=CORRECTION, confirm_removals=12)
    assert s.removed == 12 and await stored_size(pub) == size + 12
    removal = await leaf(pub, size)
    assert removal.event == feeds.EVENT_TYPE_REMOVE
    assert removal.removal_reason == feeds.REMOVAL_REASON_CORRECTION
    assert (removal.removal_date, removal.removal_doc_no) == ("2026-11-01", "济财采更〔2026〕1号")
    assert removal.list_code == "procurement-serious"

    s = await do_import(pub, write(tmp_path / "c.csv", rows[14:]), full_export=True,
                        removal=CORRECTION, max_removals=2)  # fmt: skip
    assert s.removed == 2


async def test_dry_run_plans_without_appending_or_leaking(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(40)
    await do_import(pub, write(tmp_path / "a.csv", rows[:30]))
    size = await stored_size(pub)
    person = next(r for r in rows[:30] if r["证件号码"])
    edited = [dict(r) for r in rows if r is not person]
    edited[0]["列入原因"] = "与其他供应商恶意串通（更正）"
    plan = await do_import(
        pub, write(tmp_path / "b.csv", edited), full_export=True, removal=CORRECTION, dry_run=True
    )
    actions = sorted(c.action for c in plan.changes)
    assert actions.count("add") == 10 and actions.count("update") == 1
    assert actions.count("remove") == 1 and plan.refused == ""
    [gone] = [c for c in plan.changes if c.action == "remove"]
    assert gone.key.startswith("person entry ") and "correction 2026-11-01" in gone.why
    text = "\n".join(map(str, plan.changes))
    for r in rows:
        for column in ("证件号码", "法定代表人证件号码"):
            assert not r[column] or r[column] not in text
    assert await stored_size(pub) == size


# --- stated removals -----------------------------------------------------------------------------


async def test_a_removals_file(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(20)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    size = await stored_size(pub)
    orgs = [r for r in rows if r["统一社会信用代码"]]
    listed = "2026-01-01"
    target = tmp_path / "r.csv"
    target.write_text(
        "统一社会信用代码,认定文书号,移出原因,移出日期,移出文书号\n"
        f"{orgs[0]['统一社会信用代码']},{orgs[0]['认定文书号']},撤销,2026-10-30,撤〔2026〕1号\n"
        f"{orgs[1]['统一社会信用代码']},{orgs[1]['认定文书号']},fulfilled,{listed},\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRefused, match="移出文书号: must be stated"):
        await do_import(pub, None, removals=target)
    with pytest.raises(ImportRefused, match="removal date precedes the decision date"):
        await do_import(pub, None, removals=target, removal=Removal("correction", DAY, "X1"))
    assert await stored_size(pub) == size
    text = target.read_text(encoding="utf-8").replace(f",{listed},", ",2026-10-31,")
    target.write_text(text, encoding="utf-8")
    s = await do_import(pub, None, removals=target, removal=Removal("correction", DAY, "X1"))
    assert s.removed == 2
    first, second = await leaf(pub, size), await leaf(pub, size + 1)
    assert (first.removal_reason, first.removal_doc_no) == (
        feeds.REMOVAL_REASON_REVOCATION,
        "撤〔2026〕1号",
    )
    assert (second.removal_reason, second.removal_date, second.removal_doc_no) == (
        feeds.REMOVAL_REASON_FULFILLED,
        "2026-10-31",
        "X1",
    )
    # The same file again names entries no longer active: refused, nothing appended.
    with pytest.raises(ImportRefused, match="no active entry"):
        await do_import(pub, None, removals=target, removal=Removal("correction", DAY, "X1"))
    assert await stored_size(pub) == size + 2


async def test_a_repair_before_the_minimum_period_is_refused(
    pub: Publisher, tmp_path: Path
) -> None:
    rows = rows_of(10)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    size = await stored_size(pub)
    org = next(r for r in rows if r["统一社会信用代码"])
    [held] = await find_held(pub, PROCUREMENT, uscc=org["统一社会信用代码"])
    decided = dt.date.fromisoformat(held.entry.decision_date)
    early = Removal("repair", decided + dt.timedelta(days=300), "修〔2026〕1号")
    with pytest.raises(ImportRefused, match=r"repair is possible from .*12 months after"):
        await remove_entries(pub, PROCUREMENT, [held], early, today=early.date)
    assert await stored_size(pub) == size
    # A correction or revocation may come at any time; a repair after a year may come too.
    on_time = Removal("repair", catalogue.add_months(decided, 12), "修〔2027〕1号")
    assert await remove_entries(pub, PROCUREMENT, [held], on_time, today=on_time.date) == 1
    other = next(r for r in rows if r["统一社会信用代码"] and r is not org)
    [held2] = await find_held(pub, PROCUREMENT, uscc=other["统一社会信用代码"])
    revoked = Removal("revocation", decided + dt.timedelta(days=30), "撤〔2026〕2号")
    assert await remove_entries(pub, PROCUREMENT, [held2], revoked, today=DAY) == 1
    assert (await leaf(pub, size)).removal_reason == feeds.REMOVAL_REASON_REPAIR
    assert (await leaf(pub, size + 1)).removal_reason == feeds.REMOVAL_REASON_REVOCATION


async def test_expired_entries_are_removed_as_expiry(pub: Publisher, tmp_path: Path) -> None:
    rows = rows_of(10)
    await do_import(pub, write(tmp_path / "a.csv", rows))
    size = await stored_size(pub)
    ends = sorted(dt.date.fromisoformat(r["公示截止日期"]) for r in rows)
    later = ends[2] + dt.timedelta(days=1)  # the first three have ended
    s = await do_import(pub, write(tmp_path / "b.csv", rows[:5]), today=later)  # not a full export
    assert s.removed == 3 and s.expired == sum(
        1 for r in rows[:5] if dt.date.fromisoformat(r["公示截止日期"]) < later
    )
    reasons = [await leaf(pub, i) for i in range(size, size + 3)]
    assert {r.removal_reason for r in reasons} == {feeds.REMOVAL_REASON_EXPIRY}
    assert all(dt.date.fromisoformat(r.removal_date) <= later for r in reasons)


# --- the catalogue's rules on rows ---------------------------------------------------------------


async def test_rows_outside_their_window_are_quarantined_naming_the_rule(
    pub: Publisher, tmp_path: Path
) -> None:
    rows = rows_of(40)
    too_long = dict(rows[0], 公示截止日期="2031-01-01")
    person = next(r for r in rows if r["证件号码"])
    person_short = dict(person, 公示截止日期=rows[0]["列入日期"])
    grey = dict(rows[2], 名单类型="红名单", 严重程度="")
    s = await do_import(pub, write(tmp_path / "a.csv", [too_long, person_short, grey]))
    reasons = {q.row: q.reason for q in s.quarantined}
    assert "《中华人民共和国政府采购法》第七十七条" in reasons[2] and "longer" in reasons[2]
    assert "12 to 36 months" in reasons[3] and "shorter" in reasons[3]
    assert "名单类型" in reasons[4] and "黑名单 in the list catalogue" in reasons[4]
    for reason in reasons.values():
        assert person["证件号码"] not in reason and person["主体名称"] not in reason
        assert "2031" not in reason

    general = [r for r in rows_of(30, seed=5, spec=GENERAL) if r["严重程度"] != "轻微"]
    no_date = dict(general[0], 认定日期="", 认定文书号="示〔2026〕999号")
    minor = dict(general[1], 严重程度="轻微", 认定日期="2026-10-20", 列入日期="2026-10-25",
                 公示截止日期="2026-12-10", 认定文书号="示〔2026〕998号")  # fmt: skip
    s = await do_import(pub, write(tmp_path / "g.csv", [*general, no_date, minor]), spec=GENERAL)
    [missing] = [q for q in s.quarantined if q.column == "认定日期"]
    assert "信用修复管理办法" in missing.reason
    # A minor entry inside its period is not shared (the general rule's default).
    assert s.withheld == 1
    assert s.added + s.expired == len(general)


# --- the CLI: exit codes, one error line, nothing appended ---------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def log_size(home: Path) -> int:
    async def read() -> int:
        loaded = load_home(home)
        async with Store.opened(loaded.database_url) as store, store.engine.connect() as conn:
            size = await conn.execute(
                select(LOGS.c.size).where(LOGS.c.origin == loaded.identity.uri)
            )
            return int(size.scalar() or 0)

    return asyncio.run(read())


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "jinan"
    assert main(["init", "--home", str(root), "--name", "jinan", "--region", "370100"]) == 0
    assert (root / "lists.toml").read_bytes() == (
        ROOT / "deploy/lists.yellow-river.toml"
    ).read_bytes()
    capsys.readouterr()
    return root


def test_cli_refuses_the_three_accidents(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    today = shanghai_today()
    rows = rows_of(32, today=today)
    good = write(tmp_path / "good.csv", rows)
    assert run(capsys, "import", "--home", str(home), "--list", PROCUREMENT.code, str(good))[0] == 0
    size = log_size(home)
    stated = ["--removal-reason", "correction", "--removal-date", today.isoformat(),
              "--removal-doc", "济财采更〔2026〕1号"]  # fmt: skip
    base = ["import", "--home", str(home), "--list", PROCUREMENT.name, "--full-export", *stated]

    wrong = write(tmp_path / "wrong.csv", rows_of(32, seed=3, spec=TAX, today=today))
    rc, _, err = run(capsys, *base, str(wrong))
    assert rc == 2 and "32 of 32 rows quarantined" in one_error(err)

    damaged = [dict(r) for r in rows]
    damaged[4]["统一社会信用代码"] = "91370100MA0000000X"
    rc, _, err = run(capsys, *base, str(write(tmp_path / "damaged.csv", damaged)))
    assert rc == 2 and "1 of 32 rows quarantined" in one_error(err)

    rc, _, err = run(capsys, *base, str(header_only(tmp_path / "empty.csv")))
    assert rc == 2 and "has a header and no rows" in one_error(err)

    rc, _, err = run(capsys, "import", "--home", str(home), "--list", PROCUREMENT.code,
                     "--full-export", str(write(tmp_path / "less.csv", rows[1:])))  # fmt: skip
    assert rc == 2 and "no removal is stated" in one_error(err)
    assert log_size(home) == size

    rc, out, err = run(capsys, "import", "--home", str(home), "--list", PROCUREMENT.code,
                       "--dry-run", "--full-export", *stated,
                       str(tmp_path / "less.csv"))  # fmt: skip
    assert rc == 0 and "REMOVE" in out and "1 removals other than expiry" in out
    assert log_size(home) == size
    rc, _, _ = run(capsys, *base, "--confirm-removals", "1", str(tmp_path / "less.csv"))
    assert rc == 0 and log_size(home) == size + 1


def test_cli_list_must_be_in_the_catalogue(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write(tmp_path / "a.csv", rows_of(3, today=shanghai_today()))
    rc, _, err = run(capsys, "import", "--home", str(home), "--list", "示例名单", str(rows))
    assert rc == 2 and "not in the list catalogue" in one_error(err)
    rc, _, err = run(capsys, "import", "--home", str(home), "--list", PROCUREMENT.code, str(rows),
                     "--removal-reason", "withdrawal", "--removal-date", "2026-01-01",
                     "--removal-doc", "x", "--full-export")  # fmt: skip
    assert rc == 2 and "--removal-reason must be one of repair" in one_error(err)
    assert log_size(home) == 0


def test_cli_remove(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # whole cells
    today = shanghai_today()
    rows = rows_of(10, today=today)
    path = write(tmp_path / "a.csv", rows)
    assert run(capsys, "import", "--home", str(home), "--list", PROCUREMENT.code, str(path))[0] == 0
    size = log_size(home)
    org = next(r for r in rows if r["统一社会信用代码"])
    base = ["remove", "--home", str(home), "--list", PROCUREMENT.name,
            "--uscc", org["统一社会信用代码"], "--date", today.isoformat(),
            "--doc", "撤〔2026〕9号"]  # fmt: skip

    rc, out, err = run(capsys, *base, "--reason", "revocation")  # no --yes, no terminal
    assert rc == 2 and "--yes" in one_error(err) and org["统一社会信用代码"] in out
    rc, _, err = run(capsys, *base, "--reason", "withdrawal", "--yes")
    assert rc == 2 and "must be one of" in one_error(err)
    decided = dt.date.fromisoformat(org["认定日期"])
    if today < catalogue.add_months(decided, 12):
        rc, _, err = run(capsys, *base, "--reason", "repair", "--yes")
        assert rc == 2 and "repair is possible from" in one_error(err)
    assert log_size(home) == size

    rc, out, _ = run(capsys, *base, "--reason", "revocation", "--yes")
    assert rc == 0 and log_size(home) == size + 1

    async def last_leaf() -> feeds.LeafEntry:
        loaded = load_home(home)
        async with Store.opened(loaded.database_url) as store, store.engine.connect() as conn:
            data = await conn.execute(select(LEAVES.c.data).where(LEAVES.c.idx == size))
            return feeds.LeafEntry.FromString(data.scalar_one())

    removal = asyncio.run(last_leaf())
    assert removal.event == feeds.EVENT_TYPE_REMOVE
    assert removal.removal_reason == feeds.REMOVAL_REASON_REVOCATION
    assert (removal.removal_date, removal.removal_doc_no) == (today.isoformat(), "撤〔2026〕9号")
    rc, _, err = run(capsys, *base, "--reason", "revocation", "--yes")
    assert rc == 2 and "no active entry" in one_error(err)


# --- the removals file reader never echoes a cell ------------------------------------------------


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.text(alphabet="0123456789X甲乙丙丁-/年月日", min_size=4, max_size=12),
        min_size=5, max_size=5,
    )
)  # fmt: skip
def test_removals_problems_never_repeat_a_cell(tmp_path: Path, cells: list[str]) -> None:
    path = tmp_path / "r.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["证件号码", "认定文书号", "移出原因", "移出日期", "移出文书号"])
        w.writerow(cells)
    _, problems = read_removals(path, PROCUREMENT, None, today=DAY)
    for problem in problems:
        body = problem.split(":", 2)[2]
        for cell in cells:
            if cell.strip() and len(cell.strip()) >= 4:
                assert cell.strip() not in body, (cell, problem)


@pytest.mark.parametrize(
    ("removing", "active", "confirm", "limit", "refused"),
    [
        (0, 1000, None, None, ""),
        (50, 1000, None, None, ""),  # 5% of 1000
        (51, 1000, None, None, "more than --max-removals 50"),
        (10, 20, None, None, ""),  # at least 10
        (11, 20, None, None, "more than --max-removals 10"),
        (11, 20, None, 11, ""),
        (11, 20, 11, None, ""),
        (11, 20, 12, None, "not the 12 confirmed"),
        (3, 1000, 4, None, "not the 4 confirmed"),  # a confirmation is for one number
    ],
)
def test_mass_removals_need_confirming(
    removing: int, active: int, confirm: int | None, limit: int | None, refused: str
) -> None:
    """Lists and report records share one guard: a wrong file must not empty a list."""
    problems = mass_removal_problems(
        removing, active, what="entries", of=None, confirm_removals=confirm, max_removals=limit
    )
    assert (refused in problems[0]) if refused else problems == []
