"""The root ceremony on a node home (I/O): create the holders' keys and root v1, propose the
next version, add one holder's signature, publish, and list every key with its state.

Holders sign on separate machines: ``sign-root`` only adds a signature to
``HOME/keys/root/pending.json`` (a file the holders pass around); ``publish-root`` is the one
step that makes a pending root current, after :meth:`TrustedRoot.update` accepted it. Times are
arguments, so the commands and the tests decide what "now" is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

from keys import (
    FederationCA,
    SigningKey,
    certificate_fingerprint,
    generate_tls_key,
    issued_by,
    private_key_pem,
    seal,
    unseal,
    validate_label,
    write_private_file,
    write_public_file,
)
from node.errors import ConfigError, InputError
from node.home import Home, load_home
from node.keys.roles import (
    AUDIT,
    FEED,
    ONLINE_ROLES,
    REPORT,
    ROOT_ROLE,
    TRANSPORT,
    WITNESS,
    KeyState,
    OnlineKey,
    PseudonymGeneration,
    RootContent,
    Window,
    format_time,
    public_identity,
    short_id,
    tuf_key,
    utc,
)
from node.keys.signers import feed_key_path
from node.keys.store import RootStore
from node.keys.trusted import RootError, RootProgress, TrustedRoot, VerifiedRoot, parse_root

HOLDER_KEY_SUFFIX = ".root-key.json"
DEFAULT_DAYS = 365


def _file_time(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)


def home_online_keys(
    home: Home,
) -> tuple[tuple[OnlineKey, ...], tuple[PseudonymGeneration, ...]]:
    """The online keys a home holds today, with their windows:

    - feed: ``keys/feed.key``'s public key, valid from when the file was written, open-ended
      (until rotated or revoked);
    - transport: the TLS certificate's public key and fingerprint, valid over the
      certificate's own validity period;
    - pseudonym: the OPRF key's version, valid from when ``keys/pseudonym.key`` was written.
    """
    feed = OnlineKey(
        role=FEED,
        key=tuf_key(home.signing_key.verifying_key),
        window=Window(valid_from=_file_time(home.paths.feed_key)),
    )
    cert = home.tls.certificate
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey | EllipticCurvePublicKey):
        raise ConfigError(f"{home.paths.tls_cert}: not an ECDSA or Ed25519 certificate key")
    transport = OnlineKey(
        role=TRANSPORT,
        key=tuf_key(public),
        window=Window(valid_from=cert.not_valid_before_utc, valid_until=cert.not_valid_after_utc),
        certificate_sha256=certificate_fingerprint(cert),
    )
    pseudonym = PseudonymGeneration(
        version=home.pseudonym_key.version,
        window=Window(valid_from=_file_time(home.paths.pseudonym_key)),
    )
    return (feed, transport), (pseudonym,)


def _serialize(metadata: Metadata[Root]) -> bytes:
    return JSONSerializer(compact=False).serialize(metadata)


def check_holders(names: Sequence[str], *, threshold: int, days: int) -> None:
    """Refuse bad root-init options before anyone types a passphrase."""
    if not names:
        raise InputError("--holders: name at least one holder")
    for name in names:
        try:
            validate_label("holder name", name)
        except ValueError as exc:
            raise InputError(f"--holders: {exc}") from None
    if len(set(names)) != len(names):
        raise InputError("--holders: a holder is named twice")
    if not 1 <= threshold <= len(names):
        raise InputError(f"--threshold must be between 1 and the {len(names)} holders")
    if days < 1:
        raise InputError("--days must be at least 1")


@dataclass(frozen=True)
class InitResult:
    root_path: Path
    holder_files: tuple[Path, ...]
    root: VerifiedRoot


def root_init(
    home_root: Path,
    *,
    holders: Sequence[str],
    threshold: int,
    passphrases: Mapping[str, str],
    out_dir: Path,
    now: dt.datetime,
    days: int = DEFAULT_DAYS,
) -> InitResult:
    """Create one Ed25519 key per holder (sealed under that holder's passphrase, 0600) and
    root v1 listing them with *threshold* and the home's online keys, signed by every holder."""
    home = load_home(home_root)
    store = RootStore(home_root)
    if store.versions() or store.read_pending() is not None:
        raise InputError(
            f"{store.directory} already holds root metadata; root-init runs once per node"
        )
    names = list(holders)
    check_holders(names, threshold=threshold, days=days)
    files = {name: out_dir / f"{name}{HOLDER_KEY_SUFFIX}" for name in names}
    for path in files.values():
        if path.exists():
            raise InputError(f"{path} already exists; refusing to overwrite a holder key")
    for name in names:
        if name not in passphrases:
            raise InputError(f"no passphrase for holder {name}")

    now = utc(now)
    privates = {name: Ed25519PrivateKey.generate() for name in names}
    try:
        sealed = {name: seal(privates[name], passphrases[name], label=name) for name in names}
    except ValueError as exc:
        raise InputError(str(exc)) from None
    keys = {name: tuf_key(privates[name].public_key(), holder=name) for name in names}
    online, pseudonym = home_online_keys(home)
    content = RootContent(
        node=home.identity.uri,
        version=1,
        expires=now + dt.timedelta(days=days),
        holders=tuple(keys[name] for name in names),
        threshold=threshold,
        online=online,
        pseudonym=pseudonym,
    )
    metadata = content.to_metadata()
    for name in names:
        metadata.sign(CryptoSigner(privates[name], keys[name]), append=True)
    data = _serialize(metadata)
    trusted = TrustedRoot(data)  # the same check a peer makes
    if trusted.expired(now):
        raise InputError("root v1 would be expired already")
    for name in names:
        write_private_file(files[name], sealed[name])
    path = store.write_version(1, data)
    return InitResult(root_path=path, holder_files=tuple(files.values()), root=trusted.root)


def propose_root(home_root: Path, *, now: dt.datetime, days: int = DEFAULT_DAYS) -> RootContent:
    """Start pending root N+1: the current content with a new expiry, unsigned. Rotation and
    revocation start the same way from ``RootContent.with_…``."""
    store = RootStore(home_root)
    trusted = store.load()
    if store.read_pending() is not None:
        raise InputError(f"{store.pending_path} exists; publish it or delete it first")
    if days < 1:
        raise InputError("--days must be at least 1")
    content = trusted.content.next_version(expires=utc(now) + dt.timedelta(days=days))
    store.write_pending(_serialize(content.to_metadata()))
    return content


@dataclass(frozen=True)
class SignResult:
    holder: str
    keyids: tuple[str, ...]
    progress: RootProgress
    content: RootContent


def sign_pending(
    home_root: Path, *, holder_key: bytes, passphrase: str, source: str = "holder key"
) -> SignResult:
    """Add one holder's signature to the pending root (as a key of the current root, of the
    pending one, or both). Publishing is a separate step (:func:`publish_pending`)."""
    store = RootStore(home_root)
    trusted = store.load()
    pending = store.read_pending()
    if pending is None:
        raise InputError(f"no pending root at {store.pending_path}")
    try:
        trusted.progress(pending)  # right version, right node, well formed
        parsed = parse_root(pending)
    except RootError as exc:
        raise InputError(f"{store.pending_path}: {exc}") from None
    try:
        sealed, private = unseal(holder_key, passphrase)
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None
    mine = public_identity(tuf_key(sealed.public))
    targets: dict[str, SSlibKey] = {}
    for content in (trusted.content, parsed.content):
        for key in content.holders:
            if public_identity(key) == mine and isinstance(key, SSlibKey):
                targets[key.keyid] = key
    if not targets:
        raise InputError(
            f"{source}: not a root key of v{trusted.version} or of pending "
            f"v{parsed.content.version}"
        )
    metadata = parsed.metadata
    for key in targets.values():
        metadata.sign(CryptoSigner(private, key), append=True)
    data = _serialize(metadata)
    try:
        progress = trusted.progress(data)
    except RootError as exc:  # cannot happen unless serialisation lost something
        raise InputError(f"signed pending root refused: {exc}") from None
    store.write_pending(data)
    return SignResult(
        holder=sealed.label, keyids=tuple(targets), progress=progress, content=parsed.content
    )


def publish_pending(home_root: Path, *, now: dt.datetime) -> tuple[Path, VerifiedRoot]:
    """Make the pending root current if :meth:`TrustedRoot.update` accepts it."""
    store = RootStore(home_root)
    trusted = store.load()
    pending = store.read_pending()
    if pending is None:
        raise InputError(f"no pending root at {store.pending_path}")
    try:
        root = trusted.update(pending, now=now)
    except RootError as exc:
        raise InputError(f"pending root refused, nothing published: {exc}") from None
    path = store.write_version(root.version, pending)
    store.remove_pending()
    return path, root


@dataclass(frozen=True)
class KeyRow:
    role: str
    keyid: str
    name: str
    window: str
    state: KeyState


def key_rows(home_root: Path, *, now: dt.datetime) -> list[KeyRow]:
    """Every key of the node: the current root's (root holders, online keys, pseudonym
    generations), keys earlier versions listed and the current one dropped (revoked), and
    keys only the pending root lists (pending)."""
    now = utc(now)
    store = RootStore(home_root)
    trusted = store.load()
    current = trusted.content
    root_state: KeyState = "expired" if trusted.expired(now) else "active"
    rows: list[KeyRow] = []
    for key in current.holders:
        rows.append(
            KeyRow(
                role=ROOT_ROLE,
                keyid=key.keyid,
                name=current.holder_name(key) or "",
                window=f"root v{current.version} until {format_time(current.expires)}",
                state=root_state,
            )
        )
    for entry in current.online:
        rows.append(
            KeyRow(
                role=entry.role,
                keyid=entry.keyid,
                name="",
                window=entry.window.describe(),
                state=entry.window.state(now),
            )
        )
    for generation in current.pseudonym:
        rows.append(
            KeyRow(
                role="pseudonym",
                keyid=f"v{generation.version}",
                name="",
                window=generation.window.describe(),
                state=generation.window.state(now),
            )
        )
    listed = {(r.role, r.keyid) for r in rows}
    for older in reversed(store.history()):  # newest first: name the last version listing it
        if older.content.version >= current.version:
            continue
        before = [
            (ROOT_ROLE, k.keyid, older.content.holder_name(k) or "") for k in older.content.holders
        ]
        before += [(o.role, o.keyid, "") for o in older.content.online]
        for role, keyid, name in before:
            if (role, keyid) not in listed:
                listed.add((role, keyid))
                window = f"dropped after root v{older.content.version}"
                rows.append(KeyRow(role, keyid, name, window, "revoked"))
    pending = store.read_pending()
    if pending is not None:
        try:
            proposed = parse_root(pending).content
        except RootError:
            proposed = None
        if proposed is not None:
            for key in proposed.holders:
                if (ROOT_ROLE, key.keyid) not in listed:
                    rows.append(
                        KeyRow(
                            ROOT_ROLE,
                            key.keyid,
                            proposed.holder_name(key) or "",
                            f"in pending root v{proposed.version}",
                            "pending",
                        )
                    )
            for entry in proposed.online:
                if (entry.role, entry.keyid) not in listed:
                    rows.append(
                        KeyRow(
                            entry.role,
                            entry.keyid,
                            "",
                            f"{entry.window.describe()} (pending root v{proposed.version})",
                            "pending",
                        )
                    )
    return rows


# -- rotation and revocation -----------------------------------------------------------------

NOT_BUILT: dict[str, str] = {
    AUDIT: "rotating audit keys is not built yet: nothing signs audit checkpoints yet",
    REPORT: "rotating report keys is not built yet: nothing signs credit reports yet",
    WITNESS: "rotating witness keys is not built yet: nothing cosigns peers' checkpoints yet",
    ROOT_ROLE: (
        "rotating root holders is not built as a command yet: write the pending root with "
        "RootContent and sign it with `keys sign-root`"
    ),
}


@dataclass(frozen=True)
class HolderKey:
    """One holder's sealed root key and passphrase, to sign a proposal at once."""

    data: bytes
    passphrase: str
    source: str = "holder key"


@dataclass(frozen=True)
class Proposal:
    """A pending root N+1 made by ``keys rotate`` or ``keys revoke``, and how far it got."""

    content: RootContent
    signatures: tuple[SignResult, ...] = ()
    published: VerifiedRoot | None = None
    published_path: Path | None = None
    new_key: OnlineKey | None = None
    new_key_path: Path | None = None
    closed: tuple[OnlineKey, ...] = ()  # the entries whose windows this version closes
    warnings: tuple[str, ...] = ()

    @property
    def progress(self) -> RootProgress | None:
        return self.signatures[-1].progress if self.signatures else None


def _check_holder_keys(holder_keys: Sequence[HolderKey]) -> None:
    """Open each sealed key before anything is written: a wrong passphrase changes nothing."""
    for holder in holder_keys:
        try:
            unseal(holder.data, holder.passphrase)
        except ValueError as exc:
            raise InputError(f"{holder.source}: {exc}") from None


def _propose(home_root: Path, content: RootContent) -> None:
    store = RootStore(home_root)
    try:
        data = _serialize(content.to_metadata())
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    store.write_pending(data)


def _sign_and_publish(
    home_root: Path, proposal: Proposal, holder_keys: Sequence[HolderKey], *, now: dt.datetime
) -> Proposal:
    signatures = tuple(
        sign_pending(home_root, holder_key=h.data, passphrase=h.passphrase, source=h.source)
        for h in holder_keys
    )
    proposal = replace(proposal, signatures=signatures)
    if proposal.progress is not None and proposal.progress.complete:
        path, root = publish_pending(home_root, now=now)
        proposal = replace(proposal, published=root, published_path=path)
    return proposal


def _start(home_root: Path, *, now: dt.datetime, days: int) -> tuple[TrustedRoot, RootContent]:
    store = RootStore(home_root)
    trusted = store.load()
    if store.read_pending() is not None:
        raise InputError(f"{store.pending_path} exists; publish it or delete it first")
    if days < 1:
        raise InputError("--days must be at least 1")
    return trusted, trusted.content.next_version(expires=utc(now) + dt.timedelta(days=days))


def _transport_ca(home: Home, ca_dir: Path | None) -> FederationCA:
    """The CA that issued this node's certificate, with its key: *ca_dir*, else HOME/ca/.
    InputError (one line, saying how) if the node does not hold it."""
    directory = ca_dir if ca_dir is not None else home.paths.own_ca
    issuer = home.tls.ca_certificate
    how = (
        f"{home.paths.tls_cert} is issued by the federation CA "
        f"{certificate_fingerprint(issuer)[:16]}…, which this node does not hold: the "
        "certificate must be issued by the CA holder — run `creditnode keys rotate --role "
        f"transport --home {home.paths.root} --ca CA_DIR` where the CA's key is"
    )
    if ca_dir is None and not directory.is_dir():
        raise InputError(how)
    try:
        ca = FederationCA.load(directory)
    except (OSError, ValueError) as exc:
        if ca_dir is None:
            raise InputError(how) from None
        raise InputError(f"--ca {ca_dir}: cannot load the CA ({exc})") from None
    if ca.certificate != issuer or not issued_by(home.tls.certificate, ca.certificate):
        where = f"--ca {ca_dir}" if ca_dir is not None else str(directory)
        raise InputError(f"{where}: not the CA in {home.paths.ca_cert}; {how}")
    return ca


@dataclass(frozen=True)
class _NewKey:
    entry: OnlineKey
    files: tuple[tuple[Path, bytes, bool], ...]  # (path, data, private), written in order


def _new_feed_key(home: Home, home_root: Path, now: dt.datetime) -> _NewKey:
    key = SigningKey.generate(home.identity.uri)
    entry = OnlineKey(role=FEED, key=tuf_key(key.verifying_key), window=Window(valid_from=now))
    path = feed_key_path(home_root, entry.keyid)
    if path.exists():
        raise InputError(f"{path} already exists; refusing to overwrite a feed key")
    return _NewKey(entry, ((path, key.to_pem(), True),))


def _new_transport_key(home: Home, ca_dir: Path | None, cert_days: int) -> _NewKey:
    if not 1 <= cert_days <= 825:
        raise InputError("--cert-days must be between 1 and 825")
    ca = _transport_ca(home, ca_dir)
    key = generate_tls_key()
    cert = ca.issue_node_certificate(home.identity, key.public_key(), days=cert_days)
    entry = OnlineKey(
        role=TRANSPORT,
        key=tuf_key(key.public_key()),
        window=Window(valid_from=cert.not_valid_before_utc, valid_until=cert.not_valid_after_utc),
        certificate_sha256=certificate_fingerprint(cert),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    # The key first: a serving node takes the pair only once both files match.
    return _NewKey(
        entry,
        ((home.paths.tls_key, private_key_pem(key), True), (home.paths.tls_cert, cert_pem, False)),
    )


def rotate_key(
    home_root: Path,
    *,
    role: str,
    now: dt.datetime,
    overlap: dt.timedelta,
    days: int = DEFAULT_DAYS,
    holder_keys: Sequence[HolderKey] = (),
    ca_dir: Path | None = None,
    cert_days: int = 825,
) -> Proposal:
    """Make a new key for *role* and propose root N+1 listing it, with every key of *role*
    valid now closing at *now* + *overlap* (a planned end, not a revocation).

    - feed: the new private key is written first (``HOME/keys/feed.<keyid>.key``, 0600),
      valid from *now*; the old ones stay.
    - transport: a new TLS key and certificate for the same identity, issued by the node's CA
      (*ca_dir*, else ``HOME/ca/``; refused if the node does not hold it), replace
      ``tls/node.key`` (0600) and ``tls/node.pem`` atomically; the entry carries the
      certificate's fingerprint and its validity as the window. A serving node presents it
      from its next handshake; the old certificate stays valid for open connections.

    With enough *holder_keys* the root is signed and published at once; otherwise it stays
    pending for ``keys sign-root`` and ``keys publish-root``."""
    if role in NOT_BUILT:
        raise InputError(NOT_BUILT[role])
    if role not in (FEED, TRANSPORT):
        raise InputError(f"unknown role {role!r}; roles are {', '.join(ONLINE_ROLES)}")
    if overlap < dt.timedelta(0):
        raise InputError("--overlap-hours must not be negative")
    now = utc(now)
    home = load_home(home_root)
    trusted, content = _start(home_root, now=now, days=days)
    _check_holder_keys(holder_keys)
    new = (
        _new_feed_key(home, home_root, now)
        if role == FEED
        else _new_transport_key(home, ca_dir, cert_days)
    )
    entry = new.entry
    closed = trusted.valid_keys(role, now)
    try:
        content = content.with_online_key(entry)
        for old in closed:
            content = content.with_window_closed(role, old.keyid, now + overlap, revoked=False)
        content.to_metadata()
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    for path, data, private in new.files:
        (write_private_file if private else write_public_file)(path, data)
    _propose(home_root, content)
    closed_now = tuple(o for o in content.online_keys(role) if o.keyid in {c.keyid for c in closed})
    proposal = Proposal(
        content=content, new_key=entry, new_key_path=new.files[-1][0], closed=closed_now
    )
    return _sign_and_publish(home_root, proposal, holder_keys, now=now)


def find_key(content: RootContent, role: str, keyid: str) -> OnlineKey:
    """The entry of *role* whose key id is *keyid* or starts with it (as ``keys list``
    shows them); InputError if none or several."""
    if role not in ONLINE_ROLES:
        raise InputError(f"unknown role {role!r}; roles are {', '.join(ONLINE_ROLES)}")
    wanted = keyid.strip().lower()
    if not wanted:
        raise InputError("--key-id is empty")
    found = [o for o in content.online_keys(role) if o.keyid.startswith(wanted)]
    if not found:
        raise InputError(f"root v{content.version} lists no {role} key {wanted}")
    if len(found) > 1:
        raise InputError(f"--key-id {wanted} names {len(found)} {role} keys; give more of it")
    return found[0]


def revoke_key(
    home_root: Path,
    *,
    role: str,
    keyid: str,
    reason: str,
    now: dt.datetime,
    at: dt.datetime | None = None,
    days: int = DEFAULT_DAYS,
    holder_keys: Sequence[HolderKey] = (),
) -> Proposal:
    """Propose root N+1 revoking *keyid* in *role* at *at* (default *now*): its window closes
    there, as a revocation. Signed and published at once with enough *holder_keys*. The
    reason goes to ``HOME/keys/revocations.jsonl`` (the root has no field for it)."""
    reason = " ".join(reason.split())
    if not reason:
        raise InputError("--reason is empty: say why the key is revoked")
    now = utc(now)
    at = now if at is None else utc(at)
    trusted, content = _start(home_root, now=now, days=days)
    entry = find_key(trusted.content, role, keyid)
    if entry.window.revoked_at is not None and entry.window.revoked_at <= at:
        raise InputError(f"{role} key {short_id(entry.keyid)} is already revoked")
    _check_holder_keys(holder_keys)
    try:
        content = content.with_window_closed(role, entry.keyid, at, revoked=True)
        content.to_metadata()
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    warnings = []
    if role == FEED:
        remaining = [o for o in content.online_keys(FEED) if o.window.contains(max(now, at))]
        if not remaining:
            warnings.append(
                "no feed key stays valid: this node signs no checkpoint until a new feed key "
                "is listed (`creditnode keys rotate --role feed`)"
            )
    else:
        warnings.append(
            f"peers do not check {role} keys against the root yet: the revocation is "
            f"recorded in root v{content.version} only"
        )
    _propose(home_root, content)
    _record_revocation(home_root, role, entry.keyid, at, reason, content.version, now)
    closed = tuple(o for o in content.online_keys(role) if o.keyid == entry.keyid)
    proposal = Proposal(content=content, closed=closed, warnings=tuple(warnings))
    return _sign_and_publish(home_root, proposal, holder_keys, now=now)


def revocations_path(home_root: Path) -> Path:
    return home_root / "keys" / "revocations.jsonl"


def _record_revocation(
    home_root: Path,
    role: str,
    keyid: str,
    at: dt.datetime,
    reason: str,
    version: int,
    now: dt.datetime,
) -> None:
    path = revocations_path(home_root)
    before = path.read_bytes() if path.exists() else b""
    line = json.dumps(
        {
            "role": role,
            "keyid": keyid,
            "revoked_at": format_time(at),
            "reason": reason,
            "root_version": version,
            "proposed_at": format_time(now),
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    write_public_file(path, before + line.encode("utf-8") + b"\n")
