"""Leaves, commitments and stream verification (pure): every tampered byte is refused."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import SigningKey
from node.api import feeds
from node.feeds import merkle
from node.feeds.leaf import (
    BODY,
    COMMITTED_FIELDS,
    LeafError,
    build_leaf,
    commitment,
    open_leaf,
    parse_leaf,
)
from node.feeds.note import Checkpoint, sign_checkpoint
from node.feeds.verify import (
    FeedError,
    ForkError,
    VerifiedCheckpoint,
    verify_batch,
    verify_checkpoint,
)
from tests.feedutil import org_entry, person_entry

ORIGIN = "creditnode://yellow-river/jinan"
KEY = SigningKey.generate(ORIGIN)


def test_committed_fields_come_from_the_schema() -> None:
    assert {
        "person_name",
        "person_id",
        "person_id_masked",
        "person_pseudonym",
        "legal_rep_name",
        "legal_rep_id",
    } == COMMITTED_FIELDS


canary_ids = st.from_regex(r"CANARY[0-9]{12}", fullmatch=True)


@given(canary_ids, st.text(min_size=2, max_size=8).map(lambda s: "姓" + s))
def test_personal_values_never_in_leaf_bytes_but_open_exactly(person_id: str, name: str) -> None:
    entry = person_entry(1, person_id=person_id, name=name)
    data, openings = build_leaf(ORIGIN, "e1", feeds.EVENT_TYPE_ADD, entry, recorded_at_unix=1)
    assert person_id.encode() not in data and name.encode() not in data
    assert open_leaf(data, []).entry.person_id == ""  # verifies with no openings at all
    opened = open_leaf(data, openings.fields, openings.body)
    assert opened.entry.person_id == person_id and opened.entry.person_name == name
    partial = open_leaf(data, [o for o in openings.fields if o.field == "person_id_masked"])
    assert partial.disclosed == {"person_id_masked"} and partial.entry.person_id == ""


@given(st.text(min_size=1, max_size=20))
def test_a_wrong_value_does_not_open_a_commitment(other: str) -> None:
    data, openings = build_leaf(
        ORIGIN, "e1", feeds.EVENT_TYPE_ADD, person_entry(1), recorded_at_unix=1
    )
    forged = [copy.deepcopy(o) for o in openings.fields]
    target = next(o for o in forged if o.field == "person_id")
    if other == target.value:
        return
    target.value = other
    with pytest.raises(LeafError, match="does not match"):
        open_leaf(data, forged)


def test_leaf_with_clear_values_or_unknown_field_is_refused() -> None:
    # The old leaf carried the entry's public fields in field 6: no longer a field we know.
    old = feeds.ListEntry(uscc="91350100M000100Y43").SerializeToString()
    leaf = feeds.LeafEntry(origin=ORIGIN, entry_id="e", event=feeds.EVENT_TYPE_ADD)
    leaf.body_commitment = b"\x00" * 32
    with pytest.raises(LeafError, match="does not know"):
        parse_leaf(leaf.SerializeToString() + b"\x32" + bytes([len(old)]) + old)
    good, _ = build_leaf(ORIGIN, "e", feeds.EVENT_TYPE_ADD, org_entry(1), recorded_at_unix=1)
    with pytest.raises(LeafError, match="does not know"):
        parse_leaf(good + b"\xa0\x06\x01")  # field 100, varint
    with pytest.raises(LeafError, match="canonically"):
        parse_leaf(good + b"\x12\x01e")  # entry_id given twice: not the canonical form
    remove = feeds.LeafEntry(origin=ORIGIN, entry_id="e", event=feeds.EVENT_TYPE_REMOVE)
    with pytest.raises(LeafError, match="say why"):
        parse_leaf(remove.SerializeToString())


def _log(n: int) -> tuple[list[bytes], VerifiedCheckpoint]:
    leaves = [
        build_leaf(
            ORIGIN,
            f"e{i}",
            feeds.EVENT_TYPE_ADD,
            person_entry(i) if i % 2 else org_entry(i),
            recorded_at_unix=i,
        )[0]
        for i in range(n)
    ]
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(d) for d in leaves])
    note = sign_checkpoint(Checkpoint(ORIGIN, n, root), KEY)
    return leaves, VerifiedCheckpoint(Checkpoint(ORIGIN, n, root), note)


def _batch(leaves: list[bytes], start: int, end: int) -> feeds.LeafBatch:
    hashes: dict[int, bytes] = {}
    f = merkle.Frontier()
    for d in leaves:
        hashes.update(f.append(merkle.leaf_hash(d)))
    proof = merkle.consistency_proof(end, len(leaves), hashes) if end < len(leaves) else []
    return feeds.LeafBatch(
        start=start,
        leaves=[feeds.FeedLeaf(entry=d) for d in leaves[start:end]],
        proof_to_checkpoint=proof,
    )


def _frontier(leaves: list[bytes], n: int) -> merkle.Frontier:
    f = merkle.Frontier()
    for d in leaves[:n]:
        f.append(merkle.leaf_hash(d))
    return f


def test_batches_verify_against_the_checkpoint() -> None:
    leaves, cp = _log(7)
    f = _frontier(leaves, 0)
    opened, hashes = verify_batch(f, cp, _batch(leaves, 0, 3), ORIGIN)
    assert len(opened) == 3 and f.size == 3 and hashes
    verify_batch(f, cp, _batch(leaves, 3, 7), ORIGIN)
    assert f.root() == cp.root
    with pytest.raises(FeedError, match="starts at"):
        verify_batch(_frontier(leaves, 2), cp, _batch(leaves, 3, 7), ORIGIN)


def test_flipping_any_byte_of_a_delivered_entry_is_refused() -> None:
    leaves, cp = _log(3)
    for i in (0, 1):
        batch = _batch(leaves, 0, 3)
        data = bytes(batch.leaves[i].entry)
        for pos in range(len(data)):
            tampered = feeds.LeafBatch()
            tampered.CopyFrom(batch)
            flipped = bytearray(data)
            flipped[pos] ^= 0x01
            tampered.leaves[i].entry = bytes(flipped)
            with pytest.raises(FeedError):
                verify_batch(merkle.Frontier(), cp, tampered, ORIGIN)


def test_flipping_any_byte_of_a_checkpoint_is_refused() -> None:
    _, cp = _log(4)
    for pos in range(len(cp.note)):
        flipped = bytearray(cp.note)
        flipped[pos] ^= 0x01
        with pytest.raises(FeedError):
            verify_checkpoint(
                feeds.SignedCheckpoint(note=bytes(flipped)), KEY.verifying_key, ORIGIN, None
            )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.data())
def test_checkpoint_chain_accepts_growth_and_catches_forks(n: int, data: st.DataObject) -> None:
    leaves, cp = _log(n)
    m = data.draw(st.integers(1, n))
    older_root = merkle.root_from_leaf_hashes([merkle.leaf_hash(d) for d in leaves[:m]])
    older = VerifiedCheckpoint(
        Checkpoint(ORIGIN, m, older_root), sign_checkpoint(Checkpoint(ORIGIN, m, older_root), KEY)
    )
    hashes: dict[int, bytes] = {}
    f = merkle.Frontier()
    for d in leaves:
        hashes.update(f.append(merkle.leaf_hash(d)))
    proof = merkle.consistency_proof(m, n, hashes) if m < n else []
    signed = feeds.SignedCheckpoint(note=cp.note, proof_from_size=m, consistency_proof=proof)
    assert verify_checkpoint(signed, KEY.verifying_key, ORIGIN, older).size == n
    forked_root = bytes(32) if older_root != bytes(32) else b"\x01" * 32
    forked = VerifiedCheckpoint(
        Checkpoint(ORIGIN, m, forked_root), sign_checkpoint(Checkpoint(ORIGIN, m, forked_root), KEY)
    )
    with pytest.raises(ForkError):
        verify_checkpoint(signed, KEY.verifying_key, ORIGIN, forked)


@pytest.mark.parametrize("where", ["recorded_at", "commitment"])
def test_unknown_fields_in_nested_messages_are_refused(where: str) -> None:
    data, _ = build_leaf(ORIGIN, "e", feeds.EVENT_TYPE_ADD, person_entry(1), recorded_at_unix=1)
    leaf = feeds.LeafEntry.FromString(data)
    extra = b"\xa0\x06\x01"  # field 100, varint 1
    target = {"recorded_at": leaf.recorded_at, "commitment": leaf.commitments[0]}[where]
    target.MergeFromString(extra)
    with pytest.raises(LeafError, match="does not know"):
        parse_leaf(leaf.SerializeToString())


def _rebody(body: feeds.EntryBody, entry: feeds.ListEntry) -> feeds.EntryBody:
    return feeds.EntryBody(salt=body.salt, entry=entry.SerializeToString(deterministic=True))


def test_the_leaf_holds_no_readable_data_and_the_body_opens_exactly() -> None:
    entry = org_entry(1)
    data, openings = build_leaf(ORIGIN, "e", feeds.EVENT_TYPE_ADD, entry, recorded_at_unix=1)
    assert entry.uscc.encode() not in data and entry.subject_name.encode() not in data
    assert entry.reason.encode() not in data
    assert openings.body is not None
    opened = open_leaf(data, [], openings.body)
    assert opened.entry.uscc == entry.uscc and opened.entry.subject_name == entry.subject_name
    assert opened.entry.measures == entry.measures


@pytest.mark.parametrize(
    "forge",
    [
        "value",
        "salt",
        "unknown field",
        "personal in clear",
        "status",
        "other list",
        "non-canonical",
    ],
)
def test_a_forged_body_is_refused(forge: str) -> None:
    data, openings = build_leaf(ORIGIN, "e", feeds.EVENT_TYPE_ADD, org_entry(1), recorded_at_unix=1)
    body = openings.body
    assert body is not None
    entry = feeds.ListEntry.FromString(body.entry)
    if forge == "value":
        entry.uscc = "91350100M000100Y43"
        forged = _rebody(body, entry)
    elif forge == "salt":
        forged = feeds.EntryBody(salt=bytes(16), entry=body.entry)
    else:
        # Bodies that would hash right if the origin had signed them: each must still be
        # refused when opened, so build a leaf committing to the bad body itself.
        bad = {
            "unknown field": bytes(body.entry) + b"\xa0\x06\x01",
            "personal in clear": bytes(body.entry)
            + feeds.ListEntry(person_id="11010519491231002X").SerializeToString(),
            "status": bytes(body.entry)
            + feeds.ListEntry(status=feeds.ENTRY_STATUS_ACTIVE).SerializeToString(),
            "other list": bytes(body.entry)
            + feeds.ListEntry(list_code="OTHER").SerializeToString(),
            "non-canonical": bytes(body.entry) + feeds.ListEntry(uscc="X").SerializeToString(),
        }[forge]
        leaf = feeds.LeafEntry.FromString(data)
        leaf.body_commitment = commitment(body.salt, BODY, bad)
        data = leaf.SerializeToString(deterministic=True)
        forged = feeds.EntryBody(salt=body.salt, entry=bad)
    with pytest.raises(LeafError):
        open_leaf(data, [], forged)


def test_a_removal_commits_to_nothing_and_says_why_when_and_by_which_document() -> None:
    data, openings = build_leaf(
        ORIGIN, "e", feeds.EVENT_TYPE_REMOVE, person_entry(1), recorded_at_unix=1,
        removal_reason=feeds.REMOVAL_REASON_REPAIR, removal_date="2026-11-30",
        removal_doc_no="济信修〔2026〕7号",
    )  # fmt: skip
    assert openings.body is None and openings.fields == []
    leaf = parse_leaf(data)
    assert not leaf.body_commitment and not leaf.commitments
    assert (leaf.removal_date, leaf.removal_doc_no) == ("2026-11-30", "济信修〔2026〕7号")
    with pytest.raises(LeafError, match="commits to none"):
        open_leaf(data, [], feeds.EntryBody(salt=bytes(16), entry=b""))
    leaf.body_commitment = bytes(32)
    with pytest.raises(LeafError, match="no data"):
        parse_leaf(leaf.SerializeToString(deterministic=True))
