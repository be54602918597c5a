"""PseudonymService: evaluate this node's OPRF on a partner's blinded resident IDs.

The partner learns this node's pseudonym of its own person, nothing else; this node never sees
the ID. Every call names a purpose the caller's agreement must allow (decided by the border like
any request), counts against the caller's token bucket (over it: RESOURCE_EXHAUSTED, nothing
evaluated), and is recorded in the audit log (by the border) before the answer leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import structlog

from node.api import pseudonyms, pseudonyms_rpc
from node.border import Exit, current_exit
from node.identity.oprf import OprfError
from node.identity.pseudonym import evaluate_blinded
from node.identity.pseudonym_key import PseudonymKey
from node.peers.gate import current_caller

log = structlog.get_logger("creditnode.pseudonyms")
MAX_ELEMENTS = 64


class TokenBuckets:
    """One token bucket per peer: *rate* evaluations a second, at most *burst* at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, peer: str, n: int) -> bool:
        """Take *n* tokens from *peer*'s bucket if it holds them (all or nothing)."""
        now = self._clock()
        tokens, last = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < n:
            self._buckets[peer] = (tokens, now)
            return False
        self._buckets[peer] = (tokens - n, now)
        return True


class PseudonymServicer(pseudonyms_rpc.PseudonymServiceServicer):
    def __init__(self, key: Callable[[], PseudonymKey], exit_: Exit, limits: TokenBuckets) -> None:
        self._key = key
        self._exit = exit_
        self._limits = limits

    async def Evaluate(
        self, request: pseudonyms.EvaluateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pseudonyms.EvaluateResponse:
        n = len(request.blinded_elements)
        if not 1 <= n <= MAX_ELEMENTS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"send 1 to {MAX_ELEMENTS} blinded elements"
            )
        caller = current_caller.get()
        call = current_exit.get()
        decision = None if call is None else call.decision
        peer = caller.identity.node
        if not caller.is_self:
            if decision is None or decision.refused:
                reason = "no agreement in force" if decision is None else decision.reason
                log.warning("pseudonym evaluation refused", peer=peer, reason=reason)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)
            if not self._limits.take(peer, n):
                log.warning("pseudonym evaluations over the rate limit", peer=peer, asked=n)
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"over the limit of {self._limits.rate:g} pseudonym evaluations a second "
                    f"(burst {self._limits.burst:g}); try again later",
                )
        key = self._key()
        try:
            evaluated = [evaluate_blinded(key, e) for e in request.blinded_elements]
        except OprfError as exc:  # the message names the defect, never an input
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not caller.is_self:
            assert decision is not None
            assert call is not None
            # The border records the evaluation (count, agreements) before the answer leaves.
            agreements = ", ".join(str(a) for a in decision.agreements)
            log.info("pseudonyms evaluated", peer=peer, purpose=call.purpose, count=n,
                     key_version=key.version, agreements=agreements)  # fmt: skip
        return pseudonyms.EvaluateResponse(key_version=key.version, evaluated_elements=evaluated)
