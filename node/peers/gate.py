"""The gate every inbound call passes: mutual TLS identity → enrolled peer, or refusal.

TLS already proved the caller holds a key certified by one of our trust roots. Here we read
its ``creditnode://FED/NODE`` URI SAN and admit it only if that node is enrolled *and* its
certificate was issued by the CA enrolled for that node, so one peer's CA cannot mint
another peer's identity.

Admission consults the directory, which follows enrollment changes made by any process
within ``directory.WATCH_SECONDS``. The gate also keeps every admitted call of every peer until
it ends: when a peer is removed or re-enrolled with another CA or feed key, each of its open
calls and streams is cut with ``PERMISSION_DENIED``, and nothing more is sent on it. A stream
re-reads enrollment (:func:`still_admitted`) before each message that carries something new.

When the peer's root held here (its pinned root v1, or a newer version verified since) lists
transport keys, the certificate presented must be one of them — the same public key and
certificate SHA-256 — with a window containing now; a peer enrolled without a root, or whose
root lists none, is checked as above only. A certificate that fails is refused, and a
background fetch of the peer's root is asked for (``on_stale_root``, rate-limited there): a
peer that has just rotated its certificate is admitted at its next attempt once its newer
root is verified. Only ``GetRoot`` and ``NotifyRoot`` — signed public metadata, and a hint —
are still served to such a caller, so two peers that rotated at once can fetch each other's
roots. When a peer's held root changes, its open calls whose certificate it no longer lists
as valid (a revocation) are cut.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import hashlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keys import (
    NodeIdentity,
    certificate_fingerprint,
    identity_from_certificate,
    is_officer_certificate,
    issued_by,
)
from node.api import pb
from node.keys.roles import TRANSPORT
from node.peers.directory import DirectoryChange, HeldRoot, PeerDirectory
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild

log = structlog.get_logger("creditnode.auth")

_NODE_SERVICE = pb.DESCRIPTOR.services_by_name["NodeService"].full_name
# Served to an enrolled peer whose certificate its held root does not list (yet): root
# metadata is signed and public, and a notification only makes this node fetch and verify.
ROOT_METHODS = frozenset({f"/{_NODE_SERVICE}/GetRoot", f"/{_NODE_SERVICE}/NotifyRoot"})


@dataclass(frozen=True)
class Caller:
    identity: NodeIdentity
    fingerprint: str
    is_self: bool
    certificate: x509.Certificate | None = field(default=None, compare=False, repr=False)
    # Admitted to ROOT_METHODS only: its certificate is not a transport key of its held root.
    root_only: bool = False


current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("current_caller")

# How long an admission is reused without re-checking the certificate: enrollment changes
# clear the cache at once; this bounds only what moves with the clock (a transport key's
# window, the certificate's expiry).
ADMISSION_SECONDS = 1.0
_ADMISSION_LIMIT = 4096  # distinct certificates held; beyond, the cache starts over


@dataclass(frozen=True)
class _Admitted:
    """A cached admission and the enrollment view it was judged under."""

    caller: Caller
    peer: object  # the directory's KnownPeer object (a reload makes new ones)
    root: object  # the directory's HeldRoot object, or None
    until: float  # time.monotonic() after which the certificate is judged again


@dataclass(eq=False)
class InFlight:
    """One admitted call of a peer, from admission until it ends."""

    caller: Caller
    gate: PeerGate
    task: asyncio.Task[Any] | None
    # True while the call's task awaits the handler (not gRPC sending a message): only then
    # is it cancelled when cut; otherwise the cut is seen before the next message is made.
    inside: bool = False
    cut: str = ""  # why the call was cut, once it is


current_call: contextvars.ContextVar[InFlight] = contextvars.ContextVar("current_call")


async def still_admitted() -> bool:
    """Re-read enrollment as committed now; False if the current call has been cut (its peer
    removed or re-keyed), in which case the handler must send nothing more. A streaming
    handler asks before each message that carries something new."""
    call = current_call.get(None)
    if call is None:
        return True
    await call.gate.sync_enrollment()
    return not call.cut


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, peer: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.peer = peer  # the node name the refused certificate claims, if it names one


# Records a refusal before it is sent: (peer, method, refusal, request metadata).
RefusalHook = Callable[[str, str, Refused, Iterable[Any]], Awaitable[None]]


class PeerGate:
    """Decides whether the certificate on a connection belongs to an enrolled peer."""

    def __init__(
        self,
        self_identity: NodeIdentity,
        own_ca: x509.Certificate,
        directory: PeerDirectory,
        on_admit: Callable[[Caller], None] | None = None,
        on_stale_root: Callable[[str], None] | None = None,
    ) -> None:
        self._self = self_identity
        self._own_ca = own_ca
        self._directory = directory
        self._on_admit = on_admit
        self._on_stale_root = on_stale_root
        self._calls: dict[str, set[InFlight]] = {}
        # SHA-256 of the presented PEM (the DER, as the TLS layer renders it) → admission.
        self._admitted: dict[bytes, _Admitted] = {}
        self.on_refuse: RefusalHook | None = None  # the audit log (set by the node)
        directory.add_listener(self._enrollment_changed)

    async def admit(
        self, auth_context: Mapping[str, Iterable[bytes]], address: str, method: str = ""
    ) -> Caller:
        pems = list(auth_context.get("x509_pem_cert") or [])
        if not pems:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        key = hashlib.sha256(pems[0]).digest()
        cached = self._admitted.get(key)
        if cached is not None:
            caller = self._reuse(cached)
            if caller is not None:
                return caller
            self._admitted.pop(key, None)
        caller = await self._judge(pems[0], address, method)
        if not caller.root_only:
            self._remember(key, caller)
        return caller

    def _reuse(self, cached: _Admitted) -> Caller | None:
        """*cached*'s caller if the same enrollment view still admits it now, else None."""
        if time.monotonic() >= cached.until:
            return None
        caller = cached.caller
        if not caller.is_self:
            node = caller.identity.node
            # Any reload makes new objects: an enrollment change is never served from cache.
            if self._directory.get(node) is not cached.peer:
                return None
            if self._directory.root(node) is not cached.root:
                return None
            if self._on_admit is not None:
                self._on_admit(caller)
        return caller

    def _remember(self, key: bytes, caller: Caller) -> None:
        until = time.monotonic() + ADMISSION_SECONDS
        if caller.certificate is not None:
            left = (caller.certificate.not_valid_after_utc - _now()).total_seconds()
            until = min(until, time.monotonic() + left)
        node = caller.identity.node
        peer = None if caller.is_self else self._directory.get(node)
        root = None if caller.is_self else self._directory.root(node)
        if not caller.is_self and peer is None:
            return
        if len(self._admitted) >= _ADMISSION_LIMIT:
            self._admitted.clear()
        self._admitted[key] = _Admitted(caller, peer, root, until)

    async def _judge(self, pem: bytes, address: str, method: str) -> Caller:
        """Parse and check the certificate in full (see the module docstring)."""
        cert = x509.load_pem_x509_certificate(pem)
        fingerprint = certificate_fingerprint(cert)
        if is_officer_certificate(cert):
            # An officer talks to its own node's officer listener only, never as a peer.
            log.warning("refused caller", reason="officer credential", address=address)
            raise Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                "an officer credential is never admitted as a peer",
            )
        try:
            ident = identity_from_certificate(cert)
        except ValueError as exc:
            log.warning("refused caller", reason=str(exc), fingerprint=fingerprint, address=address)
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        if ident == self._self:
            if not issued_by(cert, self._own_ca):
                raise self._refuse(ident, fingerprint, address, "not issued by this node's CA")
            return Caller(ident, fingerprint, is_self=True, certificate=cert)
        if ident.federation != self._self.federation:
            raise self._refuse(ident, fingerprint, address, "belongs to another federation")
        peer = await self._directory.lookup(ident.node)
        if peer is None:
            raise self._refuse(ident, fingerprint, address, "is not an enrolled peer")
        if not issued_by(cert, peer.ca):
            raise self._refuse(ident, fingerprint, address, "certificate not from its enrolled CA")
        problem = transport_problem(self._directory.root(ident.node), cert, fingerprint, _now())
        if problem:
            # Perhaps a rotation whose root this node has not fetched yet: fetch it, so the
            # next attempt is judged under the peer's newest root.
            if self._on_stale_root is not None:
                self._on_stale_root(ident.node)
            log.warning(
                "transport certificate not in the peer's root",
                caller=ident.uri,
                reason=problem,
                fingerprint=fingerprint[:16],
                address=address,
                served="root metadata only" if method in ROOT_METHODS else "refused",
            )
            if method not in ROOT_METHODS:
                raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"{ident.uri} {problem}")
        caller = Caller(ident, fingerprint, False, certificate=cert, root_only=bool(problem))
        if self._on_admit is not None and not problem:
            self._on_admit(caller)
        return caller

    async def sync_enrollment(self) -> None:
        """The directory as committed now; on a database fault, the last view (logged)."""
        try:
            await self._directory.sync()
        except Exception as exc:  # a database fault must not refuse every enrolled peer
            log.warning("enrollment not re-read; using the last view", error=type(exc).__name__)

    def track(self, caller: Caller) -> InFlight | None:
        """Keep an admitted peer's call until :meth:`untrack`; the node calling itself is not
        kept (it is never cut)."""
        if caller.is_self:
            return None
        call = InFlight(caller, self, asyncio.current_task())
        self._calls.setdefault(caller.identity.node, set()).add(call)
        return call

    def untrack(self, call: InFlight) -> None:
        calls = self._calls.get(call.caller.identity.node)
        if calls is not None:
            calls.discard(call)
            if not calls:
                del self._calls[call.caller.identity.node]

    def in_flight(self, peer: str) -> int:
        """How many calls of *peer* are open (admitted and not ended)."""
        return len(self._calls.get(peer, ()))

    def cut(self, peer: str, why: str, which: Callable[[InFlight], bool] | None = None) -> int:
        """End every open call of *peer* (or those *which* picks) with PERMISSION_DENIED;
        return how many."""
        calls = [c for c in self._calls.get(peer, ()) if not c.cut and (which is None or which(c))]
        for call in calls:
            call.cut = f"{call.caller.identity.uri} {why}"
        if calls:
            log.warning("calls cut", peer=peer, calls=len(calls), reason=why)
            # Cancelled from the loop, not from here: this may run inside one of those calls
            # (a stream re-reading enrollment), which then returns on its own.
            asyncio.get_running_loop().call_soon(_interrupt, calls)
        return len(calls)

    def _enrollment_changed(self, change: DirectoryChange) -> None:
        self._admitted.clear()  # every admission is judged again under the new enrollment
        for name in sorted(change.removed):
            self.cut(name, "is no longer enrolled here")
        for name in sorted(change.rekeyed):
            self.cut(name, "was re-enrolled with another CA or feed key")
        now = _now()
        for name in sorted(change.roots - change.removed - change.rekeyed):
            held = self._directory.root(name)

            def revoked(call: InFlight, held: HeldRoot | None = held) -> bool:
                caller = call.caller
                if caller.root_only or caller.certificate is None:
                    return False
                return bool(transport_problem(held, caller.certificate, caller.fingerprint, now))

            self.cut(name, "presents a certificate its root no longer lists as valid", revoked)

    def _refuse(self, ident: NodeIdentity, fingerprint: str, address: str, why: str) -> Refused:
        log.warning(
            "refused caller", caller=ident.uri, reason=why, fingerprint=fingerprint, address=address
        )
        return Refused(grpc.StatusCode.PERMISSION_DENIED, f"{ident.uri} {why}", ident.node)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def transport_problem(
    held: HeldRoot | None, cert: x509.Certificate, fingerprint: str, now: dt.datetime
) -> str:
    """Why *cert* (SHA-256 *fingerprint*) is not a transport key valid at *now* in the peer's
    held root; empty if it is, or if that root lists no transport key (or there is none)."""
    if held is None:
        return ""
    root = held.trusted
    if root is None:
        return f"cannot be checked: {held.problem}"  # fail closed
    if not root.content.online_keys(TRANSPORT):
        return ""
    public = cert.public_key()
    short = f"certificate {fingerprint[:16]}…"
    if isinstance(public, Ed25519PublicKey | EllipticCurvePublicKey):
        if root.certificate_valid(public, fingerprint, now):
            return ""
        for entry in root.entries(TRANSPORT, public):
            if entry.certificate_sha256 == fingerprint:
                state = entry.window.state(now)
                return f"{short} is {state} in its root v{root.version}"
    return f"{short} is not a transport key of its root v{root.version}"


class GateInterceptor(WrappingInterceptor):
    """Wraps every method handler (ours, health, reflection) so the gate runs first."""

    def __init__(self, gate: PeerGate) -> None:
        self._gate = gate

    def wrap(self, handler: Handler, method: str) -> Handler:
        return _gated(handler, self._gate, method)


def _interrupt(calls: Sequence[InFlight]) -> None:
    for call in calls:
        if call.inside and call.task is not None and not call.task.done():
            call.task.cancel()


def _cancelled_by_cut(call: InFlight | None) -> bool:
    """True if the cancellation being handled is the cut's own; it is then taken back."""
    if call is None or not call.cut:
        return False
    task = asyncio.current_task()
    return task is None or task.uncancel() == 0


async def _abort_cut(context: grpc.aio.ServicerContext[Any, Any], call: InFlight) -> NoReturn:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, call.cut)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


async def _enter(
    gate: PeerGate, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> InFlight | None:
    try:
        caller = await gate.admit(context.auth_context(), context.peer(), method)
    except Refused as refused:
        if gate.on_refuse is not None:
            try:  # recorded before the refusal is sent; a refusal carries no data
                await gate.on_refuse(
                    refused.peer, method, refused, context.invocation_metadata() or ()
                )
            except Exception:
                log.exception("refusal not recorded", method=method)
        await context.abort(refused.code, str(refused))
    current_caller.set(caller)
    # Kept in the same step as the admission: no enrollment change can fall between them.
    call = gate.track(caller)
    if call is not None:
        current_call.set(call)
    return call


def _gated(handler: Handler, gate: PeerGate, method: str) -> Handler:
    def unary(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = await _enter(gate, context, method)
            if call is None:
                return await behaviour(request, context)
            try:
                call.inside = True
                try:
                    response = await behaviour(request, context)
                except asyncio.CancelledError:
                    if not _cancelled_by_cut(call):
                        raise
                finally:
                    call.inside = False
                if call.cut:  # cut while the answer was made: it is not sent
                    await _abort_cut(context, call)
                return response
            finally:
                gate.untrack(call)

        return run

    def streaming(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        if inspect.isasyncgenfunction(behaviour):

            async def gen(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                call = await _enter(gate, context, method)
                items = behaviour(request, context)
                try:
                    while call is None or not call.cut:
                        if call is not None:
                            call.inside = True
                        try:
                            item = await anext(items)
                        except StopAsyncIteration:
                            break
                        except asyncio.CancelledError:
                            if not _cancelled_by_cut(call):
                                raise
                            break
                        finally:
                            if call is not None:
                                call.inside = False
                        if call is not None and call.cut:
                            break  # made while the call was cut: not sent
                        yield item
                    if call is not None and call.cut:
                        await _abort_cut(context, call)
                finally:
                    if call is not None:
                        gate.untrack(call)
                    await items.aclose()

            return gen
        return unary(behaviour, streaming_request)  # coroutine that writes with context.write()

    return rebuild(handler, unary_response=unary, stream_response=streaming)
