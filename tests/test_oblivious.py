"""Person matching without a shared secret (issue 11, item 1): each origin's OPRF evaluated
obliviously over mTLS, decided at the border, rate limited per peer, recorded; rotation
re-derives locally; old homes migrate. Real in-process nodes on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from sqlalchemy import select

from node.api import feeds, pseudonyms, pseudonyms_rpc, query, query_rpc
from node.audit.query import Filter, find_entries
from node.cli.demo import JINAN_LANZHOU
from node.errors import PeerError
from node.feeds.publisher import Event
from node.feeds.rederive import rederive_pseudonyms
from node.home import set_setting
from node.identity.pseudonym import blind_id, own_pseudonym
from node.identity.pseudonym_key import PseudonymKey
from node.identity.registry import entity_by_person
from node.local_federation import LocalFederation
from node.runtime import Node
from node.services.pseudonym import TokenBuckets
from tests.conftest import FederationFactory
from tests.feedutil import person_entry, wait_mirrored
from tests.helpers import channel_to, pseudonyms_from
from tests.test_border import restart_with_agreement

LANZHOU_PERSON = "370102198001011237"
AGREEMENT = JINAN_LANZHOU  # the demo's: the pseudonym only, in the feed and for enforcement
# Passes policy check at the default threshold (10,000): a surname mask (3,500 names) would
# not, and no ID mask can go to a peer that may ask for evaluations (tests/test_reidentify.py).


def test_token_buckets_refill_and_never_overdraw() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=5, clock=lambda: now[0])
    assert buckets.take("lanzhou", 5)
    assert not buckets.take("lanzhou", 1)  # empty
    assert buckets.take("taiyuan", 5)  # one bucket per peer
    now[0] = 1.0
    assert not buckets.take("lanzhou", 3)  # two refilled: all or nothing
    assert buckets.take("lanzhou", 2)
    now[0] = 100.0
    assert not buckets.take("lanzhou", 6)  # never more than the burst
    assert buckets.take("lanzhou", 5)


async def _listing(jinan: Node, idno: str) -> Event:
    entry = person_entry(1, person_id=idno, name="金丝雀乙")
    entry.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, idno)
    event = Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)
    await jinan.publisher.append([event])
    await jinan.publisher.sign_checkpoint()
    return event


async def test_lanzhou_finds_its_person_on_jinans_list_without_any_shared_secret(
    federation: FederationFactory,
) -> None:
    fed = await federation(3)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    lanzhou, taiyuan = fed["lanzhou"], fed["taiyuan"]
    assert len({n.home.pseudonym_key for n in (jinan, lanzhou, taiyuan)}) == 3
    await _listing(jinan, LANZHOU_PERSON)
    await wait_mirrored(lanzhou, jinan, jinan.publisher.log.frontier.size)

    # Lanzhou asks every partner for its pseudonym of its own person, then looks in what it
    # holds: jinan evaluates (an agreement allows enforcement); taiyuan has none with lanzhou.
    found = {lanzhou.home.identity.uri: own_pseudonym(lanzhou.home.pseudonym_key, LANZHOU_PERSON)}
    [found[jinan.home.identity.uri]] = await pseudonyms_from(lanzhou, jinan, [LANZHOU_PERSON])
    with pytest.raises(PeerError, match="refused"):
        await pseudonyms_from(lanzhou, taiyuan, [LANZHOU_PERSON])
    view = await entity_by_person(lanzhou.store, "lanzhou", found)
    assert [(m.origin, m.list_name) for m in view.memberships] == [("jinan", "失信被执行人")]
    # The same pseudonym asks jinan directly.
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        answer = await query_rpc.QueryServiceStub(ch).Lookup(
            query.LookupRequest(
                purpose="enforcement", person_pseudonym=found[jinan.home.identity.uri]
            )
        )
    assert len(answer.answers) == 1
    # A person jinan does not list: a pseudonym that matches nothing.
    [other] = await pseudonyms_from(lanzhou, jinan, ["11010519491231002X"])
    assert (
        await entity_by_person(lanzhou.store, "lanzhou", {jinan.home.identity.uri: other})
    ).memberships == []
    # Jinan recorded each evaluation, with its purpose and agreement, and never the ID.
    evaluations = await find_entries(
        jinan.store, jinan.home.identity.uri, Filter(kind="oprf_evaluation")
    )
    assert [(e.peer, e.purpose, e.forms, e.values) for _, e in evaluations] == [
        ("lanzhou", "enforcement", (("person_pseudonym", "oprf_evaluation"),), 1),
        ("lanzhou", "enforcement", (("person_pseudonym", "oprf_evaluation"),), 1),
    ]


async def test_evaluations_need_an_allowed_purpose_and_respect_the_rate_limit(
    federation: FederationFactory,
) -> None:
    fed = await federation(2, subscribe=False)
    set_setting(fed["jinan"].home.paths.root, "pseudonym_burst", 10)
    set_setting(fed["jinan"].home.paths.root, "pseudonym_rate", 0.001)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    lanzhou = fed["lanzhou"]
    element = blind_id(LANZHOU_PERSON)[1]
    async with channel_to(jinan, lanzhou.home.tls) as ch:
        stub = pseudonyms_rpc.PseudonymServiceStub(ch)

        async def ask(purpose: str = "enforcement", n: int = 1) -> grpc.StatusCode:
            try:
                await stub.Evaluate(
                    pseudonyms.EvaluateRequest(purpose=purpose, blinded_elements=[element] * n)
                )
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

        # Refused purposes cost nothing and evaluate nothing.
        assert await ask("subsidy") == grpc.StatusCode.PERMISSION_DENIED
        assert await ask("no such purpose") == grpc.StatusCode.PERMISSION_DENIED
        assert await ask(n=65) == grpc.StatusCode.INVALID_ARGUMENT
        # A malformed element (the identity) takes its token, and is refused, not evaluated.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Evaluate(
                pseudonyms.EvaluateRequest(purpose="enforcement", blinded_elements=[bytes(32)])
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # 20 concurrent single evaluations against the 9 tokens left: exactly 9 answered.
        codes = await asyncio.gather(*(ask() for _ in range(20)))
        assert codes.count(grpc.StatusCode.OK) == 9
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 11
    found = await find_entries(jinan.store, jinan.home.identity.uri, Filter(kind="oprf_evaluation"))
    recorded = [e.values for _, e in found]
    # Every refusal is recorded too, with its code, and evaluates nothing.
    outcomes = [e.outcome for _, e in found]
    assert outcomes.count("sent") == 9
    assert outcomes.count("refused") == 2 + 1 + 1 + 11
    assert sum(recorded) == 9  # only what was evaluated is recorded


async def test_a_rotation_re_derives_locally_and_partners_follow(
    federation: FederationFactory,
) -> None:
    fed = await federation(2)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    lanzhou = fed["lanzhou"]
    await _listing(jinan, LANZHOU_PERSON)
    [before] = await pseudonyms_from(lanzhou, jinan, [LANZHOU_PERSON])
    assert before.startswith("o1.")
    rotated = PseudonymKey.generate(2)
    rotated.save(jinan.home.paths.pseudonym_key)
    assert await rederive_pseudonyms(jinan.publisher, rotated) == 1
    assert await rederive_pseudonyms(jinan.publisher, rotated) == 0  # once
    await wait_mirrored(lanzhou, jinan, jinan.publisher.log.frontier.size)
    await asyncio.sleep(1.1)  # the serving node picks up the new key file within a second
    [after] = await pseudonyms_from(lanzhou, jinan, [LANZHOU_PERSON])
    assert after.startswith("o2.") and after == own_pseudonym(rotated, LANZHOU_PERSON)
    uri = jinan.home.identity.uri
    assert (await entity_by_person(lanzhou.store, "lanzhou", {uri: after})).memberships
    assert not (await entity_by_person(lanzhou.store, "lanzhou", {uri: before})).memberships


async def test_an_old_home_migrates_off_the_shared_alliance_key(
    federation: FederationFactory,
) -> None:
    fed: LocalFederation = await federation(1, subscribe=False)
    jinan = fed["jinan"]
    old = jinan.home.paths.old_alliance_key
    old.write_bytes(b'{"format": "creditnode-alliance-key/v1"}')
    event = await _listing(jinan, LANZHOU_PERSON)
    # Its pseudonyms were HMACs under the shared key: make the stored one look like that.
    stale = event.entry
    stale.person_pseudonym = "p1." + "a" * 52
    await jinan.publisher.append([Event(event.entry_id, feeds.EVENT_TYPE_UPDATE, stale)])
    await jinan.stop(0)
    jinan = await fed.start_node("jinan", "370100")
    assert not old.exists()
    async with jinan.store.engine.connect() as conn:
        from node.feeds.state import DISCLOSURES

        value = (
            await conn.execute(
                select(DISCLOSURES.c.value).where(DISCLOSURES.c.field == "person_pseudonym")
            )
        ).scalar_one()
    assert value == own_pseudonym(jinan.home.pseudonym_key, LANZHOU_PERSON)
