"""A credit report's payload (pure): registration basics decoded from the USCC, the sections
of the national public credit report, one item per feed entry, canonical JSON.

Each item carries the entry's public fields *and* what proves them: the leaf, the body opening
(salt and public fields) and an inclusion proof to the origin's signed checkpoint, which the
payload also carries. A verifier re-opens the body against the leaf's commitment and checks
that every public value shown equals the committed one (:func:`public_view`), so an issuer
cannot show what the origin never logged. Personal fields appear only under ``personal``, in
the form the requester's agreement gives (never proved: a mask is not the committed value).

>>> registration("91350100M000100Y43")["authority"]
'市场监督管理（工商）'
>>> registration("91350100M000100Y43")["category"]
'企业'
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from google.protobuf.json_format import MessageToDict

from node.api import feeds
from node.feeds.classes import class_of
from node.regions import lookup_region

FORMAT: Final = "creditnode-report/1"
PAYLOAD_TYPE: Final = "application/vnd.creditnode.report+json"
MAX_ITEMS: Final = 500  # per report; more is an error at the issuer, not a truncation
MAX_TEXT: Final = 2000  # characters of any one value

ORGANISATION, INDIVIDUAL = "organisation", "individual"

# The national public credit report's sections, in its order, with their titles.
SECTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("serious_dishonesty", "严重失信主体名单"),
    ("abnormal_operation", "经营异常名录"),
    ("administrative_penalties", "行政处罚"),
    ("licences", "行政许可"),
    ("commitments", "信用承诺及履约"),
    ("evaluations", "信用评价"),
    ("watch_lists", "重点关注名单"),
    ("red_lists", "守信激励（红名单及荣誉）"),
)
SECTION_NAMES: Final = tuple(name for name, _ in SECTIONS)

_BY_LIST_TYPE: Final = {
    feeds.LIST_TYPE_BLACK: "serious_dishonesty",
    feeds.LIST_TYPE_ABNORMAL: "abnormal_operation",
    feeds.LIST_TYPE_WATCH: "watch_lists",
    feeds.LIST_TYPE_RED: "red_lists",
}

# GB 32100-2015: the registration authority (1st character) and the category (2nd).
_AUTHORITIES: Final = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体",
                       "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": ("司法行政", {"1": "律师执业机构", "2": "公证处", "3": "基层法律服务所",
                       "4": "司法鉴定机构", "5": "仲裁委员会", "9": "其他"}),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": ("旅游", {"1": "外国旅游部门常驻代表机构",
                   "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"}),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("市场监督管理（工商）", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织",
                   "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": ""}),
}  # fmt: skip


class ReportError(ValueError):
    """A report that cannot be made or does not verify; the message says why."""


def registration(uscc: str) -> dict[str, str]:
    """Registration basics decoded from a USCC: authority, category, division (region code and
    name), and the organisation code it embeds. Unknown parts are empty, never guessed."""
    return dict(_registration(uscc[:18]))


@lru_cache(maxsize=4096)
def _registration(uscc: str) -> tuple[tuple[str, str], ...]:
    return tuple(_decode(uscc).items())


def _decode(uscc: str) -> dict[str, str]:
    if len(uscc) != 18:
        return {"uscc": uscc[:18], "authority": "", "category": "", "division_code": "",
                "division": "", "organisation_code": ""}  # fmt: skip
    authority, categories = _AUTHORITIES.get(uscc[0], ("", {}))
    division = uscc[2:8]
    region = lookup_region(division) if division.isdigit() else None
    return {
        "uscc": uscc,
        "authority": authority,
        "category": categories.get(uscc[1], ""),
        "division_code": division,
        "division": "" if region is None else f"{region.province}{region.name}".strip(),
        "organisation_code": uscc[8:17],
    }


_BY_RECORD_CLASS: Final = {
    "penalty": "administrative_penalties",
    "licence": "licences",
    "commitment": "commitments",
    "evaluation": "evaluations",
}
# Whether a commitment was kept: fulfilled yes, breached or false no, in force not yet known.
_KEPT: Final = {
    feeds.COMMITMENT_STATUS_FULFILLED: True,
    feeds.COMMITMENT_STATUS_BREACHED: False,
    feeds.COMMITMENT_STATUS_FALSE: False,
}


def section_of(entry: feeds.ListEntry) -> str:
    """The report section a list entry (or a record of a report data class) belongs in."""
    kind = class_of(entry)
    if kind:
        return _BY_RECORD_CLASS[kind]
    return _BY_LIST_TYPE.get(entry.list_type, "watch_lists")


def _record_view(entry: feeds.ListEntry) -> dict[str, Any]:
    """A record's own fields (every one public), by field name, enums by name."""
    kind = class_of(entry)
    if not kind:
        return {}
    record = getattr(entry, kind)
    view: dict[str, Any] = {
        k: (_text(v) if isinstance(v, str) else [_text(x) for x in v] if isinstance(v, list) else v)
        for k, v in MessageToDict(record, preserving_proto_field_name=True).items()
    }
    view["class"] = kind
    if kind == "commitment":
        view["kept"] = _KEPT.get(entry.commitment.status)
    return view


def _text(value: str) -> str:
    return value[:MAX_TEXT]


def public_view(entry: feeds.ListEntry) -> dict[str, Any]:
    """The public values an item shows, from the entry's committed body: what the verifier
    recomputes from the opened body and compares with the item."""
    return {
        "subject_name": _text(entry.subject_name),
        "subject_type": feeds.SubjectType.Name(entry.subject_type),
        "uscc": _text(entry.uscc),
        "list_type": feeds.ListType.Name(entry.list_type),
        "list_name": _text(entry.list_name),
        "list_code": _text(entry.list_code),
        "reason": _text(entry.reason),
        "legal_basis": _text(entry.legal_basis),
        "decision_doc_no": _text(entry.decision_doc_no),
        "decision_date": _text(entry.decision_date),
        "authority_name": _text(entry.authority_name),
        "authority_uscc": _text(entry.authority_uscc),
        "listing_date": _text(entry.listing_date),
        "disclosure_end": _text(entry.disclosure_end),
        "severity": feeds.Severity.Name(entry.severity),
        "measures": [{"code": _text(m.code), "mandatory": bool(m.mandatory)}
                     for m in entry.measures],
        "record": _record_view(entry),
    }  # fmt: skip


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ReportError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError):
        raise ReportError(f"{what} is not base64") from None
    if b64(raw) != text:
        raise ReportError(f"{what} is not canonical base64")
    return raw


def make_item(
    *,
    origin: str,
    origin_city: str,
    entry_id: str,
    leaf_index: int,
    leaf: bytes,
    body: feeds.EntryBody,
    proof: list[bytes],
    entry: feeds.ListEntry,
    personal: Mapping[str, str],
) -> dict[str, Any]:
    """One report item: the entry's public view, the personal values as released, and what
    proves the public view (leaf, body opening, inclusion proof)."""
    return {
        "origin": origin,
        "origin_city": _text(origin_city),
        "entry_id": entry_id,
        "leaf_index": leaf_index,
        **public_view(entry),
        "personal": {k: _text(v) for k, v in sorted(personal.items())},
        "proof": {
            "leaf": b64(leaf),
            "body_salt": b64(bytes(body.salt)),
            "body": b64(bytes(body.entry)),
            "inclusion": [b64(p) for p in proof],
        },
    }


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one spelling of a payload: sorted keys, no spaces, UTF-8 (names stay readable)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def empty_sections() -> dict[str, list[dict[str, Any]]]:
    return {name: [] for name in SECTION_NAMES}


def personal_values(payload: Mapping[str, Any]) -> dict[str, int]:
    """Field name -> number of personal values the payload carries (the border's count)."""
    counts: dict[str, int] = {}
    sections = payload.get("sections")
    if not isinstance(sections, Mapping):
        raise ReportError("report has no sections")
    for items in sections.values():
        if not isinstance(items, list):
            raise ReportError("a section is not a list")
        for item in items:
            personal = item.get("personal") if isinstance(item, Mapping) else None
            if not isinstance(personal, Mapping):
                raise ReportError("an item has no personal map")
            for name, value in personal.items():
                if value:
                    counts[str(name)] = counts.get(str(name), 0) + 1
    subject = payload.get("subject")
    if isinstance(subject, Mapping):
        for name in ("person_name", "person_pseudonym", "person_id", "person_id_masked"):
            if subject.get(name):
                counts[name] = counts.get(name, 0) + 1
    return counts
