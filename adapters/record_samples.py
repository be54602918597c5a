"""Deterministic sample CSVs of the report's data classes (``adapters.record_csv``), for the
demo and tests: records about a subject the list samples already hold, so a report finds a
city's list entry and another city's penalty or evaluation of one entity.

Authorities get valid government USCCs (prefix 11) of the city's division. Names carry 示例.

>>> from adapters.samples import generate_rows
>>> subject = first_organisation(generate_rows(5, seed=7, list_name="示例名单", list_type="black",
...                                            region="620100"))
>>> rows = penalty_rows(subject, region="620100", today=datetime.date(2026, 11, 1))
>>> rows[0]["行政相对人代码_1"] == subject[1], rows[0]["公示截止期"]
(True, '2027-09-02')

``python -m adapters.record_samples [DIR]`` writes deploy/samples/lanzhou-penalty.csv and
taiyuan-evaluation.csv about the first organisation of deploy/samples/lanzhou-black.csv.
"""

from __future__ import annotations

import csv
import datetime
import random
import sys
from collections.abc import Iterable
from pathlib import Path

from adapters.record_csv import CLASS_COLUMNS
from adapters.samples import SAMPLES_TODAY, _CodeMaker, generate_rows
from node.regions import lookup_region

__all__ = [
    "evaluation_rows",
    "first_organisation",
    "penalty_rows",
    "write_deploy_record_samples",
    "write_record_csv",
]

Subject = tuple[str, str]  # (organisation name, USCC)


def first_organisation(rows: Iterable[dict[str, str]]) -> Subject:
    """The first organisation (not a natural person) of list sample rows."""
    for row in rows:
        if row["主体类型"] != "自然人" and row["统一社会信用代码"]:
            return row["主体名称"], row["统一社会信用代码"]
    raise ValueError("no organisation among the rows")


def _city(region: str) -> str:
    found = lookup_region(region)
    name = found.name if found is not None else "示例市"
    return name.removesuffix("市")


def _authority(region: str, seed: int) -> str:
    return _CodeMaker(random.Random(seed), region).uscc("11")  # noqa: S311 (samples, not secrets)


def _subject(subject: Subject) -> dict[str, str]:
    return {"行政相对人名称": subject[0], "行政相对人类别": "法人和其他组织",
            "行政相对人代码_1": subject[1], "证件号码": ""}  # fmt: skip


def penalty_rows(
    subject: Subject, *, region: str, today: datetime.date, seed: int = 1
) -> list[dict[str, str]]:
    """One 双公示 penalty (a fine) decided 30 days before *today*, published for 11 months."""
    city = _city(region)
    decided = today - datetime.timedelta(days=30)
    end = decided + datetime.timedelta(days=335)
    bureau = f"{city}市税务局（示例）"
    code = _authority(region, seed)
    return [
        {
            **_subject(subject),
            "决定书文号": f"{city[:1]}税稽罚〔{decided.year}〕{seed}号（示例）",
            "违法行为类型": "偷税",
            "违法事实": "通过虚假申报少缴增值税（示例）",
            "处罚依据": "《中华人民共和国税收征收管理法》第六十三条第一款",
            "处罚类别": "罚款",
            "处罚内容": "处少缴税款百分之五十的罚款",
            "罚款金额（万元）": "12.5",
            "没收金额（万元）": "",
            "暂扣或吊销证照": "",
            "处罚决定日期": decided.isoformat(),
            "处罚有效期": end.isoformat(),
            "公示截止期": end.isoformat(),
            "处罚机关": bureau,
            "处罚机关统一社会信用代码": code,
            "数据来源单位": bureau,
            "数据来源单位统一社会信用代码": code,
        }
    ]


def evaluation_rows(
    subject: Subject, *, region: str, today: datetime.date, grade: str = "A", seed: int = 2
) -> list[dict[str, str]]:
    """One 纳税 credit evaluation for last year, issued in April, valid for a year."""
    year = today.year - 1 if today.month >= 4 else today.year - 2
    issued = datetime.date(year + 1, 4, 1)
    return [
        {
            **_subject(subject),
            "评价类型": "纳税",
            "评价等级": grade,
            "评价周期": str(year),
            "评价日期": issued.isoformat(),
            "有效期至": datetime.date(year + 2, 3, 31).isoformat(),
            "评价机关": f"{_city(region)}市税务局（示例）",
            "评价机关统一社会信用代码": _authority(region, seed),
        }
    ]


def write_record_csv(path: Path, code: str, rows: Iterable[dict[str, str]]) -> int:
    """Write *rows* of class *code* with its columns (UTF-8); the number written."""
    required, optional = CLASS_COLUMNS[code]
    rows = list(rows)
    present = [c for c in optional if any(c in r for r in rows)]
    with Path(path).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow((*required, *present))
        for r in rows:
            writer.writerow([r.get(c, "") for c in (*required, *present)])
    return len(rows)


def write_deploy_record_samples(directory: Path) -> list[Path]:
    """Lanzhou's penalty and Taiyuan's evaluation of the first organisation of Lanzhou's
    committed black-list sample (same seed and day as ``adapters.samples``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    subject = first_organisation(
        generate_rows(40, seed=2, list_name="重大税收违法失信主体名单", list_type="black",
                      region="620100", date_style="slash", today=SAMPLES_TODAY)
    )  # fmt: skip
    out = [directory / "lanzhou-penalty.csv", directory / "taiyuan-evaluation.csv"]
    write_record_csv(out[0], "penalty", penalty_rows(subject, region="620100", today=SAMPLES_TODAY))
    write_record_csv(
        out[1], "evaluation", evaluation_rows(subject, region="140100", today=SAMPLES_TODAY)
    )
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("deploy/samples")
    for p in write_deploy_record_samples(target):
        print(p)
