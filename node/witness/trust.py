"""Whose keys a witness and a gossiping subscriber judge with (pure): which of a peer's
origins are witnessed under which key role, the keys that may sign an origin's checkpoint,
and the keys that may cosign for a peer.

Trust in a peer is its root as held here (:class:`TrustedRoot`) or, for a peer enrolled
without one, its enrolled feed key. A root that lists no key of the audit or witness role
(made before those roles had keys) falls back to the feed role, as the signers do
(:mod:`node.keys.signers`); a peer without a root signs everything with its feed key.
"""

from __future__ import annotations

import datetime as dt

from keys import VerifyingKey
from node.feeds.note import (
    MAX_CLOCK_SKEW,
    Checkpoint,
    NoteError,
    checkpoint_time,
    open_checkpoint_by,
)
from node.keys.roles import AUDIT, FEED, WITNESS, ed25519_public, format_time
from node.keys.trusted import RootError, TrustedRoot

Trust = TrustedRoot | VerifyingKey
"""A peer's root held here, or its enrolled feed key (a peer enrolled without a root)."""

AUDIT_SUFFIX = "/audit"
"""A node's audit log is the origin ``<node uri>/audit``."""


def origin_role(node_uri: str, origin: str) -> str | None:
    """The key role that signs *origin*'s checkpoints if *origin* is one of the logs node
    *node_uri* publishes (its feed, its audit log), else None."""
    if origin == node_uri:
        return FEED
    if origin == node_uri + AUDIT_SUFFIX:
        return AUDIT
    return None


def _role_entries(root: TrustedRoot, role: str) -> str:
    """*role*, or the feed role when the root lists no key of *role* at all."""
    return role if role == FEED or root.content.online_keys(role) else FEED


def open_origin_checkpoint(
    note: bytes, trust: Trust, *, origin: str, key_name: str, role: str, now: dt.datetime
) -> Checkpoint:
    """Verify *note* as a checkpoint of *origin* signed by a key of *role* that *trust* holds
    valid at the note's signed time (at *now* for a note without one), named *key_name* (the
    node's identity). Raises NoteError."""
    if isinstance(trust, VerifyingKey):
        key = VerifyingKey(key_name, trust.public)
        return open_checkpoint_by(note, key, origin=origin)[0]
    used = _role_entries(trust, role)
    keys = [VerifyingKey(key_name, ed25519_public(o.key)) for o in trust.content.online_keys(used)]
    if not keys:
        raise NoteError(f"root v{trust.version} lists no {used} key")
    cp, signers = open_checkpoint_by(note, keys, origin=origin)
    at = checkpoint_time(cp)
    if at is not None and at > now + MAX_CLOCK_SKEW:
        raise NoteError(f"checkpoint signed at {format_time(at)}, ahead of this node's clock")
    judged = now if at is None else at
    if not any(trust.key_valid(used, k, judged) for k in signers):
        raise NoteError(
            f"no {used} key that signed the checkpoint was valid at {format_time(judged)} "
            f"in root v{trust.version}"
        )
    return cp


def cosigner_keys(trust: Trust, name: str, at: dt.datetime) -> list[VerifyingKey]:
    """The keys a cosignature by the peer named *name* made at *at* may verify under."""
    if isinstance(trust, VerifyingKey):
        return [VerifyingKey(name, trust.public)]
    used = _role_entries(trust, WITNESS)
    return [VerifyingKey(name, ed25519_public(o.key)) for o in trust.valid_keys(used, at)]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def pinned_trust(root_v1: bytes | None, chain: list[bytes], feed_key: VerifyingKey) -> Trust:
    """A node's trust for checking offline: its pinned *root_v1* brought forward by *chain*
    (its root versions as some holder kept them, v1 first; each signed by its predecessor's
    threshold; judged by signatures only, so what was signed under a root since expired stays
    checkable), or its *feed_key* if it pins no root. Raises RootError."""
    if root_v1 is None:
        return feed_key
    if chain and chain[0] != root_v1:
        raise RootError("the root v1 carried is not the pinned one")
    held = TrustedRoot(root_v1)
    if len(chain) > 1:
        held.update_chain(chain[1:], now=_EPOCH)
    return held
