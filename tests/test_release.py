"""The border's rule (pure): a response keeps exactly what the decision lets out, in the agreed
form, and a message the border cannot judge is refused whole."""

from __future__ import annotations

import doctest

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st

from node.api import feeds, query
from node.feeds.leaf import COMMITTED_FIELDS
from node.identity.codes import resident_id_check_char
from node.identity.pseudonym_key import PseudonymKey
from node.policy import release as release_module
from node.policy.agreement import PURPOSES, parse_agreement
from node.policy.decide import decide
from node.policy.masks import SHAPES
from node.policy.release import Unreleasable, release

KEY = PseudonymKey.derive(bytes(range(32)), version=3)
PSEUDONYM = r"p3\.[a-z2-7]{52}"

resident_ids = st.builds(
    lambda body: body + resident_id_check_char(body),
    st.builds(
        lambda area, y, m, d, seq: f"{area}{y:04d}{m:02d}{d:02d}{seq:03d}",
        st.sampled_from(["110105", "370102", "620102", "140105"]),
        st.integers(1930, 2005),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 999),
    ),
)
han_names = st.text(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=2, max_size=4
)

# Re-identification thresholds: 1 judges no combination (what a node without the check would
# send), 32 accepts every mask on its own, 10,000 is the default (only the pseudonym passes).
THRESHOLDS = [1, 32, 10_000]

# The forms each personal field may take in an agreement's rule (all valid).
FORMS = {
    "person_name": ["clear", "mask:name_surname", "withhold"],
    "person_id": ["mask:court_id", "mask:tax_id", "pseudonym", "withhold"],
    "legal_rep_name": ["clear", "mask:name_surname", "withhold"],
    "legal_rep_id": ["mask:court_id", "mask:tax_id", "pseudonym", "withhold"],
    "person_id_masked": ["clear", "withhold"],
    "person_pseudonym": ["clear", "withhold"],
}


def _agreement(forms: dict[str, str], feed: dict[str, str]) -> str:
    fields = ", ".join(f'{k} = "{v}"' for k, v in forms.items())
    text = f"""id = "a"
version = 4
peers = ["lanzhou"]
purposes = ["procurement"]

[[rule]]
data_class = "list_entry"
purposes = ["procurement"]
fields = {{ {fields} }}
"""
    if feed:
        text += "\n[feed.list_entry]\n" + "".join(f'{k} = "{v}"\n' for k, v in feed.items())
    return text


def _entry(idno: str, name: str, rep_id: str, rep_name: str) -> feeds.ListEntry:
    return feeds.ListEntry(
        person_name=name, person_id=idno, legal_rep_name=rep_name, legal_rep_id=rep_id,
        person_id_masked=idno[:10] + "****" + idno[14:], person_pseudonym="p3." + "a" * 52,
        list_name="失信被执行人", uscc="91370100MA3C5LLN2X", listing_date="2026-02-01",
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    idno=resident_ids,
    name=han_names,
    rep_id=resident_ids,
    rep_name=han_names,
    forms=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in FORMS.items()}),
    purpose=st.sampled_from(sorted(PURPOSES)),
    threshold=st.sampled_from(THRESHOLDS),
)
def test_a_query_answer_carries_each_field_in_its_agreed_form_only(
    idno: str,
    name: str,
    rep_id: str,
    rep_name: str,
    forms: dict[str, str],
    purpose: str,
    threshold: int,
) -> None:
    a = parse_agreement(_agreement(forms, {}), source="a.toml")
    decision = decide([a], "lanzhou", purpose, "list_entry", threshold=threshold)
    original = _entry(idno, name, rep_id, rep_name)
    resp = query.LookupResponse(answers=[query.LookupAnswer(leaf_index=5, entry=original)])
    out = release(resp, decision, pseudonym_key=KEY)
    wire = resp.SerializeToString()
    sent = resp.answers[0].entry
    listed = {f.field: f.form for f in resp.answers[0].forms}
    # A raw resident ID never leaves, whatever the agreement says.
    assert idno.encode() not in wire and rep_id.encode() not in wire
    # A set of forms that re-identifies at this threshold is refused whole: nothing personal.
    allowed = purpose == "procurement" and not decision.refused
    for field, form in forms.items():
        value = getattr(sent, field)
        if not allowed or form == "withhold":
            assert value == "" and field not in listed
            continue
        assert listed[field] == form
        raw = getattr(original, field)
        if form == "clear":
            assert value == raw
        elif form == "pseudonym":
            assert value.startswith("o3.") and value != raw  # this origin's key, version 3
        else:
            assert SHAPES[form.split(":")[1]].fullmatch(value), (form, value)
    if not allowed or forms["person_name"] != "clear":
        assert sent.person_name != name
    assert sent.list_name == "失信被执行人" and sent.uscc == "91370100MA3C5LLN2X"
    assert out.values == len(listed)
    assert out.leaves == ({5} if listed else set())
    assert resp.agreements == "a v4"


@settings(max_examples=100, deadline=None)
@given(
    idno=resident_ids,
    name=han_names,
    feed=st.fixed_dictionaries(
        {
            k: st.sampled_from(["clear", "withhold"])
            for k in ("person_name", "person_id_masked", "person_pseudonym")
        }
    ),
    start=st.integers(0, 10_000),
    threshold=st.sampled_from(THRESHOLDS),
)
def test_a_feed_batch_keeps_exactly_the_granted_openings(
    idno: str, name: str, feed: dict[str, str], start: int, threshold: int
) -> None:
    a = parse_agreement(_agreement({"person_name": "mask:name_surname"}, feed), source="a.toml")
    decision = decide([a], "lanzhou", None, "list_entry", threshold=threshold)
    entry = _entry(idno, name, idno, name)
    openings = [
        feeds.FieldDisclosure(field=f, salt=b"s" * 16, value=getattr(entry, f))
        for f in sorted(COMMITTED_FIELDS)
        if getattr(entry, f)
    ]
    batch = feeds.SubscribeResponse(
        batch=feeds.LeafBatch(
            start=start,
            leaves=[feeds.FeedLeaf(entry=b"leaf", disclosures=openings)] * 2,
        )
    )
    out = release(batch, decision, pseudonym_key=KEY)
    # Refused whole when the openings re-identify (a clear name; the masked ID beside the
    # pseudonym) at this threshold.
    granted = set() if decision.refused else {k for k, v in feed.items() if v == "clear"}
    for leaf in batch.batch.leaves:
        assert {d.field for d in leaf.disclosures} == granted
        assert bytes(leaf.entry) == b"leaf"  # the leaf bytes pass untouched
    wire = batch.SerializeToString()
    assert idno.encode() not in wire  # never granted in clear
    assert (name.encode() in wire) == ("person_name" in granted)
    assert out.values == 2 * len(granted)
    assert out.leaves == ({start, start + 1} if granted else set())


def test_no_decision_withholds_everything_personal() -> None:
    entry = _entry("11010519491231002X", "张三", "370102198001011237", "李四")
    resp = query.LookupResponse(answers=[query.LookupAnswer(entry=entry)])
    out = release(resp, None, pseudonym_key=KEY)
    sent = resp.answers[0].entry
    assert not any(getattr(sent, f) for f in COMMITTED_FIELDS)
    assert out.values == 0 and out.withheld == 6
    assert resp.decision == "no decision: every personal field withheld"
    leaf = feeds.FeedLeaf(
        entry=b"x", disclosures=[feeds.FieldDisclosure(field="person_name", value="张三")]
    )
    release(leaf, None, pseudonym_key=KEY)
    assert list(leaf.disclosures) == []


def test_unknown_fields_refuse_the_whole_message() -> None:
    entry = feeds.ListEntry.FromString(b"\x9a\x06\x03abc")  # field 99: not in the schema
    with pytest.raises(Unreleasable, match="does not know"):
        release(query.LookupAnswer(entry=entry), None, pseudonym_key=KEY)
    info = feeds.GetCheckpointResponse.FromString(b"\xa0\x1f\x01")  # on a plain message too
    with pytest.raises(Unreleasable, match="does not know"):
        release(info, None, pseudonym_key=KEY)
    with pytest.raises(Unreleasable, match="not a message"):
        release(b"11010519491231002X", None, pseudonym_key=KEY)  # type: ignore[arg-type]


def test_an_unclassified_field_refuses_the_whole_message() -> None:
    pool = descriptor_pool.DescriptorPool()
    fdp = descriptor_pb2.FileDescriptorProto(name="x.proto", package="creditnode.test")
    m = fdp.message_type.add(name="Leak")
    m.field.add(name="secret", number=1, type=9, label=1)  # string, no classification
    pool.Add(fdp)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("creditnode.test.Leak"))
    with pytest.raises(Unreleasable, match="no sensitivity classification"):
        release(cls(secret="11010519491231002X"), None, pseudonym_key=KEY)


def test_the_module_example() -> None:
    assert doctest.testmod(release_module, verbose=False).failed == 0
