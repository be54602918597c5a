"""The border: the one exit every response to a peer passes, and what decides it.

:class:`Border` holds the sharing agreements of ``HOME/agreements/`` (re-read when they change)
and turns them into a :class:`~node.policy.decide.Decision` per peer and purpose.
:class:`BorderInterceptor` wraps every method handler the server has — ours, health,
reflection, and any added later — so that:

1. each response a handler returns or yields is passed through
   :func:`node.policy.release.release` under the caller's decision, and, if it lets any
   personal value out, a disclosure record naming the deciding agreement version(s) is
   committed *before* the response is sent;
2. the handler's response serializer — the only way a message becomes bytes on the wire —
   is replaced by a guard: a message that did not come through step 1 (one written with
   ``context.write``, say) is released under no decision at all, so it can carry nothing
   personal; a message the border cannot judge (unclassified or unknown field) is not sent.

Which decision a call gets: FeedService calls get the peer's feed decision (``[feed.*]``
tables); a call whose request has a ``purpose`` field gets the decision for that purpose; every
other call, this node calling itself, a refused caller and any policy error get none. Fail
closed throughout: no agreements, a broken agreement or an unknown peer lets nothing personal
out.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import grpc
import structlog
from google.protobuf.message import Message

from node.api import feeds, pb
from node.audit.entry import AuditEntry, EntryError, now_us, subject_commitment, uuid7
from node.audit.log import AuditLog
from node.audit.wire import Asker, read_asker
from node.identity.pseudonym_key import PseudonymKey
from node.peers.gate import Refused, current_caller
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild
from node.policy.agreement import PURPOSES, Agreement, Problem, load_agreements
from node.policy.decide import Decision, decide
from node.policy.reidentify import DEFAULT_THRESHOLD
from node.policy.release import Release, Unreleasable, granted_openings, release

log = structlog.get_logger("creditnode.border")

FEED_SERVICE = feeds.DESCRIPTOR.services_by_name["FeedService"].full_name
RELOAD_SECONDS = 1.0


class Border:
    """The sharing agreements in force, and the decision for each (peer, purpose)."""

    def __init__(
        self,
        directory: Path,
        *,
        pseudonym_key: Callable[[], PseudonymKey] | None = None,
        reidentification_threshold: int = DEFAULT_THRESHOLD,
        check: Callable[[Sequence[Agreement]], list[Problem]] | None = None,
    ) -> None:
        self.directory = directory
        # Problems the node finds against what it holds (the measures an agreement names).
        self.check = check
        # Candidates every ID and name must keep across all a peer receives (node config).
        self.threshold = reidentification_threshold
        self.pseudonym_key = pseudonym_key  # the key in force, asked per response
        self._agreements: tuple[Agreement, ...] = ()
        self._problems = 0
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._checked = 0.0
        self._decisions: dict[tuple[str, str | None], Decision | None] = {}
        self._load()

    def _stat(self) -> tuple[tuple[str, int, int], ...]:
        if not self.directory.is_dir():
            return ()
        out = []
        for path in sorted(self.directory.glob("*.toml")):
            try:
                st = path.stat()
            except OSError:
                out.append((path.name, -1, -1))
            else:
                out.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _load(self) -> None:
        self._signature = self._stat()
        self._decisions = {}
        texts: dict[str, str] = {}
        for name, _, _ in self._signature:
            path = self.directory / name
            try:
                texts[str(path)] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                log.error(
                    "agreement unreadable: sharing nothing personal",
                    file=str(path),
                    error=type(exc).__name__,
                )
                self._agreements, self._problems = (), 1
                return
        loaded = load_agreements(texts, threshold=self.threshold, check=self.check)
        for p in loaded.problems:
            log.error("agreement problem: sharing nothing personal", problem=str(p))
        self._agreements, self._problems = tuple(loaded.agreements), len(loaded.problems)
        if self._agreements or self._problems:
            refs = ", ".join(f"{a.id} v{a.version}" for a in self._agreements)
            log.info("agreements loaded", agreements=refs, problems=self._problems)

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the agreements if a file changed (checked at most once a second)."""
        now = time.monotonic()
        if now - self._checked < RELOAD_SECONDS and not force:
            return
        self._checked = now
        if self._stat() != self._signature:
            self._load()

    def reload(self) -> None:
        """Re-read every agreement now, changed or not (SIGHUP): a file replaced with the same
        size and modification time is not missed."""
        self._checked = time.monotonic()
        self._load()

    def decision(self, peer: str, purpose: str | None) -> Decision | None:
        """What *peer* receives of a list entry for *purpose* (None: the feed); None when the
        agreements have a problem or the policy fails: nothing personal."""
        self.refresh()
        if purpose is not None and purpose not in PURPOSES:
            # Not cached: the purpose is the caller's string, and the cache must not grow with
            # whatever a peer sends.
            return self._decide(peer, purpose)
        key = (peer, purpose)
        if key not in self._decisions:
            self._decisions[key] = self._decide(peer, purpose)
        return self._decisions[key]

    def _decide(self, peer: str, purpose: str | None) -> Decision | None:
        if self._problems:
            return None
        try:
            return decide(self._agreements, peer, purpose, "list_entry", threshold=self.threshold)
        except Exception:  # a policy error shares nothing
            log.exception("policy error: sharing nothing personal", peer=peer)
            return None

    def feed_fields(self, peer: str) -> frozenset[str]:
        """The committed fields whose openings *peer*'s feed may carry (the feed servicer reads
        only these from the database; the exit checks every opening again)."""
        return granted_openings(self.decision(peer, None))


# ----------------------------------------------------------------------------- the exit

# Calls that are not exchanges of data are not recorded: node information, health and
# reflection, and checkpoints (public signed notes, fetched every few seconds by followers and
# witnesses; recording a witness's cosigning of an audit checkpoint would grow the audit log,
# which makes a new checkpoint to cosign, for ever). Everything else a peer is answered,
# refused or not, is; a caller the gate refuses is recorded whatever it called.
UNRECORDED_SERVICES = (
    pb.DESCRIPTOR.services_by_name["NodeService"].full_name,
    "creditnode.v1.WitnessService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
UNRECORDED_METHODS = (f"/{FEED_SERVICE}/GetCheckpoint",)
PURPOSE_TEXT = re.compile(r"[a-z0-9_]{1,40}")
PEER_TEXT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def recorded(method: str) -> bool:
    """Whether the audit log records the calls of *method*."""
    service = method.lstrip("/").split("/", 1)[0]
    return service not in UNRECORDED_SERVICES and method not in UNRECORDED_METHODS


def kind_of(method: str, message: Message | None) -> str:
    name = method.rsplit("/", 1)[-1]
    if name == "Lookup":
        return "query"
    if name == "Evaluate":
        return "oprf_evaluation"
    if name == "Disclose":
        return "disclosure"
    if name in ("Subscribe", "GetActions"):  # a partner's puller records GetActions so too
        return "feed_range"
    if name == "Receipts":
        return "receipts"
    if name == "GetReport":
        return "report"
    if method.startswith("/creditnode.v1.ObjectionService/"):
        return "objection"
    return "other"


@dataclass
class ExitCall:
    """One call as the border sees it: who, which method, which decision, which exchange."""

    peer: str
    method: str
    purpose: str | None
    decision: Decision | None
    asker: Asker = field(default_factory=lambda: read_asker(None))
    subject: str = ""  # keyed commitment to the request's subject
    seq: int = 0  # messages of this call let out so far
    # Responses released and recorded, waiting for the serializer (by id, holding a reference).
    released: dict[int, Message] = field(default_factory=dict)
    last_index: int | None = None  # audit index of the last recorded message
    aborted: bool = False  # the handler aborted (and the abort was recorded)

    @property
    def recorded(self) -> bool:
        return bool(self.peer) and recorded(self.method)


current_exit: contextvars.ContextVar[ExitCall | None] = contextvars.ContextVar(
    "current_exit", default=None
)

Observer = Callable[[ExitCall, Message, Release], None]


class Exit:
    """Applies the border to one response at a time (see the module docstring), and records
    every exchange in the audit log before its answer leaves."""

    def __init__(self, border: Border, audit: AuditLog, secret: bytes) -> None:
        self.border = border
        self.audit = audit
        self.secret = secret  # keys subject commitments
        self.observers: list[Observer] = []  # tests and benchmarks watch what passes

    def open(
        self,
        method: str,
        request: object,
        metadata: Iterable[Any] | None = None,
    ) -> ExitCall:
        caller = current_caller.get(None)
        peer = "" if caller is None or caller.is_self else caller.identity.node
        purpose: str | None = None
        decision: Decision | None = None
        if caller is not None and not caller.is_self:
            has_purpose = isinstance(request, Message) and (
                "purpose" in request.DESCRIPTOR.fields_by_name
            )
            if has_purpose:
                purpose = str(getattr(request, "purpose", ""))
                decision = self.border.decision(peer, purpose)
            elif method.startswith(f"/{FEED_SERVICE}/"):
                decision = self.border.decision(peer, None)
        call = ExitCall(
            peer=peer,
            method=method,
            purpose=purpose,
            decision=decision,
            asker=read_asker(metadata) if peer else read_asker(None),
            subject=self._subject(request) if peer else "",
        )
        current_exit.set(call)
        return call

    def _subject(self, request: object) -> str:
        if not isinstance(request, Message) or "subject" not in request.DESCRIPTOR.oneofs_by_name:
            return ""
        which = request.WhichOneof("subject")
        value = str(getattr(request, which, "")) if which else ""
        if not value:
            return ""
        kind = "uscc" if which == "uscc" else "pseudonym"
        return subject_commitment(self.secret, kind, value[:200])

    def _entry(
        self, call: ExitCall, *, seq: int, kind: str, outcome: str, released: Release | None = None,
        reason: str = "", count: int = 0,
    ) -> AuditEntry:  # fmt: skip
        """The entry for one message (or refusal) of *call*; personal values never enter it."""
        problems = list(call.asker.problems)
        purpose = call.purpose or ""
        if purpose and not PURPOSE_TEXT.fullmatch(purpose):
            problems.append("purpose malformed")
            purpose = ""
        decision = call.decision
        agreements = tuple(str(a)[:100] for a in decision.agreements[:32]) if decision else ()
        forms: tuple[tuple[str, str], ...] = ()
        values = withheld = 0
        leaves: tuple[int, int] | None = None
        if released is not None:
            forms = tuple(sorted((k, v[:60]) for k, v in released.forms.items()))[:32]
            values, withheld = released.values, released.withheld
            if released.leaves:
                leaves = (min(released.leaves), max(released.leaves))
        if kind == "oprf_evaluation" and outcome == "sent":
            forms, values = (("person_pseudonym", "oprf_evaluation"),), count
        text = "; ".join(p for p in (reason, *problems) if p)
        try:
            return AuditEntry(
                exchange=call.asker.exchange, at_us=now_us(), direction="in", kind=kind,
                outcome=outcome, seq=seq, peer=call.peer, method=call.method[:200],
                officer=call.asker.officer, department=call.asker.department,
                purpose=purpose, matter=call.asker.matter, subject=call.subject,
                reason=text[:300], agreements=agreements, forms=forms, values=values,
                withheld=withheld, leaves=leaves,
            )  # fmt: skip
        except EntryError:
            # A value the entry refuses (an agreement name, a reason that reads as personal):
            # the exchange is recorded all the same, without the free text.
            return AuditEntry(
                exchange=call.asker.exchange, at_us=now_us(), direction="in", kind=kind,
                outcome=outcome, seq=seq, peer=call.peer, method=call.method[:200],
                officer=call.asker.officer, purpose=purpose, subject=call.subject,
                reason="free text refused",
                values=values, withheld=withheld, leaves=leaves,
            )  # fmt: skip

    async def let_out(self, call: ExitCall, message: Message) -> None:
        """Release *message* under *call*'s decision and record it before it is sent."""
        seq = call.seq
        call.seq += 1
        try:
            key = self.border.pseudonym_key
            released = release(message, call.decision, pseudonym_key=None if key is None else key())
        except Unreleasable as exc:
            log.error("response withheld at the border", peer=call.peer, method=call.method,
                      reason=str(exc))  # fmt: skip
            if call.recorded:
                await self.refused(call, "error", "response withheld at the border")
            raise
        if call.recorded and not _checkpoint_only(message):
            kind = kind_of(call.method, message)
            outcome, count = _outcome(kind, message)
            entry = self._entry(
                call, seq=seq, kind=kind, outcome=outcome, released=released, count=count
            )
            call.last_index = await self.audit.record(
                entry, finish=partial(_finish, message), fresh_on_replay=True
            )
            if released.values:
                log.info(
                    "personal data released",
                    peer=call.peer,
                    method=call.method,
                    purpose=call.purpose,
                    forms=",".join(f"{k}={v}" for k, v in sorted(released.forms.items())),
                    values=released.values,
                    agreements=", ".join(entry.agreements),
                    audit_index=call.last_index,
                )
        call.released[id(message)] = message
        for observe in self.observers:
            observe(call, message, released)

    async def refused(self, call: ExitCall, outcome: str, reason: str) -> None:
        """Record that *call* was refused (or failed) before the refusal is sent."""
        if not call.recorded:
            return
        seq = call.seq
        call.seq += 1
        entry = self._entry(call, seq=seq, kind=kind_of(call.method, None), outcome=outcome,
                            reason=_safe_reason(reason))  # fmt: skip
        call.last_index = await self.audit.record(entry, fresh_on_replay=True)

    async def refused_at_gate(
        self, peer: str, method: str, refused: Refused, metadata: Iterable[Any]
    ) -> None:
        """Record a caller the gate refused (unknown peer, wrong CA, another federation, a
        certificate its root does not list), before the refusal is sent."""
        call = ExitCall(
            peer=peer if PEER_TEXT.fullmatch(peer) else "",
            method=method,
            purpose=None,
            decision=None,
            asker=read_asker(metadata),
        )
        entry = self._entry(call, seq=0, kind="refusal", outcome="refused",
                            reason=_safe_reason(f"{refused.code.name}: {refused}"))  # fmt: skip
        await self.audit.record(entry, fresh_on_replay=True)

    async def aborting(self, call: ExitCall, code: grpc.StatusCode, details: str) -> None:
        """Record a handler's abort before its status is sent (gRPC sends it at once)."""
        call.aborted = True
        if not call.recorded:
            return
        outcome = "refused" if code in REFUSALS else "error"
        try:
            await self.refused(call, outcome, f"{code.name}: {details}")
        except Exception:
            log.exception("refusal not recorded", peer=call.peer, method=call.method)

    async def failed(
        self, call: ExitCall, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException
    ) -> None:
        """Record a handler's failure (an abort is recorded by :meth:`aborting`); a failure
        to record is logged (a refusal carries no data, so it is sent all the same)."""
        if not call.recorded or call.aborted:
            return
        code = _code(context)
        outcome = "refused" if code in REFUSALS else "error"
        details = ""
        with contextlib.suppress(Exception):
            details = str(context.details() or "")
        reason = f"{code.name if code else type(exc).__name__}: {details}"
        try:
            await self.refused(call, outcome, reason)
        except Exception:
            log.exception("refusal not recorded", peer=call.peer, method=call.method)

    def guard(self, serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
        """The response serializer every handler gets: nothing unreleased leaves personal."""

        def serialize(message: Any) -> bytes:
            call = current_exit.get()
            if call is None or call.released.pop(id(message), None) is None:
                # Not through let_out (e.g. context.write): released under no decision.
                released = release(message, None, pseudonym_key=None)
                if released.withheld:
                    log.error(
                        "unrecorded personal data withheld at the border",
                        method=call.method if call else "",
                        withheld=released.withheld,
                    )
                if call is not None:
                    for observe in self.observers:
                        observe(call, message, released)
            if serializer is None:
                return cast(bytes, message.SerializeToString())
            return serializer(message)

        return serialize


def _finish(message: Message, index: int) -> bytes:
    """Put the audit index into the answer (when it has the field) and return the bytes that
    will be sent: the entry holds their SHA-256."""
    if "audit_index" in message.DESCRIPTOR.fields_by_name:
        message.audit_index = index  # type: ignore[attr-defined]
    return message.SerializeToString()


REFUSALS = frozenset({
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
})  # fmt: skip


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except Exception:
        return None
    return code if isinstance(code, grpc.StatusCode) else None


def _checkpoint_only(message: Message) -> bool:
    """A stream message carrying only a checkpoint (public, signed): not recorded."""
    return (
        "item" in message.DESCRIPTOR.oneofs_by_name and message.WhichOneof("item") == "checkpoint"
    )


def _outcome(kind: str, message: Message) -> tuple[str, int]:
    if kind == "query":
        return ("hit" if len(message.answers) else "no_hit"), 0  # type: ignore[attr-defined]
    if kind == "oprf_evaluation":
        return "sent", len(message.evaluated_elements)  # type: ignore[attr-defined]
    return "sent", 0


def _safe_reason(reason: str) -> str:
    """A refusal's reason fit for the log (our own words; bounded; else none)."""
    text = reason.replace("\n", " ")[:300]
    try:
        AuditEntry(exchange=uuid7(), at_us=0, direction="in", kind="refusal", outcome="refused",
                   reason=text)  # fmt: skip
    except EntryError:
        return ""
    return text


class _RecordingContext:
    """The servicer context a handler gets: its ``abort`` is recorded before the status
    leaves (everything else is the real context's)."""

    def __init__(
        self, context: grpc.aio.ServicerContext[Any, Any], exit_: Exit, call: ExitCall
    ) -> None:
        self._context = context
        self._exit = exit_
        self._call = call

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        await self._exit.aborting(self._call, code, details)
        await self._context.abort(code, details, trailing_metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _recording(
    context: grpc.aio.ServicerContext[Any, Any], exit_: Exit, call: ExitCall
) -> grpc.aio.ServicerContext[Any, Any]:
    return cast("grpc.aio.ServicerContext[Any, Any]", _RecordingContext(context, exit_, call))


class BorderInterceptor(WrappingInterceptor):
    """Puts :class:`Exit` on every method handler of the server."""

    def __init__(self, exit_: Exit) -> None:
        self.exit = exit_

    def wrap(self, handler: Handler, method: str) -> Handler:
        return _through_exit(handler, self.exit, method)


async def _abort_unreleasable(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.INTERNAL, "response withheld at the border")


def _through_exit(handler: Handler, exit_: Exit, method: str) -> Handler:
    def unary(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            exit_call = exit_.open(
                method, None if streaming_request else request, context.invocation_metadata() or ()
            )
            try:
                response = await behaviour(request, _recording(context, exit_, exit_call))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # an abort (refusal) or a failure: recorded first
                await exit_.failed(exit_call, context, exc)
                raise
            try:
                await exit_.let_out(exit_call, response)
            except Unreleasable:
                await _abort_unreleasable(context)
            return response

        return call

    def streaming(behaviour: Behaviour, streaming_request: bool) -> Behaviour:
        if not inspect.isasyncgenfunction(behaviour):

            async def writes(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                # context.write() path: only the serializer guard sees these messages.
                exit_.open(
                    method,
                    None if streaming_request else request,
                    context.invocation_metadata() or (),
                )
                return await behaviour(request, context)

            return writes

        async def gen(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            exit_call = exit_.open(
                method, None if streaming_request else request, context.invocation_metadata() or ()
            )
            items = behaviour(request, _recording(context, exit_, exit_call))
            recorded: asyncio.Future[None] | None = None
            upcoming: asyncio.Future[Any] | None = None
            try:
                item = await anext(items)
                while True:
                    recorded = asyncio.ensure_future(exit_.let_out(exit_call, item))
                    # The handler makes the next message while this one's record commits; the
                    # message itself waits for its record, and nothing waits for the next one.
                    upcoming = asyncio.ensure_future(anext(items))
                    try:
                        await recorded
                    except Unreleasable:
                        await _abort_unreleasable(context)
                    yield item
                    item = await upcoming
                    recorded = upcoming = None
            except StopAsyncIteration:
                return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:  # an abort (refusal) or a failure: recorded first
                await exit_.failed(exit_call, context, exc)
                raise
            finally:
                for pending in (recorded, upcoming):
                    if pending is not None and not pending.done():
                        pending.cancel()
                        with contextlib.suppress(BaseException):
                            await pending
                await items.aclose()

        return gen

    return rebuild(
        handler,
        unary_response=unary,
        stream_response=streaming,
        response_serializer=exit_.guard(handler.response_serializer),
    )
