"""Per-origin oblivious pseudonyms (RFC 9497): stable, keyed per origin, normalising, and the
same whether the origin computes them or a partner obtains them without showing the ID."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.identity.codes import resident_id_check_char
from node.identity.oprf import OprfError
from node.identity.pseudonym import (
    PSEUDONYM_SHAPE,
    blind_id,
    evaluate_blinded,
    finalize_id,
    own_pseudonym,
)
from node.identity.pseudonym_key import PseudonymKey, PseudonymKeyFile

JINAN = PseudonymKey.derive(bytes(range(32)), version=1)
LANZHOU = PseudonymKey.derive(bytes(range(1, 33)), version=1)


def make_id(area: str, birth: str, seq: str) -> str:
    body = area + birth + seq
    return body + resident_id_check_char(body)


VALID_ID = make_id("110105", "19491231", "002")
ids = st.builds(
    make_id,
    st.sampled_from(["110105", "370102", "620102", "140105"]),
    st.dates(dt.date(1900, 1, 1), dt.date(2020, 12, 31)).map(lambda d: f"{d:%Y%m%d}"),
    st.text("0123456789", min_size=3, max_size=3),
)


def test_pseudonyms_are_stable_per_origin_and_meaningless_elsewhere() -> None:
    p = own_pseudonym(JINAN, VALID_ID)
    assert PSEUDONYM_SHAPE.fullmatch(p) and p.startswith("o1.")
    assert p == own_pseudonym(JINAN, VALID_ID)
    assert p != own_pseudonym(LANZHOU, VALID_ID)  # each origin's own key
    rotated = PseudonymKey.derive(bytes(range(32)), version=2)
    assert own_pseudonym(rotated, VALID_ID).startswith("o2.")
    assert own_pseudonym(rotated, VALID_ID)[3:] != p[3:]  # the version is in the key's info
    assert p != own_pseudonym(JINAN, make_id("110105", "19491231", "003"))


def test_pseudonyms_normalise_every_form_of_one_id() -> None:
    p = own_pseudonym(JINAN, VALID_ID)
    assert own_pseudonym(JINAN, "110105491231002") == p
    assert own_pseudonym(JINAN, VALID_ID.lower()) == p
    assert own_pseudonym(JINAN, "１１０１０５ １９４９１２３１ ００２ｘ") == p


@given(ids)
@settings(max_examples=40, deadline=None)
def test_the_oblivious_protocol_gives_the_origins_own_pseudonym(idno: str) -> None:
    blind, blinded = blind_id(idno)
    assert idno.encode() not in blinded
    answer = evaluate_blinded(JINAN, blinded)
    assert finalize_id(idno, blind, answer, JINAN.version) == own_pseudonym(JINAN, idno)
    # Another origin's answer gives another origin's pseudonym.
    other = evaluate_blinded(LANZHOU, blinded)
    assert finalize_id(idno, blind, other, 1) == own_pseudonym(LANZHOU, idno)


@given(ids)
@settings(max_examples=30, deadline=None)
def test_a_pseudonym_never_contains_the_id(idno: str) -> None:
    p = own_pseudonym(JINAN, idno)
    for k in range(len(idno) - 5):
        assert idno[k : k + 6].lower() not in p


def test_bad_input_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError) as info:
        own_pseudonym(JINAN, "110105194912310021")
    assert "11010519" not in str(info.value)
    with pytest.raises(ValueError):
        blind_id("1.10105194912E+17")
    with pytest.raises(OprfError):
        evaluate_blinded(JINAN, bytes(32))  # the identity element
    with pytest.raises(ValueError, match="positive"):
        PseudonymKey.derive(bytes(32), version=0)


def test_key_files_are_private_versioned_and_reloaded(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "pseudonym.key"
    JINAN.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert PseudonymKey.load(path) == JINAN
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        PseudonymKey.load(path)
    path.chmod(0o600)
    holder = PseudonymKeyFile(path, JINAN)
    rotated = PseudonymKey.derive(bytes(range(32)), version=2)
    rotated.save(path)
    holder._checked = 0.0  # as if a second had passed
    assert holder.current() == rotated
    path.write_bytes(b"{broken")
    holder._checked = 0.0
    assert holder.current() == rotated  # a broken file does not replace the key in force
    assert re.fullmatch(r"o2\.[a-z2-7]{52}", own_pseudonym(holder.current(), VALID_ID))
