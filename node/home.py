"""A node's home directory: configuration, TLS material, signing key, embedded database.

Layout::

    HOME/creditnode.toml     configuration
    HOME/tls/ca.pem          the CA that issued this node's certificate
    HOME/tls/node.pem        this node's certificate (URI SAN creditnode://FED/NODE)
    HOME/tls/node.key        its private key, 0600
    HOME/keys/feed.key       Ed25519 signing key for feeds and evidence, 0600 (root v1 lists it)
    HOME/keys/feed.<id>.key  feed keys added by `keys rotate`, 0600 (node.keys.signers)
    HOME/keys/audit.key, report.key, witness.key
                             Ed25519 keys of the audit, report and witness roles, 0600 (and
                             <role>.<id>.key added by `keys rotate`)
    HOME/tls/node.<id>.key, node.<id>.pem
                             a TLS pair replaced by `keys rotate --role transport`, kept
                             until `keys prune` (0600 / 0644)
    HOME/keys/root/          root metadata versions and the pending root (node.keys.store)
    HOME/keys/pseudonym.key  this origin's OPRF pseudonym key (never shared), 0600
    HOME/ca/                 only when the node made its own CA (no --ca given)
    HOME/node.db             the SQLite database, unless database_url says otherwise
    HOME/lists.toml          the alliance's list catalogue (setting ``catalogue``)
    HOME/measures.toml       the measures catalogue's national base (node.feeds.measures)
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from keys import (
    FederationCA,
    NodeIdentity,
    SigningKey,
    generate_tls_key,
    identity_from_certificate,
    load_certificate,
    private_key_pem,
    read_private_file,
    write_private_file,
    write_public_file,
)
from node.config import CONFIG_FILE, NodeSettings, dump_settings, load_settings, parse_hostport
from node.errors import ConfigError, InputError
from node.identity.pseudonym_key import PseudonymKey, PseudonymKeyFile
from node.regions import validate_region

TLS_RELOAD_SECONDS = 1.0

# Online signing roles besides feed whose first key `init` creates (node.keys.roles names them;
# the home cannot import node.keys, which builds on it).
EXTRA_SIGNING_ROLES = ("audit", "report", "witness")

# The packaged example catalogue (the same text as deploy/lists.yellow-river.toml).
CATALOGUE_EXAMPLE = Path(__file__).parent / "feeds" / "lists.yellow-river.toml"
# The packaged national measures base (node.feeds.measures.MEASURES_EXAMPLE).
MEASURES_EXAMPLE = Path(__file__).parent / "feeds" / "measures.toml"


@dataclass(frozen=True)
class HomePaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def ca_cert(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls" / "node.pem"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "node.key"

    @property
    def feed_key(self) -> Path:
        return self.root / "keys" / "feed.key"

    def role_key(self, role: str) -> Path:
        """The first private key of an Ed25519 signing role: ``keys/<role>.key``."""
        if role != "feed" and role not in EXTRA_SIGNING_ROLES:
            raise ValueError(f"{role!r} is not a signing role")
        return self.root / "keys" / f"{role}.key"

    @property
    def pseudonym_key(self) -> Path:
        return self.root / "keys" / "pseudonym.key"

    @property
    def old_alliance_key(self) -> Path:
        """The shared HMAC key homes had before per-origin pseudonyms (migrated away)."""
        return self.root / "keys" / "alliance.key"

    @property
    def own_ca(self) -> Path:
        return self.root / "ca"

    @property
    def sqlite(self) -> Path:
        return self.root / "node.db"

    @property
    def catalogue(self) -> Path:
        return self.root / "lists.toml"


class TlsMaterial:
    """PEM bytes a node presents and trusts (its own CA; peers add theirs).

    Loaded from a home (*cert_path* and *key_path* given), the certificate and key are re-read
    when ``creditnode keys rotate/renew --role transport`` replaces the files (a stat at most
    once a second): the server's per-handshake fetcher and every channel made afterwards use
    the new pair. A pair whose key does not match its certificate (one file replaced, not yet
    the other) or that does not parse is ignored; the pair in force stays.
    """

    def __init__(
        self,
        ca_pem: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        cert_path: Path | None = None,
        key_path: Path | None = None,
    ) -> None:
        self.ca_pem = ca_pem
        self._pair = (cert_pem, key_pem)
        self._certificate = load_certificate(cert_pem)
        self._paths: tuple[Path, Path] | None = (
            (cert_path, key_path) if cert_path and key_path else None
        )
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[tuple[int, int], ...]:
        if self._paths is None:
            return ()
        stamps = []
        for path in self._paths:
            try:
                st = path.stat()
            except OSError:
                return ()
            stamps.append((st.st_mtime_ns, st.st_ino))
        return tuple(stamps)

    def reload(self) -> None:
        """Check the files now rather than within TLS_RELOAD_SECONDS (SIGHUP)."""
        self._checked = float("-inf")
        self.current()

    def current(self) -> tuple[bytes, bytes]:
        """The (certificate, key) PEM pair in force; the same object until the files change."""
        now = time.monotonic()
        if self._paths is not None and now - self._checked >= TLS_RELOAD_SECONDS:
            self._checked = now
            stamp = self._stat()
            if stamp and stamp != self._stamp:
                cert_path, key_path = self._paths
                try:
                    cert_pem, key_pem = cert_path.read_bytes(), read_private_file(key_path)
                    cert = load_certificate(cert_pem)
                    key = serialization.load_pem_private_key(key_pem, password=None)
                    same = key.public_key().public_bytes(
                        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    ) == cert.public_key().public_bytes(
                        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                except (OSError, ValueError, TypeError):
                    same = False
                if same:
                    self._pair, self._certificate, self._stamp = (cert_pem, key_pem), cert, stamp
        return self._pair

    @property
    def cert_pem(self) -> bytes:
        return self.current()[0]

    @property
    def key_pem(self) -> bytes:
        return self.current()[1]

    @property
    def certificate(self) -> x509.Certificate:
        self.current()
        return self._certificate

    @cached_property
    def ca_certificate(self) -> x509.Certificate:
        return load_certificate(self.ca_pem)


@dataclass(frozen=True)
class Home:
    """A loaded node home."""

    paths: HomePaths
    settings: NodeSettings
    tls: TlsMaterial
    signing_key: SigningKey
    pseudonym_keys: PseudonymKeyFile

    @property
    def pseudonym_key(self) -> PseudonymKey:
        """This origin's pseudonym key in force (re-read after a rotation)."""
        return self.pseudonym_keys.current()

    @property
    def identity(self) -> NodeIdentity:
        return NodeIdentity(federation=self.settings.federation, node=self.settings.name)

    @property
    def database_url(self) -> str:
        return self.settings.database_url or f"sqlite:///{self.paths.sqlite}"

    @property
    def catalogue_path(self) -> Path:
        """The list catalogue: setting ``catalogue`` (relative to the home), else lists.toml."""
        if self.settings.catalogue:
            return self.paths.root / self.settings.catalogue  # an absolute setting stays as is
        return self.paths.catalogue


def init_home(
    root: Path,
    *,
    name: str,
    region: str,
    federation: str | None = None,
    ca_dir: Path | None = None,
    listen: str = "127.0.0.1:7443",
    advertise: str = "",
    database_url: str = "",
) -> HomePaths:
    """Create a node home: keys, certificate (from *ca_dir* or a new CA of its own), config."""
    paths = HomePaths(root)
    if paths.config.exists():
        raise InputError(f"{paths.config} already exists; refusing to overwrite a node home")
    try:
        validate_region(region)
        parse_hostport(listen)
        if advertise:
            parse_hostport(advertise, allow_zero=False)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if ca_dir is not None:
        try:
            ca = FederationCA.load(ca_dir)
        except (OSError, ValueError) as exc:
            raise InputError(f"--ca {ca_dir}: cannot load federation CA ({exc})") from None
        if federation is not None and federation != ca.federation:
            raise InputError(
                f"--federation {federation} does not match the CA's federation {ca.federation}"
            )
    else:
        try:
            ca = FederationCA.create(federation or "creditnode")
        except ValueError as exc:
            raise InputError(str(exc)) from None
    try:
        identity = NodeIdentity(federation=ca.federation, node=name)
    except ValueError as exc:
        raise InputError(str(exc)) from None

    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    if ca_dir is None:
        ca.save(paths.own_ca)
    key = generate_tls_key()
    cert = ca.issue_node_certificate(identity, key.public_key())
    write_public_file(paths.ca_cert, ca.certificate_pem)
    write_public_file(paths.tls_cert, cert.public_bytes(serialization.Encoding.PEM))
    write_private_file(paths.tls_key, private_key_pem(key))
    write_private_file(paths.feed_key, SigningKey.generate(identity.uri).to_pem())
    for role in EXTRA_SIGNING_ROLES:
        write_private_file(paths.role_key(role), SigningKey.generate(identity.uri).to_pem())
    PseudonymKey.generate().save(paths.pseudonym_key)
    write_public_file(paths.catalogue, CATALOGUE_EXAMPLE.read_bytes())
    measures = root / "measures.toml"
    if not measures.exists():  # an operator's catalogue (or supplement) is never replaced
        write_public_file(measures, MEASURES_EXAMPLE.read_bytes())
    values: dict[str, str | float] = {
        "name": name,
        "federation": ca.federation,
        "region": region,
        "listen": listen,
    }
    if advertise:
        values["advertise"] = advertise
    if database_url:
        values["database_url"] = database_url
    write_public_file(paths.config, dump_settings(values).encode())
    return paths


def set_setting(root: Path, key: str, value: str | float) -> None:
    """Rewrite one top-level setting in the home's TOML file (used to record a bound port)."""
    paths = HomePaths(root)
    data = tomllib.loads(paths.config.read_text(encoding="utf-8"))
    data[key] = value
    write_public_file(paths.config, dump_settings(data).encode())


def _check_tls_key(paths: HomePaths, key_pem: bytes, cert: x509.Certificate) -> None:
    """Refuse a TLS key that does not parse or does not match the certificate, naming the
    file (gRPC would only fail to listen, and the cause would read "address not available")."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{paths.tls_key}: not a valid private key (PEM)") from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError(f"{paths.tls_key}: does not match the certificate {paths.tls_cert}")


def load_home(root: Path) -> Home:
    """Load configuration and key material, checking they belong together."""
    settings = load_settings(root)
    paths = HomePaths(root)
    try:
        tls = TlsMaterial(
            ca_pem=paths.ca_cert.read_bytes(),
            cert_pem=paths.tls_cert.read_bytes(),
            key_pem=read_private_file(paths.tls_key),
            cert_path=paths.tls_cert,
            key_path=paths.tls_key,
        )
        signing = SigningKey.from_pem(
            NodeIdentity(settings.federation, settings.name).uri,
            read_private_file(paths.feed_key),
        )
        cert = tls.certificate
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename}: missing from node home") from None
    except (PermissionError, ValueError) as exc:
        raise ConfigError(f"{root}: {exc}") from None
    _check_tls_key(paths, tls.key_pem, cert)
    try:
        ident = identity_from_certificate(cert)
    except ValueError as exc:
        raise ConfigError(f"{paths.tls_cert}: {exc}") from None
    if ident != NodeIdentity(settings.federation, settings.name):
        raise ConfigError(
            f"{paths.tls_cert} is for {ident.uri} but {paths.config} names "
            f"creditnode://{settings.federation}/{settings.name}"
        )
    try:
        if not paths.pseudonym_key.exists():
            # A home from before per-origin pseudonyms: it gets its own key now; `serve`
            # re-derives its own pseudonyms and then deletes the old shared alliance key.
            PseudonymKey.generate().save(paths.pseudonym_key)
        pseudonym_key = PseudonymKey.load(paths.pseudonym_key)
    except (PermissionError, ValueError) as exc:
        raise ConfigError(f"{paths.pseudonym_key}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{paths.pseudonym_key}: {exc.strerror or exc}") from None
    return Home(
        paths=paths,
        settings=settings,
        tls=tls,
        signing_key=signing,
        pseudonym_keys=PseudonymKeyFile(paths.pseudonym_key, pseudonym_key),
    )
