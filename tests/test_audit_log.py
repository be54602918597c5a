"""The audit log on the Merkle-log machinery: group commit, idempotency, signed checkpoints,
and every tampering with a stored entry named by verify_audit_log."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, insert, update

from keys import SigningKey
from node.audit.entry import AuditEntry, now_us, parse_entry, response_digest, uuid7
from node.audit.log import ENTRIES, AuditLog, audit_origin, verify_audit_log
from node.feeds import note
from node.feeds.logstore import LEAVES, LOGS
from node.storage import Store
from node.storage.writer import Writer

URI = "creditnode://yellow-river/jinan"


def entry(direction: str = "in", **kw: object) -> AuditEntry:
    fields: dict[str, object] = {
        "exchange": uuid7(), "at_us": now_us(), "direction": direction, "kind": "query",
        "outcome": "hit", "peer": "lanzhou", "purpose": "enforcement",
    }  # fmt: skip
    fields.update(kw)
    return AuditEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate(URI)


async def test_group_commit_gives_each_entry_its_own_index(store: Store, key: SigningKey) -> None:
    log = await AuditLog.open(store, URI, key)
    made = [entry() for _ in range(40)]
    indexes = await asyncio.gather(*(log.record(e) for e in made))
    assert sorted(indexes) == list(range(40))
    leaves = await log.log.read_leaves(0, 40)
    assert {parse_entry(leaves[i]) for i in indexes} == set(made)
    assert await verify_audit_log(store, URI, key.verifying_key) == []


async def test_recording_is_idempotent_and_a_reused_peer_id_is_not_hidden(
    store: Store, key: SigningKey
) -> None:
    log = await AuditLog.open(store, URI, key)
    mine = entry("out")
    first = await log.record(mine)
    assert await log.record(mine.replace(outcome="no_hit")) == first  # same exchange: kept once
    # A peer reusing an exchange id gets a second entry, under a fresh id of ours.
    theirs = entry("in")
    a = await log.record(theirs, fresh_on_replay=True)
    b = await log.record(theirs, fresh_on_replay=True)
    assert a != b
    [(_, again)] = [(i, e) for i, e in enumerate(await log.read_entries(0, 3)) if i == b]
    assert again.exchange != theirs.exchange and "already recorded" in again.reason


async def test_the_answer_carries_its_index_and_the_entry_its_hash(
    store: Store, key: SigningKey
) -> None:
    log = await AuditLog.open(store, URI, key)
    await log.record(entry())
    sent: list[bytes] = []

    def finish(index: int) -> bytes:
        data = f"answer {index}".encode()
        sent.append(data)
        return data

    idx = await log.record(entry(), finish=finish)
    assert idx == 1 and sent == [b"answer 1"]
    [recorded] = await log.read_entries(1, 2)
    assert recorded.response == response_digest(b"answer 1")


async def test_checkpoints_are_signed_with_their_time(store: Store, key: SigningKey) -> None:
    log = await AuditLog.open(store, URI, key)
    for _ in range(3):
        await log.record(entry())
    signed = await log.sign_checkpoint()
    cp = note.open_checkpoint(signed, key.verifying_key, origin=audit_origin(URI))
    assert cp.size == 3 and cp.root == log.log.frontier.root()
    assert note.checkpoint_time(cp) is not None
    assert await log.sign_checkpoint() == signed  # nothing new: the same note
    await log.close()
    with pytest.raises(RuntimeError):
        await log.record(entry())


async def test_a_failed_write_fails_every_waiter(
    store: Store, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await AuditLog.open(store, URI, key)

    async def broken(*args: object, **kw: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(log.log, "write", broken)
    monkeypatch.setattr(Writer, "commit", broken)  # the group-commit writer's transaction
    results = await asyncio.gather(*(log.record(entry()) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)  # no answer goes out unrecorded
    monkeypatch.undo()
    assert await log.record(entry()) == 0  # nothing half-written


@pytest.mark.parametrize(
    "tamper",
    ["row-changed", "row-deleted", "row-inserted", "leaf-edited", "leaf-deleted", "checkpoint"],
)
async def test_every_tampering_is_named(store: Store, key: SigningKey, tamper: str) -> None:
    log = await AuditLog.open(store, URI, key)
    for _ in range(5):
        await log.record(entry())
    await log.sign_checkpoint()
    assert await verify_audit_log(store, URI, key.verifying_key) == []
    lid = log.log.log_id
    async with store.begin() as conn:
        if tamper == "row-changed":
            await conn.execute(update(ENTRIES).where(ENTRIES.c.idx == 2).values(peer="taiyuan"))
        elif tamper == "row-deleted":
            await conn.execute(delete(ENTRIES).where(ENTRIES.c.idx == 2))
        elif tamper == "row-inserted":
            row: dict[str, object] = {c.name: None for c in ENTRIES.columns}
            e = entry()
            row.update(idx=99, exchange=e.exchange, direction="in", seq=0, at=e.at, kind="query",
                       outcome="hit", peer="x", method="", officer="", department="",
                       purpose="", subject="", response="", values=0, withheld=0)  # fmt: skip
            await conn.execute(insert(ENTRIES).values(**row))
        elif tamper == "leaf-edited":
            leaf = (await log.log.read_leaves(2, 3))[0]
            edited = leaf.replace(b'"peer":"lanzhou"', b'"peer":"taiyuan"')
            await conn.execute(
                update(LEAVES).where((LEAVES.c.log_id == lid) & (LEAVES.c.idx == 2))
                .values(data=edited)
            )  # fmt: skip
        elif tamper == "leaf-deleted":
            await conn.execute(delete(LEAVES).where((LEAVES.c.log_id == lid) & (LEAVES.c.idx == 2)))
        else:
            other = SigningKey.generate(URI)
            forged = note.sign_checkpoint(
                note.Checkpoint(audit_origin(URI), 5, log.log.frontier.root()), other
            )
            await conn.execute(update(LOGS).where(LOGS.c.id == lid).values(checkpoint_note=forged))
    findings = await verify_audit_log(store, URI, key.verifying_key)
    assert findings, tamper
    text = "; ".join(f.describe() for f in findings)
    expected = {
        "row-changed": "audit leaf 2: audit_entries row differs from its leaf (edited)",
        "row-deleted": "audit leaf 2: audit_entries row is missing (deleted)",
        "row-inserted": "audit leaf 99: audit_entries row has no leaf (inserted)",
        "leaf-edited": "audit leaf 2: leaf does not hash to its stored hash (leaf edited)",
        "leaf-deleted": "audit leaf 2: leaf is missing",
        "checkpoint": "audit log: signed checkpoint does not verify",
    }[tamper]
    assert expected in text
