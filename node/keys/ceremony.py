"""The root ceremony on a node home (I/O): create the holders' keys and root v1, propose the
next version, add one holder's signature, publish, rotate and revoke keys of every role (the
four Ed25519 signing roles, transport, the pseudonym key generations and the root holders), and
list every key with its state.

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
    read_private_file,
    seal,
    unseal,
    validate_label,
    write_private_file,
    write_public_file,
)
from node.errors import ConfigError, InputError
from node.home import Home, HomePaths, load_home
from node.identity.pseudonym_key import PseudonymKey
from node.keys.roles import (
    AUDIT,
    FEED,
    ONLINE_ROLES,
    PSEUDONYM,
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
from node.keys.signers import (
    KEYID_CHARS,
    SIGNING_ROLES,
    ensure_role_key,
    role_key_file,
    role_key_path,
)
from node.keys.store import RootStore
from node.keys.trusted import RootError, RootProgress, TrustedRoot, VerifiedRoot, parse_root

HOLDER_KEY_SUFFIX = ".root-key.json"
DEFAULT_DAYS = 365

MAX_REASON = 500  # characters of a revocation's reason

ROTATABLE_ROLES: tuple[str, ...] = (*SIGNING_ROLES, TRANSPORT, PSEUDONYM, ROOT_ROLE)
"""What ``keys rotate --role`` takes."""

PEER_CHECKED_ROLES: frozenset[str] = frozenset({FEED, AUDIT, WITNESS, TRANSPORT})
"""Online roles whose keys peers check against this node's root today (a subscriber verifies
checkpoints under the feed keys valid in the root it holds; a witness cosigns this node's audit
checkpoints only under its audit keys; a cosignature counts only under the cosigner's witness
keys; the gate admits a peer's calls only with a certificate its held root lists as a valid
transport key). A feature that makes peers
check another role (audit checkpoints, reports, cosignatures) adds the role here, and
``keys revoke`` stops warning that its revocation is only recorded."""

_SIGNS = {FEED: "checkpoint", AUDIT: "audit checkpoint", REPORT: "report", WITNESS: "cosignature"}
_NOT_CHECKED_YET = {
    REPORT: "they will once credit reports are signed with them and peers verify them",
}


def _file_time(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)


def _role_key(home: Home, role: str) -> SigningKey:
    if role == FEED:
        return home.signing_key
    path = role_key_file(home.paths.root, role)
    try:
        return SigningKey.from_pem(home.identity.uri, read_private_file(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing from node home") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def home_online_keys(
    home: Home,
) -> tuple[tuple[OnlineKey, ...], tuple[PseudonymGeneration, ...]]:
    """The online keys a home holds today, with their windows:

    - feed, audit, report, witness: ``keys/<role>.key``'s public key, valid from when the file
      was written, open-ended (until rotated or revoked);
    - transport: the TLS certificate's public key and fingerprint, valid over the
      certificate's own validity period;
    - pseudonym: the OPRF key's version, valid from when ``keys/pseudonym.key`` was written.
    """
    signing = tuple(
        OnlineKey(
            role=role,
            key=tuf_key(_role_key(home, role).verifying_key),
            window=Window(valid_from=_file_time(role_key_file(home.paths.root, role))),
        )
        for role in SIGNING_ROLES
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
    return (*signing, transport), (pseudonym,)


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
    root v1 listing them with *threshold* and the home's online keys (every role's; a home made
    before audit, report and witness keys existed gets them first), signed by every holder."""
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
    for role in SIGNING_ROLES:
        ensure_role_key(home_root, role, home.identity.uri)
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
    try:
        metadata = content.to_metadata()
    except ValueError as exc:  # e.g. one key file copied over another: two roles, one key
        raise ConfigError(f"root v1 refused: {exc}") from None
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
                role=PSEUDONYM,
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
            for generation in proposed.pseudonym:
                label = f"v{generation.version}"
                if (PSEUDONYM, label) not in listed:
                    listed.add((PSEUDONYM, label))
                    rows.append(
                        KeyRow(
                            PSEUDONYM,
                            label,
                            "",
                            f"{generation.window.describe()} (pending root v{proposed.version})",
                            "pending",
                        )
                    )
    in_use = _pseudonym_file_version(home_root)
    if in_use is not None and (PSEUDONYM, f"v{in_use}") not in listed:
        # Rotated without a root update (before roots recorded generations): say so.
        rows.append(
            KeyRow(
                PSEUDONYM,
                f"v{in_use}",
                "",
                f"in keys/pseudonym.key; root v{current.version} does not list it",
                "pending",
            )
        )
    return rows


def _pseudonym_file_version(home_root: Path) -> int | None:
    try:
        return PseudonymKey.load(HomePaths(home_root).pseudonym_key).version
    except (OSError, ValueError):
        return None


# -- rotation and revocation -----------------------------------------------------------------


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
    kept: tuple[Path, ...] = ()  # files of the replaced key kept beside the new one
    new_generation: PseudonymGeneration | None = None
    closed_generations: tuple[PseudonymGeneration, ...] = ()
    holder_files: tuple[Path, ...] = ()  # sealed keys made for new root holders

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


def _checked(content: RootContent) -> RootContent:
    """*content* if it makes valid root metadata; InputError naming the problem otherwise."""
    try:
        content.to_metadata()
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    return content


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


def _check_overlap(overlap: dt.timedelta) -> None:
    if overlap < dt.timedelta(0):
        raise InputError("--overlap-hours must not be negative")


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


def kept_transport_paths(home_root: Path, keyid: str) -> tuple[Path, Path]:
    """Where a replaced TLS pair is kept: ``tls/node.<keyid16>.key`` (0600) and ``.pem``."""
    stem = f"node.{keyid[:KEYID_CHARS]}"
    return home_root / "tls" / f"{stem}.key", home_root / "tls" / f"{stem}.pem"


@dataclass(frozen=True)
class _NewKey:
    entry: OnlineKey
    files: tuple[tuple[Path, bytes, bool], ...]  # (path, data, private), written in order
    new_path: Path  # what to name as the new key's file
    kept: tuple[Path, ...] = ()


def _new_signing_key(home: Home, home_root: Path, role: str, now: dt.datetime) -> _NewKey:
    key = SigningKey.generate(home.identity.uri)
    entry = OnlineKey(role=role, key=tuf_key(key.verifying_key), window=Window(valid_from=now))
    path = role_key_path(home_root, role, entry.keyid)
    if path.exists():
        raise InputError(f"{path} already exists; refusing to overwrite a {role} key")
    return _NewKey(entry, ((path, key.to_pem(), True),), path)


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
    # The pair in force is kept under its key id first, so that an operator can go back (and
    # `keys prune` removes it once its window closed); then the new key, then the certificate:
    # a serving node takes the new pair only once both files match.
    old_public = home.tls.certificate.public_key()
    if not isinstance(old_public, Ed25519PublicKey | EllipticCurvePublicKey):
        raise ConfigError(f"{home.paths.tls_cert}: not an ECDSA or Ed25519 certificate key")
    try:
        old_key = read_private_file(home.paths.tls_key)
        old_cert = home.paths.tls_cert.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{home.paths.tls_key}: {exc}") from None
    kept_key, kept_cert = kept_transport_paths(home.paths.root, tuf_key(old_public).keyid)
    keep: tuple[tuple[Path, bytes, bool], ...] = ()
    if not kept_key.exists() and not kept_cert.exists():
        keep = ((kept_key, old_key, True), (kept_cert, old_cert, False))
    return _NewKey(
        entry,
        (
            *keep,
            (home.paths.tls_key, private_key_pem(key), True),
            (home.paths.tls_cert, cert_pem, False),
        ),
        home.paths.tls_cert,
        kept=(kept_key, kept_cert),
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
    """Make a new key for online *role* and propose root N+1 listing it, with every key of
    *role* valid now closing at *now* + *overlap* (a planned end, not a revocation).

    - feed, audit, report, witness (one code path): the new private key is written first
      (``HOME/keys/<role>.<keyid16>.key``, 0600), valid from *now*; the old ones stay until
      ``keys prune``.
    - transport: a new TLS key and certificate for the same identity, issued by the node's CA
      (*ca_dir*, else ``HOME/ca/``; refused if the node does not hold it), replace
      ``tls/node.key`` (0600) and ``tls/node.pem`` atomically, after the old pair is kept as
      ``tls/node.<keyid16>.key`` / ``.pem``; the entry carries the certificate's fingerprint and
      its validity as the window. A serving node presents it from its next handshake; the old
      certificate stays valid for open connections.

    Pseudonym generations and root holders rotate with :func:`rotate_pseudonym` and
    :func:`rotate_holders`. With enough *holder_keys* the root is signed and published at once;
    otherwise it stays pending for ``keys sign-root`` and ``keys publish-root``."""
    if role in (PSEUDONYM, ROOT_ROLE):
        raise InputError(f"--role {role} is rotated with its own options (see `keys rotate`)")
    if role not in (*SIGNING_ROLES, TRANSPORT):
        raise InputError(f"unknown role {role!r}; roles are {', '.join(ROTATABLE_ROLES)}")
    _check_overlap(overlap)
    now = utc(now)
    home = load_home(home_root)
    trusted, content = _start(home_root, now=now, days=days)
    _check_holder_keys(holder_keys)
    new = (
        _new_transport_key(home, ca_dir, cert_days)
        if role == TRANSPORT
        else _new_signing_key(home, home_root, role, now)
    )
    entry = new.entry
    closed = trusted.valid_keys(role, now)
    try:
        content = content.with_online_key(entry)
        for old in closed:
            content = content.with_window_closed(role, old.keyid, now + overlap, revoked=False)
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    _checked(content)
    for path, data, private in new.files:
        (write_private_file if private else write_public_file)(path, data)
    _propose(home_root, content)
    closed_now = tuple(o for o in content.online_keys(role) if o.keyid in {c.keyid for c in closed})
    kept = tuple(p for p in new.kept if p.exists())
    proposal = Proposal(
        content=content, new_key=entry, new_key_path=new.new_path, closed=closed_now, kept=kept
    )
    return _sign_and_publish(home_root, proposal, holder_keys, now=now)


@dataclass(frozen=True)
class PseudonymRotation:
    """A new pseudonym key generation, and the root that records it (None: no root yet;
    ``keys root-init`` records the generation in force)."""

    old_version: int
    key: PseudonymKey
    proposal: Proposal | None


def rotate_pseudonym(
    home_root: Path,
    *,
    now: dt.datetime,
    overlap: dt.timedelta,
    days: int = DEFAULT_DAYS,
    holder_keys: Sequence[HolderKey] = (),
) -> PseudonymRotation:
    """Start a new generation of the home's OPRF pseudonym key (``keys/pseudonym.key``,
    replaced atomically, 0600) and, with a root, propose root N+1 listing it valid from *now*
    with every generation valid now closing at *now* + *overlap*. Re-deriving the node's own
    pseudonyms with the new key is the caller's next step (it needs the feed machinery).

    Everything that can refuse (a pending root, a wrong passphrase, a root that would not be
    valid) refuses before the key file changes."""
    _check_overlap(overlap)
    now = utc(now)
    home = load_home(home_root)
    old = home.pseudonym_key
    if not RootStore(home_root).versions():
        new = PseudonymKey.generate(old.version + 1)
        new.save(home.paths.pseudonym_key)
        return PseudonymRotation(old.version, new, None)
    trusted, content = _start(home_root, now=now, days=days)
    _check_holder_keys(holder_keys)
    # After the newest generation anyone has seen: the file's, or the root's if higher (a key
    # file restored from a backup must not reuse a version the root already lists).
    version = max([old.version, *(g.version for g in trusted.content.pseudonym)]) + 1
    new = PseudonymKey.generate(version)
    generation = PseudonymGeneration(version, Window(valid_from=now))
    closing = [g for g in trusted.content.pseudonym if g.window.contains(now)]
    try:
        for g in closing:
            content = content.with_pseudonym_closed(g.version, now + overlap, revoked=False)
        content = content.with_pseudonym(generation)
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    _checked(content)
    new.save(home.paths.pseudonym_key)
    _propose(home_root, content)
    closed = tuple(g for g in content.pseudonym if g.version in {c.version for c in closing})
    proposal = Proposal(content=content, new_generation=generation, closed_generations=closed)
    return PseudonymRotation(
        old.version, new, _sign_and_publish(home_root, proposal, holder_keys, now=now)
    )


def rotate_holders(
    home_root: Path,
    *,
    holders: Sequence[str],
    threshold: int,
    passphrases: Mapping[str, str],
    out_dir: Path,
    now: dt.datetime,
    days: int = DEFAULT_DAYS,
    holder_keys: Sequence[HolderKey] = (),
) -> Proposal:
    """Propose root N+1 held by *holders* with *threshold*. A name that holds root N keeps its
    key; each new name gets a new Ed25519 key sealed under its passphrase (``out_dir /
    NAME.root-key.json``, 0600), as in root-init. Root N+1 is accepted (here and by every peer)
    only when signed by a threshold of root N's holders **and** a threshold of the new ones, so
    new holders sign it with ``keys sign-root`` from their own key files."""
    names = list(holders)
    check_holders(names, threshold=threshold, days=days)
    now = utc(now)
    trusted, content = _start(home_root, now=now, days=days)
    current = trusted.content
    held = {current.holder_name(k): k for k in current.holders if current.holder_name(k)}
    if set(names) == set(held) and threshold == current.threshold:
        raise InputError(
            f"root v{current.version} is already held by {','.join(names)} with threshold "
            f"{threshold}: nothing to rotate"
        )
    new_names = [n for n in names if n not in held]
    files = {name: out_dir / f"{name}{HOLDER_KEY_SUFFIX}" for name in new_names}
    for path in files.values():
        if path.exists():
            raise InputError(f"{path} already exists; refusing to overwrite a holder key")
    for name in new_names:
        if name not in passphrases:
            raise InputError(f"no passphrase for new holder {name}")
    _check_holder_keys(holder_keys)
    privates = {name: Ed25519PrivateKey.generate() for name in new_names}
    try:
        sealed = {name: seal(privates[name], passphrases[name], label=name) for name in new_names}
    except ValueError as exc:
        raise InputError(str(exc)) from None
    made = {name: tuf_key(privates[name].public_key(), holder=name) for name in new_names}
    keys = [held[name] if name in held else made[name] for name in names]
    try:
        content = content.with_holders(keys, threshold)
    except ValueError as exc:
        raise InputError(f"root v{content.version} refused: {exc}") from None
    _checked(content)
    for name in new_names:
        write_private_file(files[name], sealed[name])
    _propose(home_root, content)
    proposal = Proposal(content=content, holder_files=tuple(files.values()))
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
    if len(reason) > MAX_REASON:
        raise InputError(f"--reason is longer than {MAX_REASON} characters")
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
    warnings = _revocation_warnings(content, role, max(now, at))
    _propose(home_root, content)
    _record_revocation(home_root, role, entry.keyid, at, reason, content.version, now)
    closed = tuple(o for o in content.online_keys(role) if o.keyid == entry.keyid)
    proposal = Proposal(content=content, closed=closed, warnings=tuple(warnings))
    return _sign_and_publish(home_root, proposal, holder_keys, now=now)


def _revocation_warnings(content: RootContent, role: str, after: dt.datetime) -> list[str]:
    """What an operator must know about revoking a key of *role* (checked at *after*)."""
    warnings = []
    if role in _SIGNS and not any(o.window.contains(after) for o in content.online_keys(role)):
        warnings.append(
            f"no {role} key stays valid: this node signs no {_SIGNS[role]} until a new "
            f"{role} key is listed (`creditnode keys rotate --role {role}`)"
        )
    if role not in PEER_CHECKED_ROLES:
        warnings.append(
            f"peers do not check {role} keys against the root yet ({_NOT_CHECKED_YET[role]}): "
            f"the revocation is recorded in root v{content.version} only"
        )
    return warnings


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
