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
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import structlog
from google.protobuf.message import Message
from sqlalchemy import insert

from node.api import feeds
from node.identity.pseudonym_key import PseudonymKey
from node.peers.gate import current_caller
from node.peers.interceptors import Behaviour, Handler, WrappingInterceptor, rebuild
from node.policy.agreement import PURPOSES, Agreement, load_agreements
from node.policy.decide import Decision, decide
from node.policy.reidentify import DEFAULT_THRESHOLD
from node.policy.release import Release, Unreleasable, granted_openings, release
from node.storage import Store
from node.storage.models import ReleaseRecord, utcnow

log = structlog.get_logger("creditnode.border")
RELEASES = ReleaseRecord.__table__  # type: ignore[attr-defined]

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
    ) -> None:
        self.directory = directory
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
        loaded = load_agreements(texts, threshold=self.threshold)
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


# ------------------------------------------------------------------------------ the record


class ReleaseLedger:
    """Commits disclosure records; concurrent calls share one transaction (group commit)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, row: dict[str, Any]) -> None:
        """Return once *row* is durable; raise if it could not be written."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="release-ledger")
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self.store.begin() as conn:
                    await conn.execute(insert(RELEASES), [row for row, _ in batch])
            except Exception as exc:  # every waiter fails: its response is not sent
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)


# ----------------------------------------------------------------------------- the exit


@dataclass
class ExitCall:
    """One call as the border sees it: who, which method, which decision."""

    peer: str
    method: str
    purpose: str | None
    decision: Decision | None
    # Responses released and recorded, waiting for the serializer (by id, holding a reference).
    released: dict[int, Message] = field(default_factory=dict)


current_exit: contextvars.ContextVar[ExitCall | None] = contextvars.ContextVar(
    "current_exit", default=None
)

Observer = Callable[[ExitCall, Message, Release], None]


class Exit:
    """Applies the border to one response at a time (see the module docstring)."""

    def __init__(self, border: Border, ledger: ReleaseLedger) -> None:
        self.border = border
        self.ledger = ledger
        self.observers: list[Observer] = []  # tests and benchmarks watch what passes

    def open(self, method: str, request: object) -> ExitCall:
        caller = current_caller.get(None)
        peer = "" if caller is None else caller.identity.node
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
        call = ExitCall(peer=peer, method=method, purpose=purpose, decision=decision)
        current_exit.set(call)
        return call

    async def let_out(self, call: ExitCall, message: Message) -> None:
        """Release *message* under *call*'s decision and record it before it is sent."""
        try:
            key = self.border.pseudonym_key
            released = release(message, call.decision, pseudonym_key=None if key is None else key())
        except Unreleasable as exc:
            log.error("response withheld at the border", peer=call.peer, method=call.method,
                      reason=str(exc))  # fmt: skip
            raise
        if released.values:
            decision = call.decision
            assert decision is not None  # nothing personal leaves without one
            agreements = ", ".join(str(a) for a in decision.agreements)
            forms = ",".join(f"{k}={v}" for k, v in sorted(released.forms.items()))
            await self.ledger.record(
                {
                    "released_at": utcnow(),
                    "peer": call.peer,
                    "method": call.method,
                    "purpose": call.purpose or "",
                    "agreements": agreements[:500],
                    "forms": forms[:1000],
                    "values": released.values,
                    "withheld": released.withheld,
                    "first_leaf": min(released.leaves) if released.leaves else None,
                    "last_leaf": max(released.leaves) if released.leaves else None,
                }
            )
            log.info(
                "personal data released",
                peer=call.peer,
                method=call.method,
                purpose=call.purpose,
                forms=forms,
                values=released.values,
                agreements=agreements,
            )
        call.released[id(message)] = message
        for observe in self.observers:
            observe(call, message, released)

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
            exit_call = exit_.open(method, None if streaming_request else request)
            response = await behaviour(request, context)
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
                exit_.open(method, None if streaming_request else request)
                return await behaviour(request, context)

            return writes

        async def gen(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            exit_call = exit_.open(method, None if streaming_request else request)
            items = behaviour(request, context)
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
