"""Signed credit reports (issue 14): contents, desensitisation at the exit, DSSE verification
offline with only the peer bundles, any edit failing, and verification after the issuer rotated
its report key. Served over real in-process nodes with mutual TLS."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import uuid
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import PeerBundle
from node.api import feeds, reports, reports_rpc
from node.audit.query import Filter, find_entries
from node.feeds.publisher import Event
from node.home import load_home
from node.identity.pseudonym import own_pseudonym
from node.keys.ceremony import rotate_key
from node.keys.roles import REPORT
from node.peers.enrollment import export_bundle
from node.reports.build import Asked, Subject, build_report
from node.reports.envelope import report_file, verify_report
from node.reports.payload import ReportError, canonical, registration
from node.reports.render import render_html
from node.runtime import Node
from node.witness.cosignature import note_body
from node.witness.store import cosignatures_of
from tests.conftest import FederationFactory
from tests.feedutil import PERSON_ID, org_entry, person_entry
from tests.helpers import channel_to
from tests.test_cli import one_line_error, run
from tests.test_key_rotation import with_roots

AGREEMENT = """id = "jinan-lanzhou"
version = 1
peers = ["lanzhou"]
purposes = ["enforcement", "licensing_review"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { legal_rep_name = "mask:name_surname" }

[[rule]]
data_class = "list_entry"
purposes = ["licensing_review"]
fields = {}
"""
USCC = "91370100MA0000001X"
HOSTILE = '<script>alert("x")</script>&'


async def _publish(jinan: Node) -> dict[str, feeds.ListEntry]:
    """A black-list entry, a red-list entry, and a repaired (removed) one, all of USCC."""
    (jinan.home.paths.root / "agreements").mkdir(exist_ok=True)
    (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(AGREEMENT)
    jinan.border.threshold = 3_500  # the surname mask keeps 3,500 candidates
    jinan.border.refresh(force=True)
    black = org_entry(1)
    black.reason = HOSTILE
    red = org_entry(1, list_name="守信激励对象名单")
    red.list_type = feeds.LIST_TYPE_RED
    repaired = org_entry(1, list_name="经营异常名录")
    repaired.list_type = feeds.LIST_TYPE_ABNORMAL
    penalty = _record("penalty", disclosure_end="2030-01-01")
    penalty.penalty.CopyFrom(feeds.AdministrativePenalty(category="罚款", fine_amount="1.5"))
    lapsed = _record("penalty", disclosure_end="2020-01-01")  # publication period over
    lapsed.penalty.CopyFrom(feeds.AdministrativePenalty(category="警告"))
    promise = _record("commitment")
    promise.commitment.CopyFrom(
        feeds.CreditCommitment(type="主动型", status=feeds.COMMITMENT_STATUS_BREACHED)
    )
    entries = {"black": black, "red": red, "repaired": repaired, "penalty": penalty,
               "lapsed": lapsed, "commitment": promise}  # fmt: skip
    ids = {k: uuid.uuid4().hex for k in entries}
    await jinan.publisher.append(
        [Event(ids[k], feeds.EVENT_TYPE_ADD, e) for k, e in entries.items()]
    )
    await jinan.publisher.append([Event(ids["repaired"], feeds.EVENT_TYPE_REMOVE, repaired,
                                        feeds.REMOVAL_REASON_REPAIR)])  # fmt: skip
    await jinan.publisher.sign_checkpoint()
    return entries


async def _cosigned(node: Node, timeout: float = 30.0) -> None:
    """Until a witness has cosigned the node's newest checkpoint."""
    deadline = time.monotonic() + timeout
    while True:
        signed = node.publisher.latest_note
        async with node.store.engine.connect() as conn:
            if await cosignatures_of(conn, node.publisher.origin, note_body(signed)):
                return
        assert time.monotonic() < deadline, "no cosignature came"
        await asyncio.sleep(0.1)


def _record(code: str, disclosure_end: str = "") -> feeds.ListEntry:
    return feeds.ListEntry(
        subject_name="示例商贸有限公司1", subject_type=feeds.SUBJECT_TYPE_LEGAL_PERSON,
        uscc=USCC, list_code=code, list_name=code, decision_doc_no="济罚〔2026〕9号",
        authority_name="济南市示例局", decision_date="2026-02-01", listing_date="2026-02-01",
        disclosure_end=disclosure_end, provenance=feeds.PROVENANCE_AUTHORITATIVE,
    )  # fmt: skip


async def _ask(
    caller: Node, node: Node, purpose: str = "enforcement", **subject: str
) -> reports.GetReportResponse:
    async with channel_to(node, caller.home.tls) as channel:
        return await reports_rpc.ReportServiceStub(channel).GetReport(
            reports.GetReportRequest(purpose=purpose, matter="M-1", officer="o-17",
                                     **subject or {"uscc": USCC}),
            timeout=20,
        )  # fmt: skip


def _file(resp: reports.GetReportResponse) -> bytes:
    return report_file(resp.envelope, {c.origin: list(c.versions) for c in resp.roots})


def _bundle(node: Node) -> PeerBundle:
    return export_bundle(load_home(node.home.paths.root))


async def test_report_over_mtls_contents_desensitised_and_verified_offline(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(jinan)
    resp = await _ask(lanzhou, jinan)
    assert resp.report_number.startswith("CR-JINAN-") and resp.audit_index >= 0
    data = _file(resp)
    verified = verify_report(data, [_bundle(jinan)])
    payload = verified.payload
    sections = payload["sections"]
    assert [i["list_name"] for i in sections["serious_dishonesty"]] == ["失信联合惩戒对象名单"]
    assert [i["list_name"] for i in sections["red_lists"]] == ["守信激励对象名单"]
    assert sections["abnormal_operation"] == []  # repaired: never in a report
    # Penalties within their disclosure period only; a breached commitment is not kept.
    assert [i["record"]["category"] for i in sections["administrative_penalties"]] == ["罚款"]
    assert [i["record"]["kept"] for i in sections["commitments"]] == [False]
    item = sections["serious_dishonesty"][0]
    assert item["reason"] == HOSTILE and item["measures"] == [{"code": "M01", "mandatory": True}]
    assert item["legal_basis"] and item["decision_doc_no"] and item["authority_name"]
    assert item["origin_city"] == "jinan" and item["origin"] == jinan.home.identity.uri
    # Desensitised for lanzhou: the surname only, the ID never.
    assert item["personal"] == {"legal_rep_name": "张*"}
    assert "11010519491231002X" not in data.decode() and "张三" not in data.decode()
    assert payload["registration"]["division"] == "山东省济南市"
    assert {(f.field, f.form) for f in resp.forms} == {("legal_rep_name", "mask:name_surname")}
    # Recorded at the exit with the forms, and the index is the answer's.
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(kind="report"))
    assert found and found[-1][1].forms == (("legal_rep_name", "mask:name_surname"),)
    assert found[-1][0] == resp.audit_index
    # A purpose whose rule opens nothing: no personal value at all.
    plain = verify_report(_file(await _ask(lanzhou, jinan, "licensing_review")), [_bundle(jinan)])
    assert all(not i["personal"] for s in plain.payload["sections"].values() for i in s)
    # The HTML escapes every value and carries the QR code.
    html = render_html(data)
    assert HOSTILE not in html and "&lt;script&gt;" in html and "<svg" in html


async def test_unauthorised_purpose_is_refused_and_audited(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(jinan)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ask(lanzhou, jinan, "subsidy")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(kind="report"))
    assert found and found[-1][1].outcome == "refused"


async def test_name_query_lists_candidates_and_makes_no_report(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(jinan)
    resp = await _ask(lanzhou, jinan, name="示例商贸")
    assert not resp.envelope and [(c.uscc, c.items) for c in resp.candidates] == [(USCC, 4)]
    assert not (await _ask(lanzhou, jinan, name="100%")).candidates


async def test_any_edit_fails_verification(federation: FederationFactory) -> None:
    fed = await federation(1, subscribe=False)
    jinan = fed["jinan"]
    await _publish(jinan)
    report = await build_report(jinan.report_deps, Subject(uscc=USCC), Asked(purpose="enforcement"))
    data = report.file()
    trust = [_bundle(jinan)]
    assert verify_report(data, trust).items == 4

    @settings(max_examples=60, deadline=None)
    @given(st.integers(0, len(data) - 1), st.integers(1, 255))
    def flip(pos: int, delta: int) -> None:
        edited = bytearray(data)
        edited[pos] = (edited[pos] + delta) % 256
        with pytest.raises(ReportError):
            verify_report(bytes(edited), trust)

    flip()
    # Edits that keep the JSON canonical and the DSSE signature intact: refused all the same.
    for edit in ("field", "root", "signature"):
        doc = json.loads(data)
        if edit == "field":
            doc["envelope"]["x"] = 1
        elif edit == "root":
            doc["roots"]["creditnode://yellow-river/x"] = []
        else:
            doc["envelope"]["signatures"].append(dict(doc["envelope"]["signatures"][0]))
        with pytest.raises(ReportError):
            verify_report(canonical(doc) + b"\n", trust)
    # Another node's bundle does not verify it.
    other = await federation(1, cities=[("taiyuan", "140100")], subscribe=False)
    with pytest.raises(ReportError):
        verify_report(data, [_bundle(other["taiyuan"])])


async def test_report_verifies_after_the_issuer_rotates_its_report_key(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan = fed["jinan"]
    holders = await with_roots(fed, {"jinan": ["alice"], "lanzhou": ["bob"]})
    await _publish(jinan)
    asked = Asked(purpose="enforcement")
    before = (await build_report(jinan.report_deps, Subject(uscc=USCC), asked)).file()
    trust = [_bundle(jinan)]  # pins root v1 only
    first = verify_report(before, trust)
    now = dt.datetime.now(dt.UTC)
    proposal = await asyncio.to_thread(
        rotate_key, jinan.home.paths.root, role=REPORT, now=now,
        overlap=dt.timedelta(seconds=1), holder_keys=holders["jinan"],
    )  # fmt: skip
    assert proposal.published is not None
    await asyncio.sleep(2.1)  # past the overlap: only the new key signs
    await _cosigned(jinan)
    after = (await build_report(jinan.report_deps, Subject(uscc=USCC), asked)).file()
    second = verify_report(after, trust)
    assert second.unchecked_cosignatures >= 1  # lanzhou's: its bundle was not given
    # With lanzhou's bundle too, its cosignature is checked (its pinned root lists the key).
    assert verify_report(after, [*trust, _bundle(fed["lanzhou"])]).cosignatures >= 1
    assert second.root_version == 2 and set(second.signed_by).isdisjoint(first.signed_by)
    # The old report still verifies: its chain ends at v1, when the old key was valid.
    assert verify_report(before, trust).root_version == 1
    # A report whose roots are cut short of the key that signed it does not.
    doc = json.loads(after)
    doc["roots"] = {k: v[:1] for k, v in doc["roots"].items()}
    cut = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    with pytest.raises(ReportError):
        verify_report(cut.encode(), trust)


def test_registration_is_decoded_from_the_uscc() -> None:
    reg = registration("53110000500021676K")
    assert reg["authority"] == "民政" and reg["category"] == "基金会"
    assert registration("bad")["authority"] == ""


async def test_cli_verify_and_render(
    federation: FederationFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await federation(1, subscribe=False)
    jinan = fed["jinan"]
    await _publish(jinan)
    report = await build_report(jinan.report_deps, Subject(uscc=USCC), Asked(purpose="enforcement"))
    saved = tmp_path / "report.json"
    saved.write_bytes(report.file())
    bundle = tmp_path / "trust" / "jinan.json"
    bundle.parent.mkdir()
    bundle.write_text(_bundle(jinan).to_json())
    code, out, err = run(capsys, "report", "verify", str(saved), "--trust", str(bundle.parent))
    assert code == 0 and "verified" in out, err
    edited = tmp_path / "edited.json"
    doc = json.loads(report.file())
    payload = base64.b64decode(doc["envelope"]["payload"])
    assert b"<script>" in payload
    doc["envelope"]["payload"] = base64.b64encode(payload.replace(b"<script>", b"<b>")).decode()
    edited.write_bytes(canonical(doc) + b"\n")
    code, _, err = run(capsys, "report", "verify", str(edited), "--trust", str(bundle))
    assert code == 7 and one_line_error(err)
    html = tmp_path / "report.html"
    code, _, _ = run(capsys, "report", "render", str(saved), "--out", str(html))
    assert code == 0 and report.report_number in html.read_text()


async def test_individual_report_by_pseudonym(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    await _publish(jinan)
    person = person_entry(7)
    person.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, PERSON_ID)
    await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, person)])
    await jinan.publisher.sign_checkpoint()
    resp = await _ask(lanzhou, jinan, person_pseudonym=person.person_pseudonym)
    verified = verify_report(_file(resp), [_bundle(jinan)])
    assert verified.payload["variant"] == "individual" and verified.items == 1
    text = _file(resp).decode()
    # Nothing the agreement withholds: no ID, no name, no pseudonym.
    assert PERSON_ID not in text and person.person_name not in text
    assert person.person_pseudonym not in text
