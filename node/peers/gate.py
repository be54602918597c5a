"""The gate every inbound call passes: mutual TLS identity → enrolled peer, or refusal.

TLS already proved the caller holds a key certified by one of our trust roots. Here we read
its ``creditnode://FED/NODE`` URI SAN and admit it only if that node is enrolled *and* its
certificate was issued by the CA enrolled for that node, so one peer's CA cannot mint
another peer's identity.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from cryptography import x509

from keys import NodeIdentity, certificate_fingerprint, identity_from_certificate, issued_by
from node.peers.directory import PeerDirectory
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild

log = structlog.get_logger("creditnode.auth")


@dataclass(frozen=True)
class Caller:
    identity: NodeIdentity
    fingerprint: str
    is_self: bool


current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller")


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PeerGate:
    """Decides whether the certificate on a connection belongs to an enrolled peer."""

    def __init__(
        self,
        self_identity: NodeIdentity,
        own_ca: x509.Certificate,
        directory: PeerDirectory,
        on_admit: Callable[[Caller], None] | None = None,
    ) -> None:
        self._self = self_identity
        self._own_ca = own_ca
        self._directory = directory
        self._on_admit = on_admit

    async def admit(self, auth_context: Mapping[str, Iterable[bytes]], address: str) -> Caller:
        pems = list(auth_context.get("x509_pem_cert") or [])
        if not pems:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        cert = x509.load_pem_x509_certificate(pems[0])
        fingerprint = certificate_fingerprint(cert)
        try:
            ident = identity_from_certificate(cert)
        except ValueError as exc:
            log.warning("refused caller", reason=str(exc), fingerprint=fingerprint, address=address)
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        if ident == self._self:
            if not issued_by(cert, self._own_ca):
                raise self._refuse(ident, fingerprint, address, "not issued by this node's CA")
            return Caller(ident, fingerprint, is_self=True)
        if ident.federation != self._self.federation:
            raise self._refuse(ident, fingerprint, address, "belongs to another federation")
        peer = await self._directory.lookup(ident.node)
        if peer is None:
            raise self._refuse(ident, fingerprint, address, "is not an enrolled peer")
        if not issued_by(cert, peer.ca):
            raise self._refuse(ident, fingerprint, address, "certificate not from its enrolled CA")
        caller = Caller(ident, fingerprint, is_self=False)
        if self._on_admit is not None:
            self._on_admit(caller)
        return caller

    def _refuse(self, ident: NodeIdentity, fingerprint: str, address: str, why: str) -> Refused:
        log.warning(
            "refused caller", caller=ident.uri, reason=why, fingerprint=fingerprint, address=address
        )
        return Refused(grpc.StatusCode.PERMISSION_DENIED, f"{ident.uri} {why}")


class GateInterceptor(WrappingInterceptor):
    """Wraps every method handler (ours, health, reflection) so the gate runs first."""

    def __init__(self, gate: PeerGate) -> None:
        self._gate = gate

    def wrap(self, handler: Handler, method: str) -> Handler:
        return _gated(handler, self._gate)


async def _enter(gate: PeerGate, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    try:
        caller = await gate.admit(context.auth_context(), context.peer())
    except Refused as refused:
        await context.abort(refused.code, str(refused))
    current_caller.set(caller)


def _gated(handler: Handler, gate: PeerGate) -> Handler:
    def unary(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await _enter(gate, context)
            return await behaviour(request, context)

        return call

    def streaming(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        if inspect.isasyncgenfunction(behaviour):

            async def gen(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                await _enter(gate, context)
                async for item in behaviour(request, context):
                    yield item

            return gen
        return unary(behaviour, streaming_request)  # coroutine that writes with context.write()

    return rebuild(handler, unary_response=unary, stream_response=streaming)
