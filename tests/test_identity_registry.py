"""Identity across cities: merged view, conflicts, legacy lookups, persons by pseudonym."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from node.api import feeds
from node.cli import main
from node.feeds.publisher import Event
from node.identity.codes import court_mask, org_code_check_char, uscc_check_char
from node.identity.registry import entity_by_person, entity_by_uscc, find_conflicts, resolve
from tests.conftest import FederationFactory
from tests.feedutil import org_entry, person_entry, wait_mirrored


def make_uscc(body: str, region: str = "370100", head: str = "91") -> str:
    org = body + org_code_check_char(body)
    first17 = head + region + org
    return first17 + uscc_check_char(first17)


def org_event(uscc: str, name: str) -> Event:
    entry = org_entry(1)
    entry.uscc, entry.subject_name = uscc, name
    return Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)


async def test_merged_view_and_conflicts_across_three_cities(
    federation: FederationFactory, tmp_path: Path
) -> None:
    fed = await federation(3)
    jinan, lanzhou, taiyuan = fed["jinan"], fed["lanzhou"], fed["taiyuan"]
    code = make_uscc("MA3C8QAB")
    other = make_uscc("MA7T2N4K")
    await jinan.publisher.append([org_event(code, "济南示例科技有限公司")])
    await lanzhou.publisher.append([org_event(code, "济南示例科技有限责任公司")])  # same firm
    bad = code[:17] + ("0" if code[17] != "0" else "1")  # a 重错码 in taiyuan's feed
    await taiyuan.publisher.append(
        [
            org_event(code, "太原完全不同贸易有限公司"),
            org_event(bad, "错码示例有限公司"),
            org_event(other, "另一家"),
        ]
    )
    for node in (jinan, lanzhou, taiyuan):
        for origin in (jinan, lanzhou, taiyuan):
            if node is not origin:
                await wait_mirrored(node, origin, origin.publisher.log.frontier.size)

    view = await entity_by_uscc(lanzhou.store, "lanzhou", code)
    assert {m.origin for m in view.memberships} == {"jinan", "lanzhou", "taiyuan"}
    assert set(view.names) == {"jinan", "lanzhou", "taiyuan"}

    conflicts = await find_conflicts(lanzhou.store, "lanzhou")
    by_kind = {(c.kind, c.key) for c in conflicts}
    assert ("names", code) in by_kind  # taiyuan's name differs materially
    assert ("invalid_code", bad) in by_kind
    names = next(c for c in conflicts if c.kind == "names")
    assert "太原完全不同贸易有限公司" in names.detail
    # 有限公司 vs 有限责任公司 alone is not a material difference
    assert names.detail.count("济南示例科技") == 2

    res = await resolve(lanzhou.store, code[8:17])  # the organisation code, by embedding
    assert res.usccs == tuple(sorted({code, bad}))  # the 重错码 embeds it too: both shown
    assert ("legacy", code[8:17]) in by_kind
    res = await resolve(lanzhou.store, "370100400012347")
    assert res.usccs == ()


async def test_person_found_by_pseudonym_at_origin_only_until_agreements_exist(
    federation: FederationFactory,
) -> None:
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    from node.identity.pseudonym import own_pseudonym

    key = jinan.home.pseudonym_key
    assert key != lanzhou.home.pseudonym_key  # one key per origin, no shared secret
    entry = person_entry(1)
    entry.person_pseudonym = own_pseudonym(key, entry.person_id)
    size = await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await wait_mirrored(lanzhou, jinan, size)
    mine = {jinan.home.identity.uri: entry.person_pseudonym}
    here = await entity_by_person(jinan.store, "jinan", mine)
    assert [m.list_name for m in here.memberships] == ["失信被执行人"]
    there = await entity_by_person(lanzhou.store, "lanzhou", mine)
    assert there.memberships == []  # the pseudonym is a committed field: default deny


def test_identity_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # whole list names, not folded cells
    home = tmp_path / "jinan"
    assert main(["init", "--home", str(home), "--name", "jinan", "--region", "370100"]) == 0
    code = make_uscc("MA3C8QAB")
    reg_no = "370100400012347"
    from adapters.samples import write_csv

    rows = [{
        "主体名称": "济南示例科技有限公司", "主体类型": "法人和其他组织", "统一社会信用代码": code,
        "证件号码": "", "法定代表人": "张示例", "法定代表人证件号码": "", "名单类型": "黑名单",
        "名单名称": "失信被执行人名单", "列入原因": "示例原因", "认定依据": "示例依据",
        "认定文书号": "示〔2026〕1号", "认定部门": "示例局", "认定部门代码": code,
        "列入日期": "2026-10-01", "严重程度": "一般", "公示截止日期": "2028-10-01",
        "惩戒措施": "GP.BAN:强制", "认定日期": "2026-10-01",
    }, {
        "主体名称": "李示例", "主体类型": "自然人", "统一社会信用代码": "",
        "证件号码": "11010519491231002X", "法定代表人": "", "法定代表人证件号码": "",
        "名单类型": "黑名单", "名单名称": "失信被执行人名单", "列入原因": "示例原因",
        "认定依据": "示例依据", "认定文书号": "示〔2026〕2号", "认定部门": "示例局",
        "认定部门代码": code,
        "列入日期": "2026-10-01", "严重程度": "一般", "公示截止日期": "2028-10-01",
        "惩戒措施": "", "认定日期": "2026-10-01",
    }]  # fmt: skip
    write_csv(tmp_path / "l.csv", rows)
    list_name = "失信被执行人名单"  # court: 2 years (失信被执行人名单规定 第二条)
    assert main(["import", "--home", str(home), "--list", list_name, str(tmp_path / "l.csv")]) == 0
    capsys.readouterr()

    assert main(["entity", "--home", str(home), "--uscc", code]) == 0
    out = capsys.readouterr().out
    assert "济南示例科技有限公司" in out and "失信被执行人名单" in out
    assert main(["entity", "--home", str(home), "--org-code", code[8:17]]) == 0
    assert "positions 9-17" in capsys.readouterr().out
    assert main(["entity", "--home", str(home), "--reg-no", reg_no]) == 0
    assert "crosswalk" in capsys.readouterr().out
    (tmp_path / "x.csv").write_text(f"注册号,统一社会信用代码\n{reg_no},{code}\n", encoding="utf-8")
    assert main(["identity", "crosswalk", "--home", str(home), str(tmp_path / "x.csv")]) == 0
    capsys.readouterr()
    assert main(["entity", "--home", str(home), "--reg-no", reg_no]) == 0
    assert "济南示例科技有限公司" in capsys.readouterr().out
    assert main(["entity", "--home", str(home), "--person-id", "11010519491231002X"]) == 2
    assert "11010519491231002X" not in capsys.readouterr().err  # refused, not repeated
    monkeypatch.setattr("sys.stdin", io.StringIO("11010519491231002X\n"))
    assert main(["entity", "--home", str(home), "--person-id", "-"]) == 2  # why do you ask?
    assert "--purpose" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("11010519491231002X\n"))
    ask = ["entity", "--home", str(home), "--person-id", "-", "--purpose", "enforcement"]
    assert main(ask) == 0
    out = capsys.readouterr().out
    assert "失信被执行人名单" in out and "11010519491231002X" not in out
    assert court_mask("11010519491231002X") in out
    assert main(["entity", "--home", str(home), "--name", "济南示例科技有限责任公司"]) == 0
    assert code in capsys.readouterr().out
    assert main(["identity", "conflicts", "--home", str(home)]) == 0

    # No shared secret any more: each home has its own pseudonym key, never exported.
    assert oct((home / "keys" / "pseudonym.key").stat().st_mode & 0o777) == "0o600"
    assert not (home / "keys" / "alliance.key").exists()
    assert main(["identity", "export-key", "--home", str(home), "--out", "k"]) == 2
    partner = ["init", "--home", str(tmp_path / "lz"), "--name", "lanzhou", "--region", "620100"]
    assert main([*partner, "--alliance-key", "k"]) == 2


def test_identity_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = make_uscc("MA3C8QAB")
    cells = [
        code,
        code[:17] + ("0" if code[17] != "0" else "1"),
        code,
        "9.16201E+17",
        "11010519491231002X",
        code[8:17],
    ]
    (tmp_path / "c.csv").write_text(
        "名称,统一社会信用代码\n" + "".join(f"x,{c}\n" for c in cells), encoding="gb18030"
    )
    capsys.readouterr()
    rc = main(["identity", "check", str(tmp_path / "c.csv"), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 2
    # A 统一社会信用代码 column holds USCCs (checked as `import` checks it): the resident ID
    # and the organisation code in it are invalid there.
    assert {k: report[k] for k in ("valid", "warning", "invalid", "duplicate", "damaged")} == {
        "valid": 2,
        "warning": 1,  # final check fails, embedded organisation code passes: lenient
        "invalid": 3,
        "duplicate": 1,
        "damaged": 1,
    }
    assert [r["row"] for r in report["rows"]] == [2, 3, 4, 5, 6, 7]
    assert set(report["rows"][0]) == {"row", "input", "kind", "status", "reason"}
    assert "11010519491231002X" not in json.dumps(report)  # personal IDs are masked
    assert report["rows"][3]["kind"] in ("uscc", "unknown")
    assert report["rows"][4]["reason"] == "not a USCC: it is a resident ID"
    assert report["rows"][5]["reason"] == "not a USCC: it is an organisation code"
    # A column of no known kind: each value is recognised by its shape.
    (tmp_path / "any.csv").write_text("代码\n" + "".join(f"{c}\n" for c in cells), encoding="utf-8")
    assert main(["identity", "check", str(tmp_path / "any.csv"), "--format", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["invalid"]) == (4, 1)
    assert [r["kind"] for r in report["rows"]][4:] == ["resident_id", "org_code"]
    assert "11010519491231002X" not in json.dumps(report)
    (tmp_path / "ok.csv").write_text(f"统一社会信用代码\n{code}\n", encoding="utf-8")
    assert main(["identity", "check", str(tmp_path / "ok.csv")]) == 0
