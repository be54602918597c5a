"""The border's one exit: every RPC of every service the node serves passes it, on the wire."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from node.api import (
    actions,
    audit,
    feeds,
    objections,
    pb,
    pseudonyms,
    query,
    query_rpc,
    reports,
    witness,
    witness_rpc,
)
from node.audit.entry import AuditEntry
from node.audit.query import Filter, find_entries
from node.border import ExitCall
from node.feeds import measures, measures_store
from node.feeds.note import stored_checkpoint
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES, STATE
from node.feeds.subscriber import Subscriber
from node.home import load_home
from node.identity.codes import resident_id_check_char
from node.identity.pseudonym import blind_id, own_pseudonym
from node.objections.core import Objection
from node.objections.wire import to_message
from node.peers.enrollment import export_bundle
from node.peers.transport import client_interceptors
from node.policy.masks import SHAPES
from node.policy.release import Release
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import person_entry
from tests.helpers import channel_to
from tests.test_border import _everything
from tests.wiretap import WireTap

CANARY_IDS = ("11010519491231002X", "370102198001011237", "620102197512310041")
CANARY_NAMES = ("金丝雀甲", "欧阳金丝雀", "金丝雀丙")
CANARIES = tuple(zip(CANARY_IDS, CANARY_NAMES, strict=True))

LANZHOU = """id = "jinan-lanzhou"
version = 2
peers = ["lanzhou"]
purposes = ["enforcement", "licensing_review"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { person_name = "mask:name_surname", person_id = "pseudonym", \
  person_pseudonym = "clear" }

[[rule]]
data_class = "list_entry"
purposes = ["licensing_review"]
fields = { person_id = "pseudonym" }

[feed.list_entry]
person_pseudonym = "clear"
"""
# Jinan accepts a surname mask (3,500 candidates of a name). No ID mask can go to lanzhou: it
# may query, so it could have each candidate's pseudonym evaluated and look it up.
THRESHOLD = 3_500

# Every RPC the node serves, with a request that reaches its response path. The test below
# enumerates the services through the live server's reflection and fails if one is missing.
USCC = "91370100MA3C5LLN2X"
REQUESTS: dict[str, Message] = {
    "/creditnode.v1.NodeService/GetInfo": pb.GetInfoRequest(),
    "/creditnode.v1.NodeService/ListPeers": pb.ListPeersRequest(),
    "/creditnode.v1.NodeService/GetRoot": pb.GetRootRequest(from_version=0),
    "/creditnode.v1.NodeService/NotifyRoot": pb.NotifyRootRequest(version=1),
    "/creditnode.v1.FeedService/Subscribe": feeds.SubscribeRequest(),
    "/creditnode.v1.FeedService/GetCheckpoint": feeds.GetCheckpointRequest(),
    "/creditnode.v1.FeedService/Disclose": feeds.DiscloseRequest(start=0, end=3),
    "/creditnode.v1.FeedService/GetMeasuresCatalogue": feeds.GetMeasuresCatalogueRequest(
        sha256=measures.packaged().sha256
    ),
    "/creditnode.v1.QueryService/Lookup": query.LookupRequest(purpose="enforcement", uscc=USCC),
    "/creditnode.v1.ReportService/GetReport": reports.GetReportRequest(
        purpose="enforcement", uscc=USCC
    ),
    "/creditnode.v1.PseudonymService/Evaluate": pseudonyms.EvaluateRequest(
        purpose="enforcement", blinded_elements=[blind_id(CANARY_IDS[0])[1]]
    ),
    "/creditnode.v1.AuditService/Receipts": audit.ReceiptsRequest(),
    "/creditnode.v1.ActionsService/GetActions": actions.GetActionsRequest(),
    # Filled per test with an objection to one of Jinan's entries.
    "/creditnode.v1.ObjectionService/Raise": objections.RaiseRequest(),
    "/creditnode.v1.ObjectionService/Status": objections.StatusRequest(),
    # Filled per test with the caller's own checkpoint (a witness cosigns nothing else).
    "/creditnode.v1.WitnessService/AddCheckpoint": witness.AddCheckpointRequest(),
    "/creditnode.v1.WitnessService/GetWitnessed": witness.GetWitnessedRequest(
        origin="creditnode://yellow-river/jinan"
    ),
    "/grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest(),
    "/grpc.health.v1.Health/List": health_pb2.HealthListRequest(),
    "/grpc.health.v1.Health/Watch": health_pb2.HealthCheckRequest(),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": (
        reflection_pb2.ServerReflectionRequest(list_services="")
    ),
}


async def _jinan_with_canaries(
    fed: Any, canaries: Sequence[tuple[str, str]] = CANARIES
) -> tuple[Node, list[feeds.ListEntry]]:
    jinan: Node = fed["jinan"]
    agreements = jinan.home.paths.root / "agreements"
    agreements.mkdir(exist_ok=True)
    (agreements / "lanzhou.toml").write_text(LANZHOU)
    jinan.border.threshold = THRESHOLD  # as `reidentification_threshold = 3500` would
    jinan.border.refresh(force=True)
    entries = []
    for i, (idno, name) in enumerate(canaries):
        e = person_entry(i, person_id=idno, name=name)
        e.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, idno)
        e.uscc = USCC if i == 0 else ""
        entries.append(e)
    await jinan.publisher.append(
        [Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, e) for e in entries]
    )
    await jinan.publisher.sign_checkpoint()
    return jinan, entries


async def _synced(node: Node, origin: str) -> Subscriber:
    """*node*'s subscriber to *origin*, caught up once."""
    await node.directory.refresh()
    peer = await node.directory.lookup(origin)
    assert peer is not None
    sub = await Subscriber.open(node.home.tls, node.store, peer)
    await sub.sync(follow=False)
    return sub


async def _objection_to(jinan: Node) -> Message:
    """A raise request for one of *jinan*'s entries, from lanzhou."""
    async with jinan.store.engine.connect() as conn:
        entry_id = (
            (
                await conn.execute(
                    select(STATE.c.entry_id).where(STATE.c.log_id == jinan.publisher.log.log_id)
                )
            )
            .scalars()
            .first()
        )
    assert entry_id is not None
    o = Objection.raise_(
        origin=jinan.home.identity.uri, entry_id=entry_id, grounds="content_error",
        evidence_sha256="0" * 64, due=dt.date.today() + dt.timedelta(days=30),
        raised_by="lanzhou", at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    return objections.RaiseRequest(objection=to_message(o))


async def _reflected_methods(channel: grpc.aio.Channel) -> dict[str, tuple[bool, bool]]:
    """Every method of every service, as the server's reflection lists them."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(req: reflection_pb2.ServerReflectionRequest) -> Any:
        call = stub.ServerReflectionInfo(iter([req]))
        async for resp in call:
            return resp
        raise AssertionError("no reflection answer")

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    methods: dict[str, tuple[bool, bool]] = {}
    for svc in listed.list_services_response.service:
        resp = await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=svc.name))
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for s in fdp.service:
                if f"{fdp.package}.{s.name}" != svc.name:
                    continue
                for m in s.method:
                    methods[f"/{svc.name}/{m.name}"] = (m.client_streaming, m.server_streaming)
    return methods


async def _call_raw(
    channel: grpc.aio.Channel, method: str, kind: tuple[bool, bool], request: Message
) -> bytes | None:
    """One call with the request, returning the first response's exact wire bytes."""
    ser = request.SerializeToString
    client_streaming, server_streaming = kind
    call: Any
    try:
        if not client_streaming and not server_streaming:
            unary: Any = channel.unary_unary(method, request_serializer=lambda m: ser())
            return bytes(await unary(request, timeout=5))
        if not client_streaming:
            stream: Any = channel.unary_stream(method, request_serializer=lambda m: ser())
            call = stream(request, timeout=5)
        else:
            both: Any = channel.stream_stream(method, request_serializer=lambda m: ser())
            call = both(iter([request]), timeout=5)
        async for first in call:
            call.cancel()
            return bytes(first)
    except grpc.aio.AioRpcError as err:
        code = err.code()
    else:
        code = grpc.StatusCode.OK
    assert code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.CANCELLED), (method, code)
    return None


async def _own_checkpoint(channel: grpc.aio.Channel, caller: Node) -> Message:
    """An add-checkpoint request for *caller*'s own feed, from the size the witness holds."""
    origin = caller.home.identity.uri
    note = await caller.publisher.sign_checkpoint()
    held = await witness_rpc.WitnessServiceStub(channel).GetWitnessed(
        witness.GetWitnessedRequest(origin=origin), timeout=5
    )
    old = stored_checkpoint(held.note).size if held.note else 0
    size = stored_checkpoint(note).size
    proof = await caller.publisher.log.consistency_proof(old, size) if 0 < old < size else []
    return witness.AddCheckpointRequest(
        origin=origin, old_size=old, consistency_proof=proof, note=note
    )


async def released(node: Node) -> list[tuple[int, AuditEntry]]:
    """The node's audit entries that let personal values out, oldest first."""
    await node.audit.sign_checkpoint()
    return await find_entries(node.store, node.home.identity.uri, Filter(released_only=True))


async def test_every_rpc_of_every_service_passes_the_exit(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    async with jinan.store.begin() as conn:  # as an import keeps it: served by digest
        await measures_store.keep(conn, measures.packaged())
    lanzhou = fed["lanzhou"]
    passed: list[tuple[str, bytes]] = []

    def watch(call: ExitCall, message: Message, released: Release) -> None:
        passed.append((call.method, message.SerializeToString()))

    jinan.exit.observers.append(watch)
    async with channel_to(jinan, lanzhou.home.tls) as channel:
        methods = await _reflected_methods(channel)
        # The table above names exactly the methods served: a new RPC must be added there.
        assert set(methods) == set(REQUESTS)
        requests = dict(REQUESTS)
        requests["/creditnode.v1.WitnessService/AddCheckpoint"] = await _own_checkpoint(
            channel, lanzhou
        )
        requests["/creditnode.v1.ObjectionService/Raise"] = await _objection_to(jinan)
        received: dict[str, bytes | None] = {}
        for method, kind in sorted(methods.items()):
            received[method] = await _call_raw(channel, method, kind, requests[method])
    answered = {m for m, data in received.items() if data is not None}
    assert answered >= set(REQUESTS) - {"/grpc.health.v1.Health/List"}
    for method, data in received.items():
        if data is None:
            continue  # no response: nothing left the node
        # The bytes on the wire are exactly a message that passed the exit for that method.
        assert (method, data) in passed, method
    # Lookup and Disclose carried personal data for lanzhou: each passed the exit in the form
    # its agreement gives, never raw.
    for idno, name in zip(CANARY_IDS, CANARY_NAMES, strict=True):
        for _, data in passed:
            assert idno.encode() not in data and name.encode() not in data


# Canary persons: valid resident IDs, names of rare characters (CJK extension A) so that no
# public text of the entries or the nodes can contain one by chance.
canary_sets = st.lists(
    st.tuples(
        st.builds(
            lambda area, day, seq: (lambda body: body + resident_id_check_char(body))(
                f"{area}{day:%Y%m%d}{seq:03d}"
            ),
            st.sampled_from(["110105", "370102", "620102", "140105"]),
            st.dates(dt.date(1930, 1, 1), dt.date(2005, 12, 31)),
            st.integers(0, 999),
        ),
        st.text(st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF), min_size=2, max_size=4),
    ),
    min_size=1,
    max_size=3,
    unique_by=(lambda c: c[0], lambda c: c[1]),
)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # a new federation per example
)
@given(canaries=canary_sets)
async def test_canaries_on_the_wire_and_in_the_database(
    federation: FederationFactory, canaries: list[tuple[str, str]]
) -> None:
    fed = await federation(3, subscribe=False)
    jinan, entries = await _jinan_with_canaries(fed, canaries)
    lanzhou, taiyuan = fed["lanzhou"], fed["taiyuan"]
    taps = {"lanzhou": WireTap(), "taiyuan": WireTap()}
    for name, node in (("lanzhou", lanzhou), ("taiyuan", taiyuan)):
        token = client_interceptors.set(taps[name].interceptors)
        try:
            sub = await _synced(node, "jinan")
            await sub.disclose()
            async with channel_to(jinan, node.home.tls) as ch:
                stub = query_rpc.QueryServiceStub(ch)
                for purpose in ("enforcement", "licensing_review", "subsidy", "nonsense"):
                    for e in entries:
                        await stub.Lookup(
                            query.LookupRequest(
                                purpose=purpose, person_pseudonym=e.person_pseudonym
                            )
                        )
        finally:
            client_interceptors.reset(token)

    for name, tap in taps.items():
        methods = tap.methods()
        assert {"/creditnode.v1.FeedService/Subscribe", "/creditnode.v1.FeedService/Disclose",
                "/creditnode.v1.QueryService/Lookup"} <= methods  # fmt: skip
        wire = b"\n".join(d for _, d in tap.seen)
        for idno, person in canaries:
            assert idno.encode() not in wire, name
            assert person.encode() not in wire, name
        everything = await _everything(fed[name])
        for idno, person in canaries:
            assert idno not in everything and person not in everything, name

    lookups = taps["lanzhou"].seen
    answers = [query.LookupResponse.FromString(d) for m, d in lookups if m.endswith("/Lookup")]
    by_purpose: dict[str, list[query.LookupAnswer]] = {}
    for resp, purpose in zip(
        answers,
        [p for p in ("enforcement", "licensing_review", "subsidy", "nonsense") for _ in entries],
        strict=True,
    ):
        assert len(resp.answers) == 1
        by_purpose.setdefault(purpose, []).extend(resp.answers)
        assert resp.agreements == "jinan-lanzhou v2"  # the agreement that decided, or refused
        assert ("not allowed" in resp.decision) == (purpose == "subsidy")
        assert ("unknown purpose" in resp.decision) == (purpose == "nonsense")
    # Enforcement: masked name matching its published shape, the ID as jinan's pseudonym.
    for a, e in zip(by_purpose["enforcement"], entries, strict=True):
        forms = {f.field: f.form for f in a.forms}
        assert forms["person_name"] == "mask:name_surname"
        assert forms["person_id"] == "pseudonym"
        assert SHAPES["name_surname"].fullmatch(a.entry.person_name)
        assert a.entry.person_id == a.entry.person_pseudonym == e.person_pseudonym
    for a, e in zip(by_purpose["licensing_review"], entries, strict=True):
        assert a.entry.person_id == e.person_pseudonym
        assert not a.entry.person_name and not a.entry.person_pseudonym
    for purpose in ("subsidy", "nonsense"):
        for a in by_purpose[purpose]:
            personal = ("person_name", "person_id", "person_id_masked", "person_pseudonym")
            assert not any(getattr(a.entry, f) for f in personal)
            assert a.entry.list_name == "失信被执行人"  # public fields still answered
    # taiyuan has no agreement: every answer came without anything personal.
    for m, d in taps["taiyuan"].seen:
        if m.endswith("/Lookup"):
            for a in query.LookupResponse.FromString(d).answers:
                assert not a.forms and not a.entry.person_pseudonym


async def test_each_disclosure_is_recorded_with_its_agreement_version(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, entries = await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    await _synced(lanzhou, "jinan")
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        await query_rpc.QueryServiceStub(ch).Lookup(
            query.LookupRequest(purpose="enforcement", uscc=USCC)
        )
        await query_rpc.QueryServiceStub(ch).Lookup(
            query.LookupRequest(purpose="subsidy", uscc=USCC)
        )
    rows = [e for _, e in await released(jinan)]
    assert [(r.method, r.purpose) for r in rows] == [
        ("/creditnode.v1.FeedService/Subscribe", ""),
        ("/creditnode.v1.QueryService/Lookup", "enforcement"),
    ]  # the refused purpose let nothing personal out (its entry has no values)
    feed, lookup = rows
    assert feed.agreements == lookup.agreements == ("jinan-lanzhou v2",)
    assert feed.peer == "lanzhou"
    assert feed.forms == (("person_pseudonym", "clear"),)
    assert (feed.leaves, feed.values) == ((0, 2), 3)
    assert lookup.forms == (
        ("person_id", "pseudonym"), ("person_name", "mask:name_surname"),
        ("person_pseudonym", "clear"),
    )  # fmt: skip
    assert lookup.leaves == (0, 0)
    text = repr(rows)
    for idno, name in zip(CANARY_IDS, CANARY_NAMES, strict=True):
        assert idno not in text and name not in text
    assert entries[0].person_pseudonym not in text


async def test_disclosure_of_old_entries_after_an_agreement_widens(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    narrow = LANZHOU.split("[feed.list_entry]")[0]  # version 2 without a feed table
    jinan, entries = await _jinan_with_canaries(fed)
    (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(narrow)
    jinan.border.refresh(force=True)
    lanzhou = fed["lanzhou"]
    sub = await _synced(lanzhou, "jinan")
    assert await sub.disclose() == 0  # nothing granted yet

    async def held() -> dict[tuple[int, str], str]:
        async with lanzhou.store.engine.connect() as conn:
            rows = await conn.execute(
                select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.value)
            )
            return {(int(i), f): v for i, f, v in rows}

    assert await held() == {}
    wider = LANZHOU.replace("version = 2", "version = 3")
    (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(wider)
    jinan.border.refresh(force=True)
    assert await sub.disclose() == 3
    assert await held() == {
        (i, "person_pseudonym"): e.person_pseudonym for i, e in enumerate(entries)
    }
    versions = [(e.agreements, e.method) for _, e in await released(jinan)]
    assert versions == [(("jinan-lanzhou v3",), "/creditnode.v1.FeedService/Disclose")]


async def test_a_disclosed_opening_that_does_not_match_is_refused(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    await _jinan_with_canaries(fed)
    lanzhou = fed["lanzhou"]
    sub = await _synced(lanzhou, "jinan")
    forged = feeds.DiscloseResponse(
        leaves=[
            feeds.DisclosedLeaf(
                index=0,
                disclosures=[
                    feeds.FieldDisclosure(field="person_name", salt=b"\0" * 16, value="王五")
                ],
            )
        ]
    )
    from node.feeds.verify import FeedError

    with pytest.raises(FeedError, match="does not match its commitment"):
        await sub._keep_disclosed(0, 3, forged)


def _bad_handlers() -> grpc.GenericRpcHandler:
    """Handlers that try to send what the border must stop."""
    leaky = person_entry(9, person_id=CANARY_IDS[0], name=CANARY_NAMES[0])

    async def returns_personal(request: pb.NodeInfo, context: Any) -> feeds.ListEntry:
        return leaky

    async def writes_personal(request: pb.NodeInfo, context: Any) -> None:
        await context.write(leaky)

    async def yields_personal(request: pb.NodeInfo, context: Any) -> AsyncIterator[Any]:
        yield leaky

    async def unknown_field(request: pb.NodeInfo, context: Any) -> feeds.ListEntry:
        # Field 99 is unknown to the schema: the border cannot say what it holds.
        return feeds.ListEntry.FromString(b"\x9a\x06\x03abc")

    async def raw_bytes(request: pb.NodeInfo, context: Any) -> bytes:
        return CANARY_IDS[0].encode()

    ser = feeds.ListEntry.SerializeToString
    req = pb.NodeInfo.FromString
    return grpc.method_handlers_generic_handler(
        "test.Leak",
        {
            "Return": grpc.unary_unary_rpc_method_handler(
                returns_personal, request_deserializer=req, response_serializer=ser
            ),
            "Write": grpc.unary_stream_rpc_method_handler(
                writes_personal, request_deserializer=req, response_serializer=ser
            ),
            "Yield": grpc.unary_stream_rpc_method_handler(
                yields_personal, request_deserializer=req, response_serializer=ser
            ),
            "Unknown": grpc.unary_unary_rpc_method_handler(
                unknown_field, request_deserializer=req, response_serializer=ser
            ),
            "Bytes": grpc.unary_unary_rpc_method_handler(raw_bytes, request_deserializer=req),
        },
    )


async def test_a_handler_added_later_cannot_leak(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    lanzhou = fed["lanzhou"]
    node = await fed.start_node("taiyuan", "140100")
    await node.stop(0)
    node = await Node.open(node.home.paths.root)
    await node.start(heartbeat=False, subscribe=False, extra_handlers=[_bad_handlers()])
    try:
        await node.enroll(export_bundle(load_home(lanzhou.home.paths.root)))
        async with channel_to(node, lanzhou.home.tls) as ch:
            req = pb.NodeInfo().SerializeToString()
            unary: Any = ch.unary_unary("/test.Leak/Return", request_serializer=bytes)
            got: list[bytes] = [await unary(req)]
            for method in ("/test.Leak/Write", "/test.Leak/Yield"):
                stream: Any = ch.unary_stream(method, request_serializer=bytes)
                got.extend([m async for m in stream(req)])
            assert len(got) == 3
            for data in got:
                entry = feeds.ListEntry.FromString(data)
                assert entry.list_name == "失信被执行人"  # the public part went
                assert not entry.person_id and not entry.person_name
                assert CANARY_IDS[0].encode() not in data
            for method in ("/test.Leak/Unknown", "/test.Leak/Bytes"):
                refused: Any = ch.unary_unary(method, request_serializer=bytes)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await refused(req)
                assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
                assert CANARY_IDS[0] not in (info.value.details() or "")
    finally:
        await node.stop(0)


async def test_a_malformed_agreement_makes_queries_refuse(federation: FederationFactory) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    broken = LANZHOU.replace('mask:name_surname"', 'mask:name_surnam"')
    (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text(broken)
    jinan.border.refresh(force=True)
    async with channel_to(jinan, fed["lanzhou"].home.tls) as ch:
        resp = await query_rpc.QueryServiceStub(ch).Lookup(
            query.LookupRequest(purpose="enforcement", uscc=USCC)
        )
    assert len(resp.answers) == 1
    entry = resp.answers[0].entry
    assert not entry.person_name and not entry.person_id and not entry.person_pseudonym
    assert "withheld" in resp.decision


async def test_unknown_purposes_are_refused_and_not_remembered(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    jinan, _ = await _jinan_with_canaries(fed)
    async with channel_to(jinan, fed["lanzhou"].home.tls) as ch:
        stub = query_rpc.QueryServiceStub(ch)
        for i in range(20):
            resp = await stub.Lookup(query.LookupRequest(purpose=f"made-up-{i}", uscc=USCC))
            assert "unknown purpose" in resp.decision
            assert not resp.answers[0].entry.person_name
        await stub.Lookup(query.LookupRequest(purpose="enforcement", uscc=USCC))
    # Only the catalogue's purposes are cached: a peer cannot grow the node's memory.
    assert {p for _, p in jinan.border._decisions} == {"enforcement"}
