"""``serve`` re-checks its stored data in the background, at a share of the I/O, pass after
pass, resuming a pass where it stopped (``verification_progress``); the node refuses to serve
its own feed while a finding against it stands (:meth:`BackgroundVerifier.own_failure`)."""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog
from sqlalchemy import select

from node.feeds import merkle
from node.home import Home
from node.storage import Store
from node.storage.models import utcnow
from node.verification.check import Finding
from node.verification.runner import (
    OWN,
    PROGRESS,
    LogTarget,
    frontier_blob,
    frontier_from,
    open_findings,
    record,
    save_progress,
    targets,
    verify_target,
)

log = structlog.get_logger("creditnode.verify")

POLL_SECONDS = 2.0  # how soon a finding recorded by `creditnode verify` stops the own feed


class BackgroundVerifier:
    """Whole passes over every log, one after another with *interval* seconds between them,
    each sleeping so that it takes about *share* of the time it runs for."""

    def __init__(self, home: Home, store: Store, *, share: float, interval: float) -> None:
        self.home = home
        self.store = store
        self.share = share
        self.interval = interval
        self._failed: dict[str, Finding] = {}  # origin -> its first standing finding
        self.passes = 0

    def own_failure(self) -> Finding | None:
        """The first standing finding against this node's own feed, if any: while there is
        one, the feed is not served."""
        return self._failed.get(self.home.identity.uri)

    async def load(self) -> None:
        """Adopt the findings kept by earlier passes (this process's or another's)."""
        found = await open_findings(self.store)
        failed = {fs[0].log: fs[0] for fs in found.values() if fs}
        for origin in failed.keys() - self._failed.keys():
            log.error("stored data does not verify", finding=failed[origin].describe())
        self._failed = failed

    async def run(self) -> None:
        while True:
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # a busy database must not end verification: next pass
                log.exception("background verification failed")
            waited = 0.0
            while waited < self.interval:
                step = min(POLL_SECONDS, self.interval - waited)
                await asyncio.sleep(step)
                waited += step
                await self.load()

    async def run_pass(self) -> None:
        """One whole pass over every log, resumed where an interrupted one stopped."""
        for target in await targets(self.home, self.store):
            await self._verify(target)
            await self.load()
        self.passes += 1

    async def _verify(self, target: LogTarget) -> None:
        async with self.store.engine.connect() as conn:
            row = (
                (await conn.execute(select(PROGRESS).where(PROGRESS.c.log_id == target.log_id)))
                .mappings()
                .first()
            )
        resume: tuple[int, merkle.Frontier] | None = None
        started = utcnow()
        if row is not None and 0 < row["position"] <= target.size:
            frontier = frontier_from(int(row["position"]), bytes(row["frontier"]))
            if frontier is not None:
                resume = (int(row["position"]), frontier)
                started = row["pass_started_at"]
                if started.tzinfo is None:  # SQLite gives naive datetimes back
                    started = started.replace(tzinfo=dt.UTC)

        async def save(position: int, frontier: merkle.Frontier, clean: bool) -> None:
            # Progress is kept only while the pass is clean: a restart then finds again
            # whatever it had found.
            if clean:
                await save_progress(
                    self.store, target.log_id, position, frontier_blob(frontier), started
                )

        result = await verify_target(
            self.home, self.store, target, share=self.share, resume=resume, on_chunk=save
        )
        await record(self.store, target, result, started)
        await save_progress(self.store, target.log_id, 0, b"", started, verified=result.size)
        if result.findings and target.kind == OWN:
            log.error(
                "own feed not served until its stored data verifies",
                finding=result.findings[0].describe(),
            )
