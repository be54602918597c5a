"""Signed checkpoint times (issue 12): the ``time`` extension line, and a subscriber that
judges a checkpoint's signers at the time it states, in the root it holds.

Pure cases first (the line's syntax; validity at a time, table-driven), then live nodes: a
revoked key's next checkpoint is refused while a subscriber streams, although its signature
verifies, and history signed inside an old key's window still verifies after it closed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from keys import SigningKey
from node.api import feeds
from node.feeds import merkle, note, subscriber
from node.feeds.logstore import LOGS
from node.feeds.note import MAX_CLOCK_SKEW, signing_time
from node.feeds.verify import (
    CheckpointRefused,
    FeedError,
    ForkError,
    VerifiedCheckpoint,
    verify_checkpoint,
)
from node.keys.ceremony import revoke_key, rotate_key
from node.keys.roles import FEED, OnlineKey, Window, format_time, tuf_key
from node.keys.signers import FeedSigners
from node.keys.trusted import TrustedRoot
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, mirror_size, wait_mirrored
from tests.helpers import channel_to
from tests.test_key_rotation import (
    held_version,
    mirror_state,
    signed_by,
    with_roots,
)
from tests.test_root_chain import NODE, T0, A, content, sign

UTC = dt.UTC
SECOND = dt.timedelta(seconds=1)
DAY = dt.timedelta(days=1)
ROOT_HASH = bytes(range(32))
ORIGIN = NODE

# --- the time line ------------------------------------------------------------------------

times = st.datetimes(
    min_value=dt.datetime(1970, 1, 1),
    max_value=dt.datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
KEY = SigningKey.generate("example.com/log")
line_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1)


@given(
    line_text,
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(min_size=32, max_size=32),
    times,
    st.lists(line_text.filter(lambda t: t != "time" and not t.startswith("time ")), max_size=3),
)
def test_time_line_round_trip(
    origin: str, size: int, root: bytes, at: dt.datetime, extra: list[str]
) -> None:
    cp = note.timed_checkpoint(origin, size, root, at, extensions=extra)
    whole = (at - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(seconds=1)
    assert cp.extensions == (f"time {whole}", *extra)
    parsed = note.Checkpoint.parse_body(cp.body())
    assert parsed == cp
    assert note.checkpoint_time(parsed) == at.replace(microsecond=0)
    signed = note.sign_checkpoint(parsed, KEY)
    opened = note.open_checkpoint(signed, KEY.verifying_key, origin=origin)
    assert note.checkpoint_time(opened) == at.replace(microsecond=0)


def test_time_line_is_exact() -> None:
    at = dt.datetime(2026, 11, 30, 10, 0, 5, 999_999, tzinfo=UTC)
    cp = note.timed_checkpoint("example.com/log", 7, ROOT_HASH, at)
    assert cp.body() == (b"example.com/log\n7\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                         b"time 1796032805\n")  # fmt: skip
    # Whole seconds, rounded down: never a moment after signing.
    assert note.checkpoint_time(cp) == at.replace(microsecond=0)
    # The same instant in another zone gives the same line.
    east = at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert note.timed_checkpoint("example.com/log", 7, ROOT_HASH, east) == cp


def test_legacy_checkpoint_has_no_time() -> None:
    assert note.checkpoint_time(note.Checkpoint("o", 1, ROOT_HASH)) is None
    # Lines that only look like one are other extensions.
    for ext in ("timer 5", "times", "Time 5", " time 5", "timestamp 5"):
        assert note.checkpoint_time(note.Checkpoint("o", 1, ROOT_HASH, (ext,))) is None


CANONICAL = re.compile(r"0|[1-9][0-9]*")


@given(st.text(alphabet="0123456789+-. e\u0665\uff15x", max_size=14))
def test_malformed_time_values_are_refused(value: str) -> None:
    cp = note.Checkpoint("o", 1, ROOT_HASH, (f"time {value}",) if value else ("time",))
    good = bool(CANONICAL.fullmatch(value)) and int(value) <= 253402300799
    if good:
        assert note.checkpoint_time(cp) == dt.datetime.fromtimestamp(int(value), UTC)
    else:
        with pytest.raises(note.NoteError, match="time"):
            note.checkpoint_time(cp)


@pytest.mark.parametrize(
    "extensions",
    [
        ("time 01",),
        ("time -1",),
        ("time +1",),
        ("time 1.0",),
        ("time  1",),
        ("time 1 ",),
        ("time 1 2",),
        ("time",),
        ("time \u0661",),  # an Arabic-Indic digit: int() would take it
        ("time 253402300800",),  # past what a datetime holds
        ("time 1", "time 1"),
        ("time 1", "other", "time 2"),
    ],
)
def test_malformed_or_repeated_time_lines_are_refused(extensions: tuple[str, ...]) -> None:
    cp = note.Checkpoint("o", 1, ROOT_HASH, extensions)
    with pytest.raises(note.NoteError, match="time"):
        note.checkpoint_time(cp)


def test_timed_checkpoint_refuses_bad_times() -> None:
    with pytest.raises(note.NoteError, match="time zone"):
        note.timed_checkpoint("o", 1, ROOT_HASH, dt.datetime(2026, 1, 1))
    with pytest.raises(note.NoteError, match="out of range"):
        note.timed_checkpoint("o", 1, ROOT_HASH, dt.datetime(1969, 12, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(note.NoteError, match="more than one time line"):
        note.timed_checkpoint("o", 1, ROOT_HASH, T0, extensions=["time 5"])


# --- validity at the signed time (pure) ---------------------------------------------------

OLD = SigningKey.generate(ORIGIN)  # rotated out: its window closes at RETIRED
NEW = SigningKey.generate(ORIGIN)  # rotated in at ROTATED
STOLEN = SigningKey.generate(ORIGIN)  # revoked at REVOKED
UNLISTED = SigningKey.generate(ORIGIN)
ROTATED = T0 + 30 * DAY
RETIRED = ROTATED + DAY
REVOKED = T0 + 10 * DAY


def _root() -> TrustedRoot:
    online = [
        OnlineKey(FEED, tuf_key(OLD.verifying_key), Window(T0, valid_until=RETIRED)),
        OnlineKey(FEED, tuf_key(NEW.verifying_key), Window(ROTATED)),
        OnlineKey(FEED, tuf_key(STOLEN.verifying_key), Window(T0, revoked_at=REVOKED)),
    ]
    return TrustedRoot(sign(content(1, online=online).to_metadata(), A[:2]))


ROOT = _root()


def signed_at(at: dt.datetime | None, *keys: SigningKey, size: int = 4) -> feeds.SignedCheckpoint:
    cp = (
        note.Checkpoint(ORIGIN, size, TREE[size])
        if at is None
        else note.timed_checkpoint(ORIGIN, size, TREE[size], at)
    )
    return feeds.SignedCheckpoint(note=note.sign_checkpoint(cp, list(keys)))


def _tree() -> tuple[dict[int, bytes], dict[int, bytes]]:
    frontier = merkle.Frontier()
    hashes: dict[int, bytes] = {}
    roots = {0: merkle.empty_root()}
    for i in range(8):
        hashes.update(frontier.append(merkle.leaf_hash(b"leaf %d" % i)))
        roots[frontier.size] = frontier.root()
    return roots, hashes


TREE, HASHES = _tree()


def previous_at(at: dt.datetime | None, size: int = 4) -> VerifiedCheckpoint:
    signed = bytes(signed_at(at, NEW, OLD, size=size).note)
    return VerifiedCheckpoint(note.stored_checkpoint(signed), signed)


@dataclass(frozen=True)
class Case:
    name: str
    signers: Sequence[SigningKey]
    at: dt.datetime | None  # the signed time; None: a legacy note
    now: dt.datetime
    refused: str = ""  # a fragment of the refusal; empty: accepted
    previous: dt.datetime | None = None  # the previous verified checkpoint's signed time


CASES = [
    Case("inside the old key's window", [OLD], T0 + DAY, T0 + DAY),
    Case("history in the old window, checked long after", [OLD], T0 + DAY, RETIRED + 300 * DAY),
    Case("first second of a window", [NEW], ROTATED, ROTATED),
    Case(
        "before the new key's window",
        [NEW],
        ROTATED - SECOND,
        ROTATED,
        f"valid at its signed time {format_time(ROTATED - SECOND)}",
    ),
    Case("last second of a window", [OLD], RETIRED - SECOND, RETIRED),
    Case(
        "at the window's end",
        [OLD],
        RETIRED,
        RETIRED + SECOND,
        f"at its signed time {format_time(RETIRED)} in root v1",
    ),
    Case("overlap: both keys", [OLD, NEW], ROTATED + SECOND, ROTATED + SECOND),
    Case("one of two signers valid then", [NEW, OLD], RETIRED + DAY, RETIRED + DAY),
    Case("before the revocation", [STOLEN], REVOKED - SECOND, REVOKED + DAY),
    Case(
        "at the revocation",
        [STOLEN],
        REVOKED,
        REVOKED,
        f"{tuf_key(STOLEN.verifying_key).keyid[:16]} (window "
        f"{format_time(T0)} → {format_time(REVOKED)} (revoked))",
    ),
    Case("after the revocation", [STOLEN], REVOKED + DAY, REVOKED + DAY, "no feed key"),
    Case("a key the root does not list", [UNLISTED], T0 + DAY, T0 + DAY, "not signed by"),
    Case("clock skew at the limit", [NEW], RETIRED + MAX_CLOCK_SKEW, RETIRED),
    Case(
        "beyond the clock skew",
        [NEW],
        RETIRED + MAX_CLOCK_SKEW + SECOND,
        RETIRED,
        f"signed at {format_time(RETIRED + MAX_CLOCK_SKEW + SECOND)} by key "
        f"{tuf_key(NEW.verifying_key).keyid[:16]}, more than 5 minutes ahead",
    ),
    Case("the previous time again", [NEW], RETIRED, RETIRED, previous=RETIRED),
    Case(
        "backdated below the previous",
        [OLD],
        RETIRED - 2 * SECOND,
        RETIRED,
        f"earlier than the checkpoint already verified (signed at {format_time(RETIRED)})",
        previous=RETIRED,
    ),
    Case("a legacy previous bounds nothing", [OLD], T0, RETIRED - SECOND, previous=None),
    Case("legacy note: judged at receipt", [OLD], None, RETIRED - SECOND),
    Case(
        "legacy note after its key's window",
        [OLD],
        None,
        RETIRED,
        f"at receipt ({format_time(RETIRED)}, the note has no signed time)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("grows", [False, True], ids=["same size", "grows"])
def test_validity_at_the_signed_time(case: Case, grows: bool) -> None:
    size = 6 if grows else 4
    signed = signed_at(case.at, *case.signers, size=size)
    if grows:
        signed.proof_from_size = 4
        signed.consistency_proof.extend(merkle.consistency_proof(4, 6, HASHES))
    previous = previous_at(case.previous, size=4)
    if case.refused:
        with pytest.raises(FeedError, match="checkpoint refused") as err:
            verify_checkpoint(signed, ROOT, ORIGIN, previous, now=case.now)
        assert case.refused in str(err.value)
        # Not the origin's checkpoint (tampered), except a time ahead of this clock (stalled).
        assert isinstance(err.value, CheckpointRefused) == ("ahead" not in case.refused)
        return
    got = verify_checkpoint(signed, ROOT, ORIGIN, previous, now=case.now)
    assert got.note == bytes(signed.note) and got.size == size
    expected = None if case.at is None else case.at.replace(microsecond=0)
    assert got.signed_at == expected
    # With no previous checkpoint at all it is accepted too.
    assert verify_checkpoint(signed, ROOT, ORIGIN, None, now=case.now).size == size


def test_an_enrolled_key_without_a_root_is_not_judged_by_time() -> None:
    """Without a root the enrolled key decides, as before; the time line must still parse
    and may not run ahead of the clock or behind the last checkpoint."""
    late = RETIRED + 400 * DAY
    assert verify_checkpoint(signed_at(T0, OLD), OLD.verifying_key, ORIGIN, None, now=late)
    with pytest.raises(FeedError, match="ahead") as ahead:
        verify_checkpoint(signed_at(late, OLD), OLD.verifying_key, ORIGIN, None, now=T0)
    assert not isinstance(ahead.value, CheckpointRefused)  # a clock problem: stalled
    with pytest.raises(CheckpointRefused, match="earlier than"):
        verify_checkpoint(
            signed_at(T0, OLD), OLD.verifying_key, ORIGIN, previous_at(T0 + DAY), now=late
        )
    bad = note.sign_checkpoint(note.Checkpoint(ORIGIN, 4, TREE[4], ("time 01",)), OLD)
    with pytest.raises(CheckpointRefused, match="checkpoint refused: checkpoint time") as err:
        verify_checkpoint(feeds.SignedCheckpoint(note=bad), OLD.verifying_key, ORIGIN, None, now=T0)
    assert err.value.note == bad  # the note received, kept as evidence
    with pytest.raises(CheckpointRefused, match="checkpoint refused"):
        verify_checkpoint(signed_at(T0, NEW), OLD.verifying_key, ORIGIN, None, now=T0)


def test_a_fork_is_evidence_whatever_time_it_claims() -> None:
    """Two validly signed roots for one size are an equivocation even when the second is
    also backdated: the fork is reported (and kept as evidence), not just refused."""
    other = note.timed_checkpoint(ORIGIN, 4, bytes(32), T0)
    signed = feeds.SignedCheckpoint(note=note.sign_checkpoint(other, OLD))
    with pytest.raises(ForkError) as err:
        verify_checkpoint(signed, ROOT, ORIGIN, previous_at(T0 + DAY), now=T0 + DAY)
    assert err.value.kind == "equivocation"


def test_the_publisher_never_signs_a_time_below_its_newest() -> None:
    now = dt.datetime(2026, 11, 30, 10, 0, 0, 700_000, tzinfo=UTC)

    def at(t: dt.datetime | None) -> bytes:
        return bytes(signed_at(t, NEW).note)

    whole = now.replace(microsecond=0)
    assert signing_time(now, ()) == whole
    assert signing_time(now, (b"", at(None), at(whole - DAY))) == whole
    # A clock stepped back a little: the newest time is kept, not undercut.
    ahead = whole + 2 * SECOND
    assert signing_time(now, (at(whole), at(ahead))) == ahead
    # A time beyond what subscribers accept was a broken clock: not carried on.
    assert signing_time(now, (at(whole + MAX_CLOCK_SKEW + SECOND),)) == whole
    assert signing_time(now, (b"not a note",)) == whole


# --- live: a revocation while a subscriber streams ----------------------------------------


async def test_a_revoked_keys_next_checkpoint_is_refused_while_streaming(
    federation: FederationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root updates before every checkpoint: the revocation is known when the next one comes.
    monkeypatch.setattr(subscriber, "ROOT_REFRESH_SECONDS", 0.0)
    fed = await federation(2)
    jinan, lanzhou = fed["jinan"], fed["lanzhou"]
    holders = await with_roots(fed, {"jinan": ("alice",), "lanzhou": ("bob",)})
    old_key = jinan.home.signing_key
    size = await jinan.publisher.append(adds(4))
    await wait_mirrored(lanzhou, jinan, size)

    # A rotation with an hour's overlap; a checkpoint signed by the old key alone inside it.
    proposal = await asyncio.to_thread(
        rotate_key,
        jinan.home.paths.root,
        role=FEED,
        now=dt.datetime.now(UTC),
        overlap=dt.timedelta(hours=1),
        holder_keys=holders["jinan"],
    )
    assert proposal.new_key_path is not None
    new_key = SigningKey.from_pem(old_key.name, proposal.new_key_path.read_bytes())
    jinan.publisher.signers = FeedSigners.fixed(old_key)  # the stolen key, say
    size = await jinan.publisher.append(adds(4, start=4))
    await wait_mirrored(lanzhou, jinan, size)
    history = jinan.publisher.latest_note
    assert signed_by(history, old_key) and await held_version(lanzhou, "jinan") == 2

    # Revoked now (root v3), in a later whole second than the history was signed in (times
    # are whole seconds: a revocation closes its second). The key goes on signing: its next
    # checkpoint is refused.
    history_at = note.checkpoint_time(note.stored_checkpoint(history))
    assert history_at is not None
    wait = (history_at + SECOND - dt.datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(0.0, wait))
    revoked = await asyncio.to_thread(
        revoke_key,
        jinan.home.paths.root,
        role=FEED,
        keyid=tuf_key(old_key.verifying_key).keyid,
        reason="key file copied off the node",
        now=dt.datetime.now(UTC),
        holder_keys=holders["jinan"],
    )
    assert revoked.published is not None
    refused_size = await jinan.publisher.append(adds(4, start=8))
    assert await jinan.publisher.wait_newer(refused_size - 1, timeout=20)
    refused = jinan.publisher.latest_note
    at = note.checkpoint_time(note.stored_checkpoint(refused))
    assert at is not None
    # Its signature verifies: only its time, at or after the revocation, refuses it.
    note.open_checkpoint(refused, old_key.verifying_key, origin=old_key.name)
    # Not the origin's checkpoint: a verification failure, the feed tampered, the note kept.
    _, detail = await state_becomes(lanzhou, jinan, "tampered")
    assert detail.startswith("sync: checkpoint refused: ")
    assert f"valid at its signed time {format_time(at)}" in detail
    assert tuf_key(old_key.verifying_key).keyid[:16] in detail and "(revoked)" in detail
    assert await held_version(lanzhou, "jinan") == 3
    assert await mirror_size(lanzhou, jinan) == size < refused_size

    # History signed inside the old key's window still verifies under root v3.
    peer = lanzhou.directory.get("jinan")
    assert peer is not None
    sub = await subscriber.Subscriber.open(lanzhou.home.tls, lanzhou.store, peer)
    await sub.load_root()
    async with channel_to(jinan, lanzhou.home.tls) as channel:
        kept = await sub.check_checkpoint(channel, feeds.SignedCheckpoint(note=history), None)
    assert kept.size == size

    [(kind, later)] = await refused_evidence(lanzhou, jinan)
    assert kind == "refused-checkpoint" and later == refused

    # The node signs with the keys its root says again: the follower catches up, but the
    # feed stays tampered until the operator clears it; then it is ok.
    jinan.publisher.signers = FeedSigners.of_home(jinan.home)
    await jinan.publisher.sign_checkpoint(resign=True)
    assert signed_by(jinan.publisher.latest_note, new_key)
    await wait_mirrored(lanzhou, jinan, refused_size)
    assert (await mirror_state(lanzhou, jinan))[0] == "tampered"
    cleared = await subscriber.clear_feed_state(lanzhou.store, jinan.home.identity.uri)
    assert (cleared.state, cleared.evidence) == ("tampered", 1)
    size = await jinan.publisher.append(adds(2, start=12))
    await wait_mirrored(lanzhou, jinan, size)
    assert await mirror_state(lanzhou, jinan) == ("ok", "")


async def refused_evidence(node: Node, origin: Node) -> list[tuple[str, bytes]]:
    """The (kind, received note) of every refused checkpoint *node* kept of *origin*."""
    async with node.store.engine.connect() as conn:
        rows = await conn.execute(
            select(subscriber.EVIDENCE.c.kind, subscriber.EVIDENCE.c.later_note)
            .select_from(subscriber.EVIDENCE.join(LOGS, LOGS.c.id == subscriber.EVIDENCE.c.log_id))
            .where(LOGS.c.origin == origin.home.identity.uri)
            .order_by(subscriber.EVIDENCE.c.id)
        )
        return [(str(k), bytes(n)) for k, n in rows]


async def state_becomes(node: Node, origin: Node, want: str) -> tuple[str, str]:
    deadline = time.monotonic() + 20
    while (state := await mirror_state(node, origin))[0] != want:
        assert time.monotonic() < deadline, f"still {state}, not {want}"
        await asyncio.sleep(0.05)
    return state
