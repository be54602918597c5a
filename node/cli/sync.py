"""`creditnode sync`: one catch-up pass over peers' feeds, with progress and a result table.

Each batch received (and each disclosure) is recorded in this node's audit log as the running
subscriber records it (the requester's receipts, ``feed_range`` / ``disclosure`` entries);
the log's checkpoint is signed before the command returns."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from node.audit.local import opened_audit
from node.errors import InputError, PeerError, VerificationError
from node.feeds.subscriber import (
    STICKY,
    FeedUnavailable,
    ForkedPeer,
    Subscriber,
    SyncProgress,
)
from node.feeds.verify import CheckpointRefused, FeedError, ForkError, Tampered
from node.home import load_home
from node.peers.directory import PeerDirectory
from node.storage import Store
from node.text import plain

VERIFY_FAILED = VerificationError.exit_code
CLEAR = "standing until `creditnode evidence clear --peer NAME --confirm`"


async def sync_peers(
    root: Path,
    only: str | None,
    timeout: float,
    out: Console,
    err: Console,
    *,
    disclose: bool = False,
) -> int:
    home = load_home(root)
    async with Store.opened(home.database_url) as store, opened_audit(home, store) as audit:
        directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
        await directory.refresh()
        peers = directory.peers()
        if only is not None:
            peers = [p for p in peers if p.identity.node == only]
            if not peers:
                raise InputError(f"no enrolled peer named {only!r} (see `creditnode peer list`)")
        results: list[tuple[str, SyncProgress | None, str, str, int | None]] = []
        code = 0
        with Progress(
            # Peer names are data: the description is text, never markup.
            TextColumn("{task.description}", markup=False, style="progress.description"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            for peer in peers:
                name = peer.identity.node
                task = bar.add_task(f"sync {plain(name)}", total=None)

                def report(p: SyncProgress, task: TaskID = task) -> None:
                    bar.update(task, completed=p.size, total=max(p.target, p.size))

                try:
                    sub = await Subscriber.open(home.tls, store, peer, audit=audit)
                    status = await sub.sync(follow=False, progress=report, timeout=timeout)
                    added = None
                    if disclose:
                        bar.update(task, description=f"disclose {plain(name)}", completed=0)
                        added = await sub.disclose(progress=report, timeout=timeout)
                    c = sub.log.cursor
                    if c.state in STICKY:  # this pass verified; an earlier mark still stands
                        results.append((name, status, c.state, f"{c.state_detail} ({CLEAR})",
                                        added))  # fmt: skip
                    else:
                        results.append((name, status, "ok", "", added))
                except (ForkError, ForkedPeer) as exc:
                    results.append((name, None, "forked", str(exc), None))
                    code = VERIFY_FAILED
                except (Tampered, CheckpointRefused) as exc:
                    # Evidence kept, the feed marked `tampered` (see `status`, `evidence clear`).
                    results.append((name, None, "tampered", str(exc), None))
                    code = VERIFY_FAILED
                except FeedError as exc:
                    # Not asked at all (unreachable), or what came back cannot be verified now
                    # (a time ahead of this clock, a root update refused): stalled, exit 7.
                    unreachable = isinstance(exc, FeedUnavailable)
                    results.append(
                        (name, None, "unreachable" if unreachable else "stalled", str(exc), None)
                    )
                    code = max(code, PeerError.exit_code if unreachable else VERIFY_FAILED)
        table = Table(title=f"sync {home.identity.uri}", title_justify="left")
        columns = ["peer", "state", "from", "to", "applied"] + (["disclosed"] if disclose else [])
        for col in (*columns, "detail"):
            table.add_column(col)
        for name, st, state, detail, added in results:
            cells = [name, state, str(st.start) if st else "", str(st.size) if st else "",
                     str(st.applied) if st else ""]  # fmt: skip
            if disclose:
                cells.append("" if added is None else str(added))
            table.add_row(*map(plain, cells), plain(detail))
        if not results:
            table.add_row("(no peers enrolled)", *[""] * len(columns))
        out.print(table)
        return code
