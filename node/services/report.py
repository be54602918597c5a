"""ReportService: an enrolled peer's request for this node's signed report about one subject.

The report is built for the caller under the decision the border opened this call with (the
same one the exit then checks the signed payload against), so what is signed is exactly what
the caller may see; the exit records the exchange and puts its audit index in the answer.
"""

from __future__ import annotations

from typing import Any

import grpc

from node.api import reports, reports_rpc
from node.border import current_exit
from node.reports.build import Asked, ReportDeps, Subject, build_report
from node.reports.payload import ReportError

# build_report is looked up here at each call (tests replace it to slow a partner down).
__all__ = ["ReportServicer", "build_report"]


class ReportServicer(reports_rpc.ReportServiceServicer):
    def __init__(self, deps: ReportDeps) -> None:
        self._deps = deps

    async def GetReport(
        self, request: reports.GetReportRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> reports.GetReportResponse:
        which = request.WhichOneof("subject")
        try:
            subject = Subject(**{which: getattr(request, which)}) if which else Subject()
        except ReportError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None
        call = current_exit.get()
        asked = Asked(
            purpose=request.purpose, matter=request.matter, officer=request.officer,
            department_uscc=request.department_uscc, exchange=request.exchange_id,
            requester=call.peer if call is not None else "",
        )  # fmt: skip
        decision = call.decision if call is not None else None
        if decision is None or decision.refused:
            # A purpose the agreement does not allow is refused (and recorded), not answered
            # with a report stripped of its personal fields.
            reason = decision.reason if decision is not None else "no sharing agreement applies"
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, reason[:300])
        try:
            report = await build_report(self._deps, subject, asked, decision=decision)
        except ReportError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise AssertionError("unreachable") from None
        return reports.GetReportResponse(
            envelope=report.envelope,
            report_number=report.report_number,
            candidates=[
                reports.ReportCandidate(uscc=c.uscc, subject_name=c.subject_name, items=c.items)
                for c in report.candidates
            ],
            roots=[
                reports.RootChain(origin=o, versions=chain) for o, chain in report.roots.items()
            ],
        )
