"""The audit entry core: UUIDv7, canonical leaf bytes, strict parsing, nothing personal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.audit.entry import (
    DIRECTIONS,
    KINDS,
    OUTCOMES,
    AuditEntry,
    EntryError,
    check_matter,
    check_uuid7,
    officer_id,
    parse_entry,
    subject_commitment,
    uuid7,
    uuid7_time,
)

RESIDENT_ID = "11010519491231002X"  # GB 11643 worked example, valid check character


def test_uuid7_layout() -> None:
    text = uuid7(at_ms=0x0190_1234_5678, rand=bytes(range(10)))
    u = uuid.UUID(text)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert text.startswith("01901234-5678-7")
    assert int(uuid7_time(text).timestamp() * 1000) == 0x0190_1234_5678
    assert check_uuid7(text) == text


@given(st.integers(0, 253_402_300_799_999), st.binary(min_size=10, max_size=10))
def test_uuid7_is_valid_for_any_time(ms: int, rand: bytes) -> None:
    text = uuid7(at_ms=ms, rand=rand)
    assert uuid.UUID(text).version == 7
    assert check_uuid7(text) == text
    assert uuid7_time(text) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        milliseconds=ms
    )


def test_uuid7_orders_by_time() -> None:
    a = uuid7(at_ms=1000, rand=b"\xff" * 10)
    b = uuid7(at_ms=1001, rand=bytes(10))
    assert a < b


@pytest.mark.parametrize(
    "text",
    ["", "not-a-uuid", str(uuid.uuid4()), uuid7().upper(), uuid7().replace("-", "")],
)
def test_check_uuid7_refuses(text: str) -> None:
    with pytest.raises(EntryError):
        check_uuid7(text)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Nd")), max_size=60)
_hex64 = st.one_of(st.just(""), st.text("0123456789abcdef", min_size=64, max_size=64))

entries = st.builds(
    AuditEntry,
    exchange=st.builds(
        lambda ms, r: uuid7(at_ms=ms, rand=r),
        st.integers(0, 2**48 - 1),
        st.binary(min_size=10, max_size=10),
    ),
    at_us=st.integers(0, 2**62),
    direction=st.sampled_from(DIRECTIONS),
    kind=st.sampled_from(KINDS),
    outcome=st.sampled_from(OUTCOMES),
    seq=st.integers(0, 2**40),
    peer=st.sampled_from(["", "lanzhou", "jinan", "a-1"]),
    method=st.sampled_from(["", "/creditnode.v1.QueryService/Lookup", "peer add"]),
    officer=st.one_of(st.just(""), st.text("0123456789abcdef", min_size=32, max_size=32)),
    department=st.sampled_from(["", "91350100M000100Y43"]),
    purpose=st.sampled_from(["", "licensing_review", "procurement"]),
    matter=_text,
    subject=_hex64,
    response=_hex64,
    reason=_text,
    agreements=st.lists(_text, max_size=3).map(tuple),
    forms=st.lists(
        st.tuples(st.sampled_from(["person_name", "person_id_masked"]), _text), max_size=3
    ).map(tuple),
    values=st.integers(0, 1000),
    withheld=st.integers(0, 1000),
    leaves=st.one_of(
        st.none(),
        st.tuples(st.integers(0, 100), st.integers(0, 100)).map(lambda t: tuple(sorted(t))),
    ),
    remote=st.one_of(st.none(), st.integers(0, 2**40)),
)


@given(entries)
def test_round_trip(entry: AuditEntry) -> None:
    data = entry.to_bytes()
    assert parse_entry(data) == entry
    assert parse_entry(data).to_bytes() == data


@given(entries, _hex64)
def test_the_fast_paths_give_the_same_entry_and_bytes(entry: AuditEntry, digest: str) -> None:
    # to_json without dataclasses.asdict; with_response without re-checking every field.
    as_before = dataclasses.asdict(entry) | {
        "agreements": list(entry.agreements),
        "forms": [list(p) for p in entry.forms],
        "leaves": None if entry.leaves is None else list(entry.leaves),
        "v": 1,
    }
    assert entry.to_json() == as_before
    before = entry.response
    answered = entry.with_response(digest)
    assert answered == entry.replace(response=digest)
    assert answered.to_bytes() == entry.replace(response=digest).to_bytes()
    assert entry.response == before  # the original is untouched
    with pytest.raises(EntryError):
        entry.with_response("not a digest")


@given(entries, st.data())
def test_any_byte_edit_is_refused_or_changes_the_entry(
    entry: AuditEntry, data: st.DataObject
) -> None:
    raw = bytearray(entry.to_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda v: v != raw[i]))
    raw[i] = b
    try:
        parsed = parse_entry(bytes(raw))
    except EntryError:
        return
    assert parsed != entry


def _base() -> dict[str, object]:
    return AuditEntry(
        exchange=uuid7(), at_us=1, direction="in", kind="query", outcome="hit"
    ).to_json()


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},  # unknown field
        {"v": 2},
        {"seq": -1},
        {"seq": True},
        {"at_us": 1.5},
        {"direction": "sideways"},
        {"kind": "gossip"},
        {"peer": "Lanzhou"},
        {"officer": "zz"},
        {"department": "91350100M000100Y40"},
        {"subject": "ab"},
        {"leaves": [5, 2]},
        {"forms": [["person_name"]]},
        {"agreements": "x"},
    ],
)
def test_strict_parsing(change: dict[str, object]) -> None:
    obj = {**_base(), **change}
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(EntryError):
        parse_entry(data)


def test_missing_field_duplicate_key_and_noncanonical_are_refused() -> None:
    obj = _base()
    del obj["matter"]
    with pytest.raises(EntryError, match="lacks"):
        parse_entry(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())
    good = AuditEntry(exchange=uuid7(), at_us=1, direction="in", kind="query", outcome="hit")
    raw = good.to_bytes()
    with pytest.raises(EntryError, match="repeats"):
        parse_entry(raw[:-1] + b',"seq":0}')
    with pytest.raises(EntryError, match="canonical"):
        parse_entry(json.dumps(good.to_json(), sort_keys=True).encode())  # with spaces
    with pytest.raises(EntryError):
        parse_entry(b"[]")
    with pytest.raises(EntryError):
        parse_entry(b"\xff")
    with pytest.raises(EntryError):
        parse_entry(b"{" * 100_000)


@pytest.mark.parametrize(
    "text",
    [
        RESIDENT_ID,
        f"matter of {RESIDENT_ID}",
        "110105 1949 1231 002X",
        "110105-19491231-0021",
        "110105491231002",  # 15-digit form
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    ],
)
def test_no_raw_id_can_be_recorded(text: str) -> None:
    with pytest.raises(EntryError) as caught:
        check_matter(text)
    assert "1949" not in str(caught.value)
    for field in ("matter", "reason"):
        with pytest.raises(EntryError):
            AuditEntry(exchange=uuid7(), at_us=1, direction="out", kind="query",
                       outcome="hit", **{field: text})  # type: ignore[arg-type]  # fmt: skip
    # Structured fields cannot hold one either.
    for field in ("peer", "officer", "subject", "response", "purpose", "department"):
        with pytest.raises(EntryError):
            AuditEntry(exchange=uuid7(), at_us=1, direction="out", kind="query",
                       outcome="hit", **{field: RESIDENT_ID.lower()})  # type: ignore[arg-type]  # fmt: skip


def test_case_numbers_are_fine() -> None:
    assert check_matter("(2026)鲁0102民初1234号") == "(2026)鲁0102民初1234号"
    assert check_matter("licence review 2026-11-30") == "licence review 2026-11-30"


def test_keyed_ids_hide_names_and_subjects() -> None:
    secret = b"s" * 32
    a = officer_id(secret, "Wang Fang")
    assert len(a) == 32 and "wang" not in a.lower()
    assert officer_id(secret, " wang fang ") == a  # same officer, however typed
    assert officer_id(b"t" * 32, "Wang Fang") != a  # node-local
    c = subject_commitment(secret, "person", RESIDENT_ID)
    assert len(c) == 64 and RESIDENT_ID.lower() not in c
    assert c != subject_commitment(secret, "uscc", RESIDENT_ID)
    with pytest.raises(EntryError):
        officer_id(secret, "")
