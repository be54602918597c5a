"""The border on the feed path: each peer gets exactly the openings its agreement grants."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlmodel import SQLModel

from node.api import feeds
from node.errors import PeerError
from node.feeds.logstore import LEAVES, LOGS
from node.feeds.publisher import Event
from node.feeds.state import DISCLOSURES
from node.feeds.subscriber import Subscriber
from node.identity.pseudonym import own_pseudonym
from node.identity.registry import entity_by_person
from node.local_federation import LocalFederation
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import person_entry
from tests.helpers import pseudonyms_from

CANARY_ID = "11010519491231002X"
CANARY_NAME = "金丝雀示例"

AGREEMENT = """id = "jinan-lanzhou"
version = 2
peers = ["lanzhou"]
purposes = ["enforcement"]

[[rule]]
data_class = "list_entry"
purposes = ["enforcement"]
fields = { person_id = "pseudonym" }

[feed.list_entry]
person_pseudonym = "clear"
"""
# The masked ID beside the pseudonym would let lanzhou recover the ID (32 candidates, each
# tested through jinan's evaluation oracle): an agreement no node accepts.
REIDENTIFYING = AGREEMENT + 'person_id_masked = "clear"\n'


async def _sync(node: Node, origin: Node) -> None:
    await node.directory.refresh()
    peer = await node.directory.lookup(origin.name)
    assert peer is not None
    await (await Subscriber.open(node.home.tls, node.store, peer)).sync(follow=False)


async def restart_with_agreement(fed: LocalFederation, text: str) -> Node:
    """Jinan restarted with *text* as its agreement with lanzhou (agreements are read at
    start), enrolled again with everyone."""
    agreements = fed["jinan"].home.paths.root / "agreements"
    agreements.mkdir(exist_ok=True)
    (agreements / "lanzhou.toml").write_text(text)
    await fed["jinan"].stop(0)
    jinan = await fed.start_node("jinan", "370100")
    await fed.enroll_pairwise()
    return jinan


async def _everything(node: Node) -> str:
    """Every row of every table of *node*'s database, as text to search."""
    parts = []
    async with node.store.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                parts.append(repr(tuple(row)))
                parts.extend(v.decode("utf-8", "replace") for v in row if isinstance(v, bytes))
    return "\n".join(parts)


async def test_two_peers_two_forms_one_root(federation: FederationFactory) -> None:
    fed = await federation(3, subscribe=False)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    lanzhou, taiyuan = fed["lanzhou"], fed["taiyuan"]
    entry = person_entry(1, person_id=CANARY_ID, name=CANARY_NAME)
    entry.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, CANARY_ID)
    await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await jinan.publisher.sign_checkpoint()
    await _sync(lanzhou, jinan)
    await _sync(taiyuan, jinan)

    origin = jinan.home.identity.uri
    held = {}
    for node in (lanzhou, taiyuan):
        async with node.store.engine.connect() as conn:
            log_id = (await conn.execute(select(LOGS.c.id).where(LOGS.c.origin == origin))).scalar()
            leaves = (await conn.execute(select(LEAVES.c.data).where(LEAVES.c.log_id == log_id))
                      ).scalars().all()  # fmt: skip
            opened: dict[str, str] = dict(
                (
                    await conn.execute(
                        select(DISCLOSURES.c.field, DISCLOSURES.c.value).where(
                            DISCLOSURES.c.log_id == log_id
                        )
                    )
                ).all()
            )
            root = (await conn.execute(select(LOGS.c.root).where(LOGS.c.id == log_id))).scalar()
        held[node.name] = (leaves, opened, root)

    # The same leaf bytes and root at both peers (and at the origin).
    assert held["lanzhou"][0] == held["taiyuan"][0]
    assert held["lanzhou"][2] == held["taiyuan"][2] == jinan.publisher.log.frontier.root()
    # Two different forms of the same entry.
    assert held["lanzhou"][1] == {"person_pseudonym": entry.person_pseudonym}
    assert held["taiyuan"][1] == {}
    # The canaries never reached either peer's database.
    for node in (lanzhou, taiyuan):
        everything = await _everything(node)
        assert CANARY_ID not in everything and CANARY_NAME not in everything
    # With the pseudonym disclosed, lanzhou finds the person across cities, asking jinan for
    # its pseudonym obliviously; taiyuan has no agreement, so jinan evaluates nothing for it.
    [asked] = await pseudonyms_from(lanzhou, jinan, [CANARY_ID])
    assert asked == entry.person_pseudonym
    found = await entity_by_person(lanzhou.store, "lanzhou", {jinan.home.identity.uri: asked})
    assert [m.origin for m in found.memberships] == ["jinan"]
    with pytest.raises(PeerError, match="refused"):
        await pseudonyms_from(taiyuan, jinan, [CANARY_ID])
    guessed = {jinan.home.identity.uri: asked}  # even handed the pseudonym: no opening held
    assert (await entity_by_person(taiyuan.store, "taiyuan", guessed)).memberships == []


@pytest.mark.parametrize(
    "agreement",
    [AGREEMENT.replace("person_pseudonym", "person_pseudonymm"), REIDENTIFYING],
    ids=["misspelt", "re-identifying"],
)
async def test_broken_agreement_shares_nothing(
    federation: FederationFactory, agreement: str
) -> None:
    fed = await federation(2, subscribe=False)
    jinan = await restart_with_agreement(fed, agreement)
    entry = person_entry(1, person_id=CANARY_ID, name=CANARY_NAME)
    entry.person_pseudonym = own_pseudonym(jinan.home.pseudonym_key, CANARY_ID)
    await jinan.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await jinan.publisher.sign_checkpoint()
    await _sync(fed["lanzhou"], jinan)
    async with fed["lanzhou"].store.engine.connect() as conn:
        assert (await conn.execute(select(DISCLOSURES))).all() == []
