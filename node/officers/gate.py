"""The officer listener's gate: an officer certificate of this node, registered here, with the
fingerprint recorded at issue and not revoked, or refusal.

TLS already proved the caller holds a key certified by this node's CA (the only root the
officer listener trusts). Here the certificate must carry exactly one
``creditnode-officer://FED/NODE/ID`` URI naming this node, so a peer's certificate (a
``creditnode://`` URI) is never an officer. The officers table is re-read at each admission
when its generation row moved (one primary-key read), so a revocation by ``officer revoke`` in
any process refuses the officer's next call; a database fault refuses (fail closed).
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from cryptography import x509

from keys import NodeIdentity, certificate_fingerprint, issued_by, officer_from_certificate
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild
from node.storage import Store
from node.storage.officers import OfficerRecord, OfficerRepository

log = structlog.get_logger("creditnode.officers")


@dataclass(frozen=True)
class Officer:
    """An admitted officer: the random id (what the audit records), department and role."""

    id: str
    department: str
    role: str
    purposes: tuple[str, ...]
    fingerprint: str


current_officer: contextvars.ContextVar[Officer] = contextvars.ContextVar("current_officer")


class OfficerRefused(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, officer: str = "", why: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.officer = officer  # the id the certificate claims, if it is an officer's
        self.why = why or message  # the reason without the id (the audit entry holds it)


# Records a refusal before it is sent: (officer id or "", method, refusal).
RefusalHook = Callable[[str, str, OfficerRefused], Awaitable[None]]


class OfficerDirectory:
    """The officers table as last read, re-read when its generation row moves."""

    def __init__(self, store: Store) -> None:
        self.repository = OfficerRepository(store)
        self._seen: int | None = None
        self._officers: dict[str, OfficerRecord] = {}

    async def sync(self) -> None:
        generation = await self.repository.generation()
        if generation != self._seen:
            records = await self.repository.list()
            self._officers = {r.id: r for r in records}
            self._seen = generation

    def get(self, officer_id: str) -> OfficerRecord | None:
        return self._officers.get(officer_id)


class OfficerGate:
    def __init__(
        self, self_identity: NodeIdentity, own_ca: x509.Certificate, directory: OfficerDirectory
    ) -> None:
        self._self = self_identity
        self._own_ca = own_ca
        self.directory = directory
        self.on_refuse: RefusalHook | None = None  # the audit log (set by the listener)

    async def admit(self, auth_context: Mapping[str, Iterable[bytes]]) -> Officer:
        pems = list(auth_context.get("x509_pem_cert") or [])
        if not pems:
            raise OfficerRefused(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        cert = x509.load_pem_x509_certificate(pems[0])
        fingerprint = certificate_fingerprint(cert)
        try:
            ident = officer_from_certificate(cert)
        except ValueError:
            log.warning("refused at the officer listener", reason="not an officer certificate",
                        fingerprint=fingerprint[:16])  # fmt: skip
            raise OfficerRefused(
                grpc.StatusCode.PERMISSION_DENIED, "only officer credentials are served here"
            ) from None
        if ident.node != self._self or not issued_by(cert, self._own_ca):
            raise self._refuse(ident.officer, "is not an officer credential of this node")
        try:
            await self.directory.sync()
        except Exception as exc:  # fail closed: no officer is admitted on a stale view
            log.warning("officers not re-read; refusing", error=type(exc).__name__)
            raise OfficerRefused(
                grpc.StatusCode.UNAVAILABLE, "officer registry unreadable"
            ) from None
        record = self.directory.get(ident.officer)
        if record is None or record.fingerprint != fingerprint:
            raise self._refuse(ident.officer, "is not registered at this node")
        if record.revoked_at is not None:
            raise self._refuse(ident.officer, "was revoked")
        if record.expires_at <= dt.datetime.now(dt.UTC):
            raise self._refuse(ident.officer, "has expired")
        return Officer(record.id, record.department, record.role, record.purposes, fingerprint)

    def _refuse(self, officer: str, why: str) -> OfficerRefused:
        log.warning("refused officer", officer=officer, reason=why)  # the random id, no name
        return OfficerRefused(
            grpc.StatusCode.PERMISSION_DENIED, f"officer {officer} {why}", officer, why
        )


class OfficerGateInterceptor(WrappingInterceptor):
    """Runs the officer gate before every method of the officer listener."""

    def __init__(self, gate: OfficerGate) -> None:
        self._gate = gate

    def wrap(self, handler: Handler, method: str) -> Handler:
        gate = self._gate

        def unary(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    officer = await gate.admit(context.auth_context())
                except OfficerRefused as refused:
                    if gate.on_refuse is not None:
                        try:  # recorded before the refusal is sent
                            await gate.on_refuse(refused.officer, method, refused)
                        except Exception:
                            log.exception("officer refusal not recorded")
                    await context.abort(refused.code, str(refused))
                current_officer.set(officer)
                return await behaviour(request, context)

            return run

        def streaming(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no streams on this listener")

            return run

        return rebuild(handler, unary_response=unary, stream_response=streaming)
