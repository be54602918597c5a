"""QueryService: an officer's question about one subject, answered from this node's own lists.

The servicer reads the entries with every personal field filled from the origin's openings and
returns them as they are: what the caller may see, and in which form, is the border's job
(:mod:`node.border`), which renders each personal field for the caller's agreement and purpose
on the way out, and records the disclosure first.
"""

from __future__ import annotations

from typing import Any

import grpc

from node.api import feeds, query, query_rpc
from node.errors import StorageError
from node.feeds.dates import shanghai_today
from node.feeds.publisher import Publisher
from node.storage.reader import Reader

MAX_ANSWERS = 200

# The entries a peer may be answered with: those of ``node.feeds.state.active`` (listed, with
# a body, not past their disclosure end) of this node's own log. A peer never receives a
# removed or expired entry: the origin's history is its own.
_ACTIVE = (
    "s.log_id = ? AND s.status = ? AND s.entry != ? "
    "AND (s.disclosure_end = '' OR s.disclosure_end >= ?)"
)
# The entries and each one's opened fields in one statement (one snapshot, one round trip):
# an entry's row comes once per opening (a row with NULLs without any), in the answers' order.
_ANSWERS = (
    "SELECT a.entry_id, a.last_idx, a.status, a.entry, d.field, d.value FROM ("
    "SELECT s.entry_id, s.last_idx, s.status, s.entry, s.listing_date FROM list_state AS s "
    "WHERE {active} AND {subject} ORDER BY s.listing_date DESC, s.entry_id LIMIT {limit}) AS a "
    "LEFT JOIN disclosures AS d ON d.log_id = ? AND d.idx = a.last_idx "
    "ORDER BY a.listing_date DESC, a.entry_id"
)
_BY_USCC = "s.uscc = ?"
# By USCC the log id is left out of index choice (unary +): SQLite, without statistics, would
# otherwise walk the whole log by (log_id, last_idx) rather than seek the USCC index.
_ACTIVE_BY_USCC = _ACTIVE.replace("s.log_id = ?", "+s.log_id = ?", 1)
_BY_PSEUDONYM = (
    "s.entry_id IN (SELECT d.entry_id FROM disclosures AS d "
    "WHERE d.log_id = ? AND d.field = 'person_pseudonym' AND d.value = ?)"
)


class QueryServicer(query_rpc.QueryServiceServicer):
    def __init__(self, publisher: Publisher, reader: Reader | None = None) -> None:
        """Reads on *reader*, by default the store's (closed with the store)."""
        self._pub = publisher
        given = reader if reader is not None else publisher.store.reader
        if given is None:
            raise StorageError("the query path needs a database file, not an in-memory database")
        self._reader = given
        self._answers = {
            "uscc": _ANSWERS.format(active=_ACTIVE_BY_USCC, subject=_BY_USCC, limit=MAX_ANSWERS),
            "person_pseudonym": _ANSWERS.format(
                active=_ACTIVE, subject=_BY_PSEUDONYM, limit=MAX_ANSWERS
            ),
        }

    async def Lookup(
        self, request: query.LookupRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> query.LookupResponse:
        subject = request.WhichOneof("subject")
        log_id = self._pub.log.log_id
        active = [log_id, feeds.ENTRY_STATUS_ACTIVE, b"", shanghai_today().isoformat()]
        if subject == "uscc" and request.uscc:
            params = [*active, request.uscc, log_id]
        elif subject == "person_pseudonym" and request.person_pseudonym:
            params = [*active, log_id, request.person_pseudonym, log_id]
        else:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "name a subject: uscc or person_pseudonym"
            )
            raise AssertionError("abort returned")  # pragma: no cover - abort always raises

        answers: dict[str, query.LookupAnswer] = {}
        for entry_id, last_idx, status, body, name, value in await self._reader.fetch(
            self._answers[subject], params
        ):
            answer = answers.get(entry_id)
            if answer is None:
                entry = feeds.ListEntry.FromString(body)
                entry.status = status
                answer = answers[entry_id] = query.LookupAnswer(
                    entry_id=entry_id, leaf_index=int(last_idx), entry=entry
                )
            if name is not None:
                setattr(answer.entry, name, value)
        return query.LookupResponse(answers=answers.values())
