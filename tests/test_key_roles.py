"""Issue 12, every key role: the audit, report and witness keys beside the feed key (made by
`init`, listed by `root-init`, rotated by one code path, pruned), pseudonym key generations in
the root, root holder rotation (both thresholds), and a transport rotation that keeps the old
TLS pair."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.serialization.json import JSONSerializer

from keys import SigningKey, read_private_file
from node.cli import main
from node.errors import ConfigError, InputError
from node.home import EXTRA_SIGNING_ROLES, init_home, load_home
from node.identity.pseudonym_key import PseudonymKey
from node.keys.ceremony import (
    HolderKey,
    kept_transport_paths,
    key_rows,
    publish_pending,
    root_init,
    rotate_holders,
    rotate_key,
    rotate_pseudonym,
    sign_pending,
)
from node.keys.prune import retired_keys
from node.keys.roles import (
    AUDIT,
    FEED,
    PSEUDONYM,
    REPORT,
    ROOT_ROLE,
    TRANSPORT,
    WITNESS,
    tuf_key,
)
from node.keys.signers import (
    SIGNING_ROLES,
    FeedSigners,
    RoleSigners,
    role_key_file,
    role_key_files,
)
from node.keys.store import RootStore
from node.keys.trusted import TrustedRoot, parse_root

PASSPHRASE = "correct horse battery staple"
SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def make_home(tmp_path: Path, name: str = "jinan") -> Path:
    root = tmp_path / name
    init_home(root, name=name, region="370100", federation="yellow-river")
    return root


def make_root(home: Path, holders: Sequence[str] = ("alice",), threshold: int = 1) -> None:
    root_init(
        home,
        holders=list(holders),
        threshold=threshold,
        passphrases=dict.fromkeys(holders, PASSPHRASE),
        out_dir=home / "keys" / "root-holders",
        now=now(),
    )


def holder(home: Path, name: str) -> HolderKey:
    path = home / "keys" / "root-holders" / f"{name}.root-key.json"
    return HolderKey(path.read_bytes(), PASSPHRASE, path.name)


def raw(keys: Sequence[SigningKey]) -> list[bytes]:
    return [k.verifying_key.raw for k in keys]


def role_key(home: Path, role: str) -> SigningKey:
    return SigningKey.from_pem("x", read_private_file(role_key_file(home, role)))


# -- init and root-init ---------------------------------------------------------------------


def test_init_makes_one_key_per_signing_role_and_root_init_lists_them(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    assert set(EXTRA_SIGNING_ROLES) == set(SIGNING_ROLES) - {FEED}
    publics = set()
    for role in SIGNING_ROLES:
        path = role_key_file(home, role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        publics.add(role_key(home, role).verifying_key.raw)
        # Before root-init each role signs with its own file.
        signers = RoleSigners.of_home(load_home(home), role)
        assert raw(signers.signing_keys(now())) == [role_key(home, role).verifying_key.raw]
    assert len(publics) == len(SIGNING_ROLES)  # four different keys

    make_root(home)
    trusted = RootStore(home).load()
    for role in SIGNING_ROLES:
        key = role_key(home, role).verifying_key
        assert trusted.key_valid(role, key, now())
        for other in SIGNING_ROLES:
            if other != role:
                assert not trusted.key_valid(other, key, now())
        assert raw(RoleSigners.of_home(load_home(home), role).signing_keys(now())) == [key.raw]
    assert trusted.pseudonym_valid(load_home(home).pseudonym_key.version, now())


def test_an_older_home_signs_with_the_feed_key_until_root_init_makes_its_role_keys(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    for role in EXTRA_SIGNING_ROLES:
        role_key_file(home, role).unlink()
    loaded = load_home(home)
    feed = loaded.signing_key.verifying_key.raw
    for role in EXTRA_SIGNING_ROLES:
        assert raw(RoleSigners.of_home(loaded, role).signing_keys(now())) == [feed]

    make_root(home)  # creates the missing files first, then lists them
    trusted = RootStore(home).load()
    loaded = load_home(home)
    for role in EXTRA_SIGNING_ROLES:
        key = role_key(home, role).verifying_key
        assert key.raw != feed
        assert trusted.key_valid(role, key, now())
        assert raw(RoleSigners.of_home(loaded, role).signing_keys(now())) == [key.raw]


def test_an_unreadable_role_key_is_an_error_not_the_feed_key(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    role_key_file(home, AUDIT).chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        RoleSigners.of_home(load_home(home), AUDIT)


def test_feed_signers_stay_the_feed_role(tmp_path: Path) -> None:
    loaded = load_home(make_home(tmp_path))
    signers = FeedSigners.of_home(loaded)
    assert isinstance(signers, RoleSigners) and signers.role == FEED
    assert raw(signers.signing_keys(now())) == [loaded.signing_key.verifying_key.raw]
    with pytest.raises(ValueError, match="feed role only"):
        FeedSigners.of_home(loaded, AUDIT)
    with pytest.raises(ValueError, match="not a signing role"):
        RoleSigners.of_home(loaded, TRANSPORT)


def test_a_root_that_never_listed_a_role_leaves_its_file_key_signing(tmp_path: Path) -> None:
    """Roots made before audit keys existed: the role is not governed by the root yet."""
    home = make_home(tmp_path)
    make_root(home)
    store = RootStore(home)
    # History as an older node has it: a v1 without an audit key.
    v1 = store.load().content
    shutil.rmtree(store.directory)
    private = Ed25519PrivateKey.generate()
    key = tuf_key(private.public_key(), holder="alice")
    older = replace(v1.without_key(AUDIT, v1.online_keys(AUDIT)[0].keyid), holders=(key,))
    md = older.to_metadata()
    md.sign(CryptoSigner(private, key))
    store.write_version(1, JSONSerializer(compact=False).serialize(md))
    loaded = load_home(home)
    audit = role_key(home, AUDIT).verifying_key.raw
    assert raw(RoleSigners.of_home(loaded, AUDIT).signing_keys(now())) == [audit]


# -- rotation of the four Ed25519 roles: one code path --------------------------------------


@pytest.mark.parametrize("role", SIGNING_ROLES)
def test_rotate_a_signing_role(tmp_path: Path, role: str) -> None:
    home = make_home(tmp_path)
    make_root(home)
    loaded = load_home(home)
    before = {r: raw(RoleSigners.of_home(loaded, r).signing_keys(now())) for r in SIGNING_ROLES}
    start = now()

    proposal = rotate_key(
        home, role=role, now=start, overlap=HOUR, holder_keys=[holder(home, "alice")]
    )
    assert proposal.published is not None and proposal.published.version == 2
    path = proposal.new_key_path
    assert path is not None and path.name.startswith(f"{role}.") and path.name != f"{role}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(role_key_files(home, role)) == {role_key_file(home, role), path}
    new = SigningKey.from_pem("x", read_private_file(path)).verifying_key.raw

    signers = RoleSigners.of_home(load_home(home), role)
    # During the overlap both sign (the root's order: old first), then only the new one.
    assert raw(signers.signing_keys(start)) == [*before[role], new]
    assert raw(signers.signing_keys(start + HOUR - SECOND)) == [*before[role], new]
    assert raw(signers.signing_keys(start + HOUR)) == [new]
    # The other roles are untouched.
    for other in SIGNING_ROLES:
        if other != role:
            assert (
                raw(RoleSigners.of_home(load_home(home), other).signing_keys(start))
                == (before[other])
            )

    # Pruning: nothing within the overlap; the original file is never pruned.
    assert retired_keys(home, now=start + HOUR, overlap=HOUR) == []
    # A second rotation retires the first rotated key once its window closed.
    second = rotate_key(
        home,
        role=role,
        now=start + SECOND,
        overlap=dt.timedelta(0),
        holder_keys=[holder(home, "alice")],
    )
    assert second.published is not None
    retired = retired_keys(home, now=start + 2 * SECOND, overlap=dt.timedelta(0))
    assert [(k.role, k.path) for k in retired] == [(role, path)]


def test_rotate_cli_for_audit_report_and_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path)
    make_root(home)
    for role in (AUDIT, REPORT, WITNESS):
        code, out, err = run(capsys, "keys", "rotate", "--home", str(home), "--role", role)
        assert code == 0, err
        assert f"new {role} key" in out and "is pending, not in force" in out
        # Pending, not published: signing is unchanged.
        assert raw(RoleSigners.of_home(load_home(home), role).signing_keys(now())) == [
            role_key(home, role).verifying_key.raw
        ]
        RootStore(home).remove_pending()
    code, _, err = run(capsys, "keys", "rotate", "--home", str(home), "--role", "oracle")
    assert code == 2 and "unknown role" in err
    code, _, err = run(
        capsys, "keys", "rotate", "--home", str(home), "--role", "feed", "--threshold", "2"
    )
    assert code == 2 and "are for --role root" in err


@pytest.mark.parametrize(
    ("role", "says"),
    [
        (FEED, ["no feed key stays valid: this node signs no checkpoint"]),
        (AUDIT, ["no audit key stays valid"]),
        (REPORT, ["no report key stays valid", "peers do not check report keys"]),
        (WITNESS, ["no witness key stays valid", "signs no cosignature"]),
        (TRANSPORT, []),
    ],
)
def test_revoke_warns_what_is_still_true(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], role: str, says: list[str]
) -> None:
    home = make_home(tmp_path)
    make_root(home)
    keyid = RootStore(home).load().content.online_keys(role)[0].keyid
    code, out, err = run(
        capsys, "keys", "revoke", "--home", str(home), "--role", role, "--key-id", keyid[:12],
        "--reason", "copied off",
    )  # fmt: skip
    assert code == 0, err
    for fragment in says:
        assert fragment in out, out
    if role != REPORT:  # checked by peers against the root they hold
        assert "peers do not check" not in out
    code, _, err = run(
        capsys, "keys", "revoke", "--home", str(home), "--role", role, "--key-id", keyid[:12],
        "--reason", "x" * 501,
    )  # fmt: skip
    assert code == 2 and "longer than 500" in err


# -- pseudonym key generations ---------------------------------------------------------------


def test_rotating_the_pseudonym_key_records_the_generation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path)
    # Without a root: the key rotates as it always did, and the command says nothing is recorded.
    code, out, err = run(capsys, "keys", "rotate", "--home", str(home), "--role", "pseudonym")
    assert code == 0, err
    assert "pseudonym key v1 → v2" in out and "re-derived" in out and "no root yet" in out
    make_root(home)  # lists v2, the generation in force
    assert RootStore(home).load().pseudonym_valid(2, now())

    passphrase = tmp_path / "alice.pass"
    passphrase.write_text(PASSPHRASE + "\n", encoding="utf-8")
    holder_file = home / "keys" / "root-holders" / "alice.root-key.json"
    start = now()
    code, out, err = run(
        capsys, "keys", "rotate", "--home", str(home), "--role", "pseudonym",
        "--overlap-hours", "2", "--holder-key", str(holder_file),
        "--passphrase-file", str(passphrase),
    )  # fmt: skip
    assert code == 0, err
    assert "pseudonym key v2 → v3" in out and "root v2 is current" in out
    assert PseudonymKey.load(home / "keys" / "pseudonym.key").version == 3
    trusted = RootStore(home).load()
    assert trusted.version == 2
    # v3 from the command's "now" (start, or a second later), v2 until two hours after it.
    assert trusted.pseudonym_valid(3, start + SECOND)
    assert not trusted.pseudonym_valid(3, start - SECOND)
    assert trusted.pseudonym_valid(2, start + 2 * HOUR - SECOND)
    assert not trusted.pseudonym_valid(2, start + 2 * HOUR + 2 * SECOND)

    # The old command is an alias: without holder keys the root stays pending, and says so.
    code, out, err = run(capsys, "identity", "rotate-pseudonym-key", "--home", str(home))
    assert code == 0, err
    assert "pseudonym key v3 → v4" in out and "root v3 is pending" in out
    rows = {(r.role, r.keyid): r.state for r in key_rows(home, now=now())}
    assert rows[(PSEUDONYM, "v3")] == "active" and rows[(PSEUDONYM, "v4")] == "pending"

    # With a pending root, nothing changes: the key file stays at v4.
    code, _, err = run(capsys, "keys", "rotate", "--home", str(home), "--role", "pseudonym")
    assert code == 2 and "publish it or delete it first" in err
    assert PseudonymKey.load(home / "keys" / "pseudonym.key").version == 4


def test_keys_list_shows_a_generation_the_root_does_not_list(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    make_root(home)
    PseudonymKey.generate(7).save(home / "keys" / "pseudonym.key")  # rotated behind its back
    rows = {(r.role, r.keyid): r for r in key_rows(home, now=now())}
    assert rows[(PSEUDONYM, "v1")].state == "active"
    assert rows[(PSEUDONYM, "v7")].state == "pending"
    assert "does not list it" in rows[(PSEUDONYM, "v7")].window
    # The next rotation follows the newest version seen, file or root.
    rotation = rotate_pseudonym(home, now=now(), overlap=HOUR, holder_keys=[holder(home, "alice")])
    assert rotation.key.version == 8 and rotation.proposal is not None
    assert rotation.proposal.published is not None


# -- root holder rotation --------------------------------------------------------------------

OLD = ("alice", "bob", "carol")
NEW = ("carol", "dave", "erin")  # carol holds both


@pytest.fixture(scope="module")
def rotated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root v1 held by alice, bob, carol (2 of 3), and pending v2 held by carol, dave, erin
    (2 of 3): made once, copied per case (sealing is slow on purpose)."""
    home = make_home(tmp_path_factory.mktemp("holders"))
    make_root(home, OLD, threshold=2)
    proposal = rotate_holders(
        home,
        holders=NEW,
        threshold=2,
        passphrases={"dave": PASSPHRASE, "erin": PASSPHRASE},
        out_dir=home / "keys" / "root-holders",
        now=now(),
    )
    assert proposal.published is None
    assert [p.name for p in proposal.holder_files] == ["dave.root-key.json", "erin.root-key.json"]
    return home


@dataclass(frozen=True)
class HolderCase:
    signers: tuple[str, ...]
    refused: str | None  # None: published


HOLDER_CASES = {
    "old holders only": HolderCase(("alice", "bob"), "0 of the 2 signatures required from root v2"),
    "new holders only": HolderCase(("dave", "erin"), "0 of the 2 signatures required from root v1"),
    "a threshold of both": HolderCase(("alice", "bob", "dave", "erin"), None),
    "a holder of both counts once in each": HolderCase(("alice", "carol", "dave"), None),
    "a holder signing twice counts once": HolderCase(
        ("alice", "alice", "dave", "erin"), "1 of the 2 signatures required from root v1"
    ),
    "the shared holder twice": HolderCase(
        ("carol", "carol"), "1 of the 2 signatures required from root v1"
    ),
}


@pytest.mark.parametrize("name", list(HOLDER_CASES))
def test_root_holder_rotation_needs_both_thresholds(
    rotated_home: Path, tmp_path: Path, name: str
) -> None:
    case = HOLDER_CASES[name]
    home = tmp_path / "jinan"
    shutil.copytree(rotated_home, home)
    for signer in case.signers:
        sign_pending(home, holder_key=holder(home, signer).data, passphrase=PASSPHRASE)
    store = RootStore(home)
    if case.refused is None:
        _, root = publish_pending(home, now=now())
        assert root.version == 2
        assert [root.content.holder_name(k) for k in root.content.holders] == list(NEW)
        # A peer holding v1 accepts v2; the old holders alone can no longer move the root.
        trusted = TrustedRoot(store.read(1))
        trusted.update(store.read(2), now=now())
        assert trusted.version == 2
    else:
        with pytest.raises(InputError, match=case.refused):
            publish_pending(home, now=now())
        assert store.versions() == [1]


def test_new_holder_files_are_sealed_and_kept_holders_keep_their_keys(rotated_home: Path) -> None:
    store = RootStore(rotated_home)
    v1 = store.load().content
    pending = store.read_pending()
    assert pending is not None
    v2 = parse_root(pending).content
    carol = [k.keyid for k in v1.holders if v1.holder_name(k) == "carol"]
    assert carol == [k.keyid for k in v2.holders if v2.holder_name(k) == "carol"]
    assert v2.online == v1.online and v2.pseudonym == v1.pseudonym
    for new in ("dave", "erin"):
        path = rotated_home / "keys" / "root-holders" / f"{new}.root-key.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" not in path.read_bytes()


def test_rotate_root_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = make_home(tmp_path)
    make_root(home, ("alice", "bob"), threshold=2)
    pw = tmp_path / "pw"
    pw.write_text(PASSPHRASE + "\n", encoding="utf-8")
    holders_dir = home / "keys" / "root-holders"
    base = ["keys", "rotate", "--home", str(home), "--role", "root"]

    code, _, err = run(capsys, *base)
    assert code == 2 and "needs --holders" in err
    code, _, err = run(capsys, *base, "--holders", "alice,bob", "--threshold", "2")
    assert code == 2 and "nothing to rotate" in err
    code, _, err = run(capsys, *base, "--holders", "alice,dave", "--threshold", "3")
    assert code == 2 and "--threshold must be between 1 and the 2 holders" in err
    assert (
        RootStore(home).read_pending() is None and not (holders_dir / "dave.root-key.json").exists()
    )

    # bob hands over to dave; alice signs at once.
    code, out, err = run(
        capsys, *base, "--holders", "alice,dave", "--threshold", "2",
        f"--new-passphrase-file=dave={pw}",
        "--holder-key", str(holders_dir / "alice.root-key.json"), "--passphrase-file", str(pw),
    )  # fmt: skip
    assert code == 0, err
    assert "kept alice, new dave, dropped bob" in out
    assert "1 of the 2 signatures required from root v1's keys (not yet signed by bob)" in out
    assert "1 of the 2 signatures required from root v2's keys (not yet signed by dave)" in out
    assert "root v2 is pending" in out

    def sign(name: str) -> tuple[int, str, str]:
        return run(
            capsys, "keys", "sign-root", "--home", str(home),
            "--holder-key", str(holders_dir / f"{name}.root-key.json"),
            "--passphrase-file", str(pw),
        )  # fmt: skip

    code, out, err = sign("dave")
    assert code == 0, err
    assert "changes the root holders" in out
    assert "(not yet signed by bob)" in out and "2 of the 2 signatures required from root v2" in out
    assert "needs more" in out
    code, _, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 2 and "1 of the 2 signatures required from root v1" in err
    code, out, err = sign("bob")
    assert code == 0 and "ready" in out, err
    code, out, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 0 and "root v2 is current" in out, err
    rows = {r.name: r.state for r in key_rows(home, now=now()) if r.role == ROOT_ROLE}
    assert rows == {"alice": "active", "dave": "active", "bob": "revoked"}


# -- transport: the old pair is kept ---------------------------------------------------------


def test_transport_rotation_keeps_the_old_pair_until_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path)
    make_root(home)
    loaded = load_home(home)
    old_key = read_private_file(loaded.paths.tls_key)
    old_cert = loaded.paths.tls_cert.read_bytes()
    old_id = tuf_key(loaded.tls.certificate.public_key()).keyid  # type: ignore[arg-type]

    start = now()
    proposal = rotate_key(
        home, role=TRANSPORT, now=start, overlap=HOUR, holder_keys=[holder(home, "alice")]
    )
    assert proposal.published is not None
    kept_key, kept_cert = kept_transport_paths(home, old_id)
    assert proposal.kept == (kept_key, kept_cert)
    assert kept_key.name == f"node.{old_id[:16]}.key"
    assert stat.S_IMODE(kept_key.stat().st_mode) == 0o600
    assert read_private_file(kept_key) == old_key and kept_cert.read_bytes() == old_cert
    assert read_private_file(loaded.paths.tls_key) != old_key
    assert loaded.paths.tls_cert.read_bytes() != old_cert

    # Within the overlap nothing is pruned; after it, the kept pair (both files) is.
    assert retired_keys(home, now=start + HOUR - SECOND, overlap=dt.timedelta(0)) == []
    assert retired_keys(home, now=start + HOUR, overlap=HOUR) == []
    [retired] = retired_keys(home, now=start + HOUR, overlap=dt.timedelta(0))
    assert retired.role == TRANSPORT and retired.files == (kept_key, kept_cert)
    assert retired.keyid == old_id

    code, out, _ = run(capsys, "keys", "prune", "--home", str(home))
    assert code == 0 and "no retired private keys" in out
    assert kept_key.exists()


def test_prune_cli_deletes_retired_keys_of_every_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path)
    hour_ago = time.time() - 3600  # root v1 lists each key from its file time
    for role in SIGNING_ROLES:
        os.utime(role_key_file(home, role), (hour_ago, hour_ago))
    make_root(home)
    paths: list[Path] = []
    for role in (*SIGNING_ROLES, TRANSPORT):
        # Root times are whole seconds: rotate a minute apart, in the past; the second
        # rotation retires the first rotated key (and, for transport, both kept pairs).
        for minutes in (2, 1):
            proposal = rotate_key(
                home,
                role=role,
                now=now() - dt.timedelta(minutes=minutes),
                overlap=dt.timedelta(0),
                holder_keys=[holder(home, "alice")],
            )
            assert proposal.published is not None
            if role == TRANSPORT:
                paths.extend(proposal.kept)
            elif minutes == 2:
                assert proposal.new_key_path is not None
                paths.append(proposal.new_key_path)
    assert len(paths) == len(SIGNING_ROLES) + 4
    argv = ["keys", "prune", "--home", str(home), "--overlap-hours", "0"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "nothing deleted" in err
    for path in paths:
        assert f"would delete {path}" in out or f"and {path}" in out
    code, out, err = run(capsys, *argv, "--yes")
    assert code == 0, err
    assert not any(p.exists() for p in paths)
    for role in SIGNING_ROLES:
        assert role_key_file(home, role).exists()
        assert len(role_key_files(home, role)) == 2  # the original and the one signing now
    assert load_home(home).paths.tls_key.exists()
