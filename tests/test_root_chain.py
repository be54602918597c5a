"""TrustedRoot: which root versions are accepted, and which online key was valid when.

Table-driven in the spirit of python-tuf's key-rotation tests: each case builds a trusted
root v1 and a chain of candidate versions (who holds the root role, who signed), and states
whether the chain is accepted or which refusal it meets.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from keys import SigningKey
from node.keys.roles import (
    FEED,
    TRANSPORT,
    WITNESS,
    OnlineKey,
    PseudonymGeneration,
    RootContent,
    Window,
    format_time,
    tuf_key,
)
from node.keys.trusted import MAX_CHAIN, MAX_ROOT_BYTES, RootError, TrustedRoot, parse_root

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)
YEAR = dt.timedelta(days=365)
SECOND = dt.timedelta(seconds=1)
NODE = "creditnode://yellow-river/jinan"


@dataclass(frozen=True)
class Holder:
    name: str
    private: Ed25519PrivateKey

    @property
    def key(self) -> SSlibKey:
        return tuf_key(self.private.public_key(), holder=self.name)

    def signer(self, keyid: str | None = None) -> CryptoSigner:
        key = self.key
        if keyid is not None:
            key = SSlibKey(keyid, key.keytype, key.scheme, key.keyval, key.unrecognized_fields)
        return CryptoSigner(self.private, key)


def _holders(prefix: str, n: int) -> list[Holder]:
    return [Holder(f"{prefix}{i}", Ed25519PrivateKey.generate()) for i in range(1, n + 1)]


A = _holders("a", 3)  # root v1's holders
B = _holders("b", 3)  # holders after a rotation
FEED_KEY = SigningKey.generate(NODE)
FEED_KEY_2 = SigningKey.generate(NODE)
WITNESS_KEY = SigningKey.generate(NODE)


def content(
    version: int,
    holders: Sequence[Holder] = A,
    *,
    threshold: int = 2,
    expires: dt.datetime = T0 + YEAR,
    online: Sequence[OnlineKey] | None = None,
    node: str = NODE,
) -> RootContent:
    if online is None:
        online = [OnlineKey(FEED, tuf_key(FEED_KEY.verifying_key), Window(T0))]
    return RootContent(
        node=node,
        version=version,
        expires=expires,
        holders=tuple(h.key for h in holders),
        threshold=threshold,
        online=tuple(online),
        pseudonym=(PseudonymGeneration(1, Window(T0)),),
    )


def sign(metadata: Metadata[Root], signers: Sequence[Holder]) -> bytes:
    for holder in signers:
        metadata.sign(holder.signer(), append=True)
    return JSONSerializer(compact=False).serialize(metadata)


def root(version: int, signers: Sequence[Holder], **kw: object) -> bytes:
    return sign(content(version, **kw).to_metadata(), signers)  # type: ignore[arg-type]


V1 = root(1, A[:2])


# -- cases that tamper with the TUF metadata itself (after to_metadata's checks) ----------


def same_key_twice() -> bytes:
    """v2 lists a1's public key under a second key id and a threshold of 2: with TUF's
    per-keyid count, a1 alone would meet it."""
    md = content(2).to_metadata()
    dup = copy.deepcopy(A[0].key)
    dup.keyid = "d" * 64
    md.signed.keys[dup.keyid] = dup
    md.signed.roles["root"].keyids.insert(1, dup.keyid)
    md.sign(A[0].signer(), append=True)
    md.sign(A[0].signer(dup.keyid), append=True)
    # TUF alone counts a1 twice: the threshold of 2 looks met by one holder.
    assert md.signed.get_verification_result("root", md.signed_bytes, md.signatures).verified
    return sign(md, [A[1]])  # and v1's threshold (a1, a2) is met


def with_fields(change: Callable[[Root], None]) -> Callable[[], list[bytes]]:
    """A chain of one v2, changed by *change* after the schema checks, then signed."""

    def build() -> list[bytes]:
        md = content(2).to_metadata()
        change(md.signed)
        return [sign(md, A[:2])]

    return build


def _unknown_role(r: Root) -> None:
    r.unrecognized_fields["x-creditnode-roles"]["oracle"] = []


def _role_lists_missing_key(r: Root) -> None:
    r.unrecognized_fields["x-creditnode-roles"]["witness"].append(
        {"keyid": "e" * 64, "valid_from": format_time(T0), "valid_until": None, "revoked_at": None}
    )


def _tuf_role_with_key(r: Root) -> None:
    r.roles["targets"].keyids.append(A[0].key.keyid)


def _holder_key_also_online(r: Root) -> None:
    entry = {"keyid": A[0].key.keyid, "valid_from": format_time(T0)}
    r.unrecognized_fields["x-creditnode-roles"]["witness"].append(
        entry | {"valid_until": None, "revoked_at": None}
    )


def _unlisted_key(r: Root) -> None:
    r.keys[B[0].key.keyid] = B[0].key


def _unknown_field(r: Root) -> None:
    r.unrecognized_fields["x-creditnode-extra"] = 1


def _threshold_above_keys(r: Root) -> None:
    r.roles["root"].threshold = 4


def flip(data: bytes, marker: bytes, offset: int = 0) -> bytes:
    """*data* with one character changed, *offset* characters after *marker*."""
    at = data.index(marker) + len(marker) + offset
    new = b"0" if data[at : at + 1] != b"0" else b"1"
    return data[:at] + new + data[at + 1 :]


def padded(data: bytes, size: int = MAX_ROOT_BYTES + 1) -> bytes:
    """*data* padded with JSON whitespace (still valid, signatures intact) to *size* bytes."""
    return data.replace(b"{", b"{" + b" " * (size - len(data)), 1)


@dataclass(frozen=True)
class Case:
    chain: Callable[[], list[bytes]]
    refused: str | None  # None: accepted; else a fragment of the refusal
    final_version: int = 2


CASES = {
    # thresholds
    "threshold met (2 of 3)": Case(lambda: [root(2, A[:2])], None),
    "threshold met by all three": Case(lambda: [root(2, A)], None),
    "threshold not met (1 of 2)": Case(lambda: [root(2, A[:1])], "1 of the 2 signatures"),
    "no signatures": Case(lambda: [root(2, [])], "0 of the 2 signatures"),
    "signed by strangers": Case(lambda: [root(2, B)], "0 of the 2 signatures"),
    # rotation of the root keys: old and new signatures
    "rotated v2 signed by v1's keys only": Case(
        lambda: [root(2, A[:2], holders=B)], "required from root v2's keys"
    ),
    "rotated v2 signed by v2's keys only": Case(
        lambda: [root(2, B[:2], holders=B)], "required from root v1's keys"
    ),
    "rotated v2 signed by both": Case(lambda: [root(2, [*A[:2], *B[:2]], holders=B)], None),
    "rotated v3 needs v2's keys, not v1's": Case(
        lambda: [root(2, [*A[:2], *B[:2]], holders=B), root(3, A, holders=B)],
        "required from root v2's keys",
    ),
    "threshold raised to 3 in v2, signed by 2": Case(
        lambda: [root(2, A[:2], threshold=3)], "required from root v2's keys"
    ),
    "threshold raised to 3 in v2, signed by 3": Case(lambda: [root(2, A, threshold=3)], None),
    # each key counts once
    "one public key under two key ids": Case(lambda: [same_key_twice()], "same public key"),
    # versions
    "skipped version (v1 → v3)": Case(lambda: [root(3, A)], "does not follow v1"),
    "same version again (v1 → v1)": Case(lambda: [V1], "does not follow v1"),
    "another node's root": Case(
        lambda: [root(2, A, node="creditnode://yellow-river/lanzhou")], "not creditnode"
    ),
    # expiry: the final version only
    "expired final root": Case(lambda: [root(2, A, expires=NOW - SECOND)], "expired at"),
    "expired intermediate root": Case(
        lambda: [root(2, A, expires=NOW - SECOND), root(3, A)], None, final_version=3
    ),
    "expired intermediate, expired final": Case(
        lambda: [root(2, A, expires=NOW - SECOND), root(3, A, expires=NOW)], "v3 expired"
    ),
    # caps
    "oversized root": Case(lambda: [padded(root(2, A))], "more than the 524288 allowed"),
    "padded root within the cap": Case(lambda: [padded(root(2, A), MAX_ROOT_BYTES)], None),
    "chain of 64 versions": Case(
        lambda: [root(v, A[:2]) for v in range(2, MAX_CHAIN + 2)], None, MAX_CHAIN + 1
    ),
    "chain of 65 versions": Case(
        lambda: [root(v, A[:2]) for v in range(2, MAX_CHAIN + 3)], "more than 64 allowed"
    ),
    # exactly the bytes received
    "a signature's byte flipped": Case(
        lambda: [flip(root(2, A[:2]), b'"sig": "', 10)], "1 of the 2 signatures"
    ),
    "a signed byte flipped (feed key)": Case(
        lambda: [flip(root(2, A), b'"public": "', 5)], "0 of the 2 signatures"
    ),
    "a signed byte flipped (expiry)": Case(
        lambda: [flip(root(2, A), b'"expires": "', 3)], "0 of the 2 signatures"
    ),
    "version given as true": Case(
        lambda: [root(2, A).replace(b'"version": 2', b'"version": true')], "must be integers"
    ),
    "duplicate JSON key": Case(
        lambda: [root(2, A).replace(b'"version": 2', b'"version": 2, "version": 2')],
        "duplicate JSON key",
    ),
    "unsigned field beside signed": Case(
        lambda: [root(2, A).replace(b'"signatures"', b'"note": 1, "signatures"', 1)],
        "exactly 'signed' and 'signatures'",
    ),
    "not JSON": Case(lambda: [root(2, A)[:-20]], "not JSON"),
    "not a root": Case(lambda: [root(2, A).replace(b'"root"', b'"targets"', 1)], "not a TUF root"),
    # unknown or misplaced role keys
    "unknown online role": Case(with_fields(_unknown_role), "must name exactly the roles"),
    "role lists a key the root lacks": Case(
        with_fields(_role_lists_missing_key), "which the root lacks"
    ),
    "key in TUF's unused targets role": Case(with_fields(_tuf_role_with_key), "targets is unused"),
    "root key also an online key": Case(
        with_fields(_holder_key_also_online), "listed in role root and again in witness"
    ),
    "key no role uses": Case(with_fields(_unlisted_key), "keys no role uses"),
    "unknown x- field": Case(with_fields(_unknown_field), "fields beyond TUF's"),
    "threshold above the number of keys": Case(with_fields(_threshold_above_keys), "exceeds"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_root_update(name: str) -> None:
    case = CASES[name]
    trusted = TrustedRoot(V1)
    chain = case.chain()
    if case.refused is None:
        accepted = trusted.update_chain(chain, now=NOW)
        assert accepted.version == trusted.version == case.final_version
        assert accepted.raw == chain[-1]
    else:
        with pytest.raises(RootError, match=case.refused.replace("(", r"\(")):
            trusted.update_chain(chain, now=NOW)
        assert trusted.version == 1  # all or nothing
        assert trusted.root.raw == V1


def test_update_steps_one_version_at_a_time() -> None:
    trusted = TrustedRoot(V1)
    trusted.update(root(2, [*A[:2], *B[:2]], holders=B), now=NOW)
    trusted.update(root(3, B[1:], holders=B), now=NOW)
    assert trusted.version == 3
    with pytest.raises(RootError, match="required from root v3's keys"):
        trusted.update(root(4, A, holders=A), now=NOW)  # the old holders lost the root
    assert trusted.version == 3


@pytest.mark.parametrize(
    ("signers", "refused"),
    [(A[:2], None), (A, None), (A[:1], "1 of the 2"), ([A[0], B[0]], "1 of the 2"), ([], "0 of")],
)
def test_initial_root_needs_its_own_threshold(
    signers: Sequence[Holder], refused: str | None
) -> None:
    data = root(1, signers)
    if refused is None:
        assert TrustedRoot(data).version == 1
    else:
        with pytest.raises(RootError, match=refused):
            TrustedRoot(data)


def test_initial_root_may_be_expired_but_not_oversized() -> None:
    expired = root(1, A, expires=T0 + SECOND)
    trusted = TrustedRoot(expired)  # a held root stays the base for updates (as in TUF)
    assert trusted.expired(NOW)
    trusted.update(root(2, A), now=NOW)
    with pytest.raises(RootError, match="more than"):
        TrustedRoot(padded(V1))


def test_progress_counts_both_roots() -> None:
    trusted = TrustedRoot(V1)
    progress = trusted.progress(root(2, [A[0], B[0]], holders=B))
    assert (len(progress.previous.signed), progress.previous.threshold) == (1, 2)
    assert (len(progress.own.signed), progress.own.threshold) == (1, 2)
    assert not progress.complete
    assert trusted.progress(root(2, [*A[:2], *B[1:]], holders=B)).complete
    with pytest.raises(RootError, match="does not follow"):
        trusted.progress(root(3, A))


def test_parse_root_is_strict_about_encoding() -> None:
    data = root(2, A)
    assert parse_root(data).payload == parse_root(data).metadata.signed_bytes
    # A float cannot be put in canonical JSON: refused, not silently re-encoded.
    with pytest.raises(RootError):
        parse_root(data.replace(b'"version": 2', b'"version": 2.0'))


# -- the validity predicate ------------------------------------------------------------

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when the feed key is revoked / retired


def _feed(window: Window, key: SigningKey = FEED_KEY) -> OnlineKey:
    return OnlineKey(FEED, tuf_key(key.verifying_key), window)


def held_root(*online: OnlineKey) -> TrustedRoot:
    """Root v1 (feed key open since T0) updated to a v2 listing *online*."""
    trusted = TrustedRoot(V1)
    trusted.update(root(2, A[:2], online=online), now=NOW)
    return trusted


V2_REVOKED = lambda: held_root(_feed(Window(T0).closed(T, revoked=True)))  # noqa: E731
V2_RETIRED = lambda: held_root(  # noqa: E731
    _feed(Window(T0, valid_until=T)), _feed(Window(T), FEED_KEY_2)
)
V2_REMOVED = lambda: held_root(_feed(Window(T), FEED_KEY_2))  # noqa: E731
V1_ONLY = lambda: TrustedRoot(V1)  # noqa: E731


@pytest.mark.parametrize(
    ("held", "role", "key", "at", "valid"),
    [
        pytest.param(V1_ONLY, FEED, FEED_KEY, T, True, id="listed, inside its window"),
        pytest.param(V1_ONLY, FEED, FEED_KEY, T0 - SECOND, False, id="before its window"),
        pytest.param(V1_ONLY, FEED, FEED_KEY_2, T, False, id="a key the root does not list"),
        pytest.param(V1_ONLY, WITNESS, FEED_KEY, T, False, id="listed, but in another role"),
        pytest.param(V2_REVOKED, FEED, FEED_KEY, T - SECOND, True, id="revoked at T: T-1 ok"),
        pytest.param(V2_REVOKED, FEED, FEED_KEY, T, False, id="revoked at T: T refused"),
        pytest.param(V2_REVOKED, FEED, FEED_KEY, T + SECOND, False, id="revoked at T: T+1 no"),
        pytest.param(V2_RETIRED, FEED, FEED_KEY, T - SECOND, True, id="retired at T: T-1 ok"),
        pytest.param(V2_RETIRED, FEED, FEED_KEY, T + SECOND, False, id="retired at T: T+1 no"),
        pytest.param(V2_RETIRED, FEED, FEED_KEY_2, T + SECOND, True, id="successor from T"),
        pytest.param(V2_RETIRED, FEED, FEED_KEY_2, T - SECOND, False, id="successor before T"),
        pytest.param(V2_REMOVED, FEED, FEED_KEY, T - SECOND, False, id="removed: never valid"),
    ],
)
def test_key_valid(
    held: Callable[[], TrustedRoot],
    role: str,
    key: SigningKey,
    at: dt.datetime,
    valid: bool,
) -> None:
    trusted = held()
    public = key.verifying_key
    assert trusted.key_valid(role, public, at) is valid
    assert trusted.key_valid(role, public.public, at) is valid  # a cryptography public key
    assert trusted.key_valid(role, tuf_key(public), at) is valid  # a TUF key
    keyid = tuf_key(public).keyid
    assert trusted.key_valid(role, keyid, at) is valid  # a key id
    assert (keyid in {o.keyid for o in trusted.valid_keys(role, at)}) is valid


def test_key_valid_finds_keys_by_public_key_not_by_claimed_id() -> None:
    trusted = TrustedRoot(V1)
    liar = tuf_key(FEED_KEY_2.verifying_key)
    liar.keyid = tuf_key(FEED_KEY.verifying_key).keyid  # claims the listed key's id
    assert not trusted.key_valid(FEED, liar, T)


def test_key_valid_refuses_unknown_roles_and_naive_times() -> None:
    trusted = TrustedRoot(V1)
    with pytest.raises(ValueError, match="unknown online role"):
        trusted.key_valid("root", FEED_KEY.verifying_key, T)
    with pytest.raises(ValueError, match="timezone-aware"):
        trusted.key_valid(FEED, FEED_KEY.verifying_key, T.replace(tzinfo=None))


def test_transport_key_and_pseudonym_generations() -> None:
    tls = tuf_key(WITNESS_KEY.verifying_key)  # any allowed key type will do
    transport = OnlineKey(TRANSPORT, tls, Window(T0, valid_until=T), certificate_sha256="ab" * 32)
    trusted = TrustedRoot(V1)
    v2 = replace(
        content(2, online=[_feed(Window(T0)), transport]),
        pseudonym=(
            PseudonymGeneration(1, Window(T0, valid_until=T)),
            PseudonymGeneration(2, Window(T)),
        ),
    )
    trusted.update(sign(v2.to_metadata(), A[:2]), now=NOW)
    assert trusted.key_valid(TRANSPORT, tls, T - SECOND)
    assert not trusted.key_valid(TRANSPORT, tls, T)
    assert trusted.content.online_keys(TRANSPORT)[0].certificate_sha256 == "ab" * 32
    assert [trusted.pseudonym_valid(v, T - SECOND) for v in (1, 2, 3)] == [True, False, False]
    assert [trusted.pseudonym_valid(v, T) for v in (1, 2, 3)] == [False, True, False]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: content(1, threshold=0).to_metadata(), "threshold"),
        (lambda: content(1, holders=[]).to_metadata(), "lists no keys"),
        (lambda: Window(T, valid_until=T), "after its valid_from"),
        (lambda: Window(T, revoked_at=T - SECOND), "revoked before it opens"),
        (lambda: OnlineKey("oracle", tuf_key(FEED_KEY.verifying_key), Window(T)), "unknown"),
        (lambda: content(1).with_online_key(_feed(Window(T))), "already listed"),
        (
            lambda: content(1, online=[_feed(Window(T)), _feed(Window(T))]).to_metadata(),
            "listed twice",
        ),
    ],
)
def test_content_refuses_bad_roots_before_signing(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_window_closing_keeps_the_earlier_end() -> None:
    window = Window(T0, valid_until=T)
    assert window.closed(T + YEAR, revoked=False).valid_until == T
    revoked = window.closed(T - SECOND, revoked=True)
    assert revoked.end == T - SECOND
    assert revoked.state(T) == "revoked"
    assert window.state(T) == "expired"
    assert window.state(T0 - SECOND) == "pending"
    assert window.state(T0) == "active"
