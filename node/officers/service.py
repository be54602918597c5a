"""OfficerService on the officer listener: the gate has admitted an officer of this node."""

from __future__ import annotations

from typing import Any

import grpc

from node.api import officers, officers_rpc
from node.officers.check import Checker, CheckRefused
from node.officers.gate import current_officer


class OfficerServicer(officers_rpc.OfficerServiceServicer):
    def __init__(self, checker: Checker) -> None:
        self._checker = checker

    async def Check(
        self, request: officers.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> officers.CheckResponse:
        officer = current_officer.get()
        try:
            return await self._checker.check(officer, request)
        except CheckRefused as refused:
            await context.abort(refused.code, str(refused))
            raise AssertionError("abort returned") from None  # pragma: no cover
