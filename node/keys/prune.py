"""Which retired private key files ``keys prune`` deletes (I/O: the home's key files and root
directory), for every role that keeps private keys in the home:

- feed, audit, report, witness: ``HOME/keys/<role>.<keyid16>.key``
  (:func:`node.keys.signers.retired_role_keys`);
- transport: the pairs ``keys rotate --role transport`` kept as ``HOME/tls/node.<keyid16>.key``
  and ``.pem`` when it replaced them.

A file is retired when a published root listed its key in the role and the current root no
longer does, or lists it with a window (expiry or revocation) that closed more than the overlap
ago. Never a key in force (``keys/<role>.key``, ``tls/node.key``), a key valid now, a key only a
pending root lists, nor a file that cannot be read.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys import load_certificate
from node.keys.roles import TRANSPORT, public_identity, reference_identity
from node.keys.signers import SIGNING_ROLES, RetiredKey, retired_role_keys, retirement
from node.keys.store import RootStore

_KEPT_TLS_KEY = re.compile(r"^node\.([0-9a-f]{16})\.key$")


def retired_transport_pairs(
    home_root: Path, *, now: dt.datetime, overlap: dt.timedelta
) -> list[RetiredKey]:
    """The kept TLS pairs (``tls/node.<keyid16>.key`` with its ``.pem``) that are retired.
    The public key is read from the kept certificate; a pair without one is left alone."""
    store = RootStore(home_root)
    directory = home_root / "tls"
    if not store.versions() or not directory.is_dir():
        return []
    current = store.load()
    published = {
        public_identity(o.key): o.keyid
        for parsed in store.history()
        for o in parsed.content.online_keys(TRANSPORT)
    }
    listed = {public_identity(o.key): o for o in current.content.online_keys(TRANSPORT)}
    retired = []
    for key_path in sorted(directory.iterdir()):
        if not _KEPT_TLS_KEY.fullmatch(key_path.name):
            continue
        cert_path = key_path.with_suffix(".pem")
        try:
            public = load_certificate(cert_path.read_bytes()).public_key()
        except (OSError, ValueError):
            continue
        if not isinstance(public, Ed25519PublicKey | EllipticCurvePublicKey):
            continue
        identity = reference_identity(public)
        if identity not in published:
            continue
        reason = retirement(listed.get(identity), current.version, now=now, overlap=overlap)
        if reason is not None:
            retired.append(
                RetiredKey(key_path, published[identity], reason, TRANSPORT, also=(cert_path,))
            )
    return retired


def retired_keys(home_root: Path, *, now: dt.datetime, overlap: dt.timedelta) -> list[RetiredKey]:
    """Every retired private key file of the home, role by role."""
    found = [
        key
        for role in SIGNING_ROLES
        for key in retired_role_keys(home_root, role, now=now, overlap=overlap)
    ]
    return found + retired_transport_pairs(home_root, now=now, overlap=overlap)
