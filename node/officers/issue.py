"""Issuing and revoking officer credentials (the I/O edge behind ``creditnode officer``)."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from keys import (
    FederationCA,
    OfficerCredential,
    OfficerIdentity,
    certificate_fingerprint,
    new_officer_credential,
    new_officer_id,
)
from node.audit.entry import AuditEntry, now_us, uuid7
from node.audit.local import opened_audit
from node.errors import InputError
from node.home import Home
from node.identity.validate import PERSONAL_KINDS, check_uscc, classify
from node.policy.agreement import PURPOSES
from node.storage import Store
from node.storage.officers import ROLES, OfficerRecord, OfficerRepository

MAX_NAME = 100


def check_officer_name(name: str) -> str:
    """The name as stored: NFKC, trimmed, 1-100 printable characters, not a person's ID."""
    norm = unicodedata.normalize("NFKC", name).strip()
    if not norm or len(norm) > MAX_NAME or not norm.isprintable():
        raise InputError(f"--name: 1 to {MAX_NAME} printable characters")
    if any(classify(tok).kind in PERSONAL_KINDS for tok in norm.split()):
        raise InputError("--name: reads as holding a person's ID; give the officer's name")
    return norm


def node_ca(home: Home, ca_dir: Path | None) -> FederationCA:
    """The CA that certified this node (HOME/ca unless given); InputError if it is not."""
    directory = ca_dir or home.paths.own_ca
    try:
        ca = FederationCA.load(directory)
    except (OSError, ValueError):
        raise InputError(
            f"no CA in {directory}: give --ca with the CA directory that certified this node"
        ) from None
    if ca.certificate != home.tls.ca_certificate:
        raise InputError(f"the CA in {directory} did not certify this node")
    return ca


async def record_officer(home: Home, store: Store, kind: str, method: str, r: OfficerRecord) -> int:
    """A ``local`` audit entry naming the officer by id (never by name)."""
    entry = AuditEntry(
        exchange=uuid7(), at_us=now_us(), direction="local", kind=kind, outcome="ok",
        method=method, officer=r.id, department=r.department, reason=f"role {r.role}",
    )  # fmt: skip
    async with opened_audit(home, store) as log:
        return await log.record(entry)


async def issue_officer(
    home: Home,
    store: Store,
    *,
    name: str,
    department: str,
    role: str = "officer",
    purposes: Sequence[str] = (),
    ca_dir: Path | None = None,
    days: int = 365,
) -> tuple[OfficerCredential, OfficerRecord]:
    """A new officer credential, registered and audited; InputError naming the bad option."""
    clean = check_officer_name(name)
    if role not in ROLES:
        raise InputError(f"--role: one of {', '.join(ROLES)}")
    check = check_uscc(department, strict=True)
    if check.status == "invalid" or check.kind != "uscc":
        raise InputError(f"--dept-uscc: {check.reason or 'not a USCC'}")
    chosen = tuple(purposes) or tuple(PURPOSES)
    if any(p not in PURPOSES for p in chosen):
        raise InputError(f"--purpose: not in the alliance catalogue (known: {', '.join(PURPOSES)})")
    authority = node_ca(home, ca_dir)
    ident = OfficerIdentity(home.identity, new_officer_id())
    credential = new_officer_credential(authority, ident, days=days)
    cert = credential.certificate
    record = OfficerRecord(
        id=ident.officer, name=clean, department=check.normalised, role=role, purposes=chosen,
        fingerprint=certificate_fingerprint(cert), issued_at=dt.datetime.now(dt.UTC),
        expires_at=cert.not_valid_after_utc, revoked_at=None,
    )  # fmt: skip
    await OfficerRepository(store).add(record)
    await record_officer(home, store, "enrollment", "officer add", record)
    return credential, record


async def revoke_officer(home: Home, store: Store, prefix: str) -> OfficerRecord:
    """Revoke the one officer whose id starts with *prefix* (8+ hex); InputError otherwise."""
    wanted = prefix.strip().lower()
    if len(wanted) < 8 or any(c not in "0123456789abcdef" for c in wanted):
        raise InputError("OFFICER_ID: the id as `officer list` shows it (8+ hex digits)")
    repo = OfficerRepository(store)
    matches = [r for r in await repo.list() if r.id.startswith(wanted)]
    if len(matches) != 1:
        which = "no officer" if not matches else "several officers"
        raise InputError(f"OFFICER_ID: {which} match; see `creditnode officer list`")
    record = matches[0]
    if not await repo.revoke(record.id, dt.datetime.now(dt.UTC)):
        raise InputError(f"officer {record.id} is already revoked")
    await record_officer(home, store, "removal", "officer revoke", record)
    return record
