"""QueryService: an officer's question about one subject, answered from this node's own lists.

The servicer reads the entries with every personal field filled from the origin's openings and
returns them as they are: what the caller may see, and in which form, is the border's job
(:mod:`node.border`), which renders each personal field for the caller's agreement and purpose
on the way out, and records the disclosure first.
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import and_, select

from node.api import feeds, query, query_rpc
from node.feeds.dates import shanghai_today
from node.feeds.publisher import Publisher
from node.feeds.state import DISCLOSURES, STATE, active

MAX_ANSWERS = 200


class QueryServicer(query_rpc.QueryServiceServicer):
    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher

    async def Lookup(
        self, request: query.LookupRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> query.LookupResponse:
        subject = request.WhichOneof("subject")
        log_id = self._pub.log.log_id
        # A peer never receives a removed or expired entry: the origin's history is its own.
        where = [STATE.c.log_id == log_id, active(shanghai_today())]
        async with self._pub.store.engine.connect() as conn:
            if subject == "uscc" and request.uscc:
                where.append(STATE.c.uscc == request.uscc)
            elif subject == "person_pseudonym" and request.person_pseudonym:
                ids = select(DISCLOSURES.c.entry_id).where(and_(
                    DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.field == "person_pseudonym",
                    DISCLOSURES.c.value == request.person_pseudonym))  # fmt: skip
                where.append(STATE.c.entry_id.in_(ids))
            else:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "name a subject: uscc or person_pseudonym"
                )
            rows = (await conn.execute(
                select(STATE.c.entry_id, STATE.c.last_idx, STATE.c.status, STATE.c.entry)
                .where(and_(*where))
                .order_by(STATE.c.listing_date.desc(), STATE.c.entry_id).limit(MAX_ANSWERS)
            )).all()  # fmt: skip
            opened: dict[int, dict[str, str]] = {}
            if rows:
                idxs = [int(r.last_idx) for r in rows]
                for idx, name, value in await conn.execute(
                    select(DISCLOSURES.c.idx, DISCLOSURES.c.field, DISCLOSURES.c.value).where(
                        and_(DISCLOSURES.c.log_id == log_id, DISCLOSURES.c.idx.in_(idxs))
                    )
                ):
                    opened.setdefault(int(idx), {})[name] = value
        answers = []
        for r in rows:
            entry = feeds.ListEntry.FromString(r.entry)
            entry.status = r.status
            for name, value in opened.get(int(r.last_idx), {}).items():
                setattr(entry, name, value)
            answers.append(
                query.LookupAnswer(entry_id=r.entry_id, leaf_index=int(r.last_idx), entry=entry)
            )
        return query.LookupResponse(answers=answers)
