"""After a ``keys`` command published a root version: tell every enrolled peer, best effort.

Each peer then fetches and verifies the new version at once (``NodeService.NotifyRoot``)
instead of at its next sync. One line per peer; a peer that cannot be told, or a database
that cannot be read, is reported and never fails the command (the root is published either
way, and peers fetch it at their next sync).
"""

from __future__ import annotations

from pathlib import Path

from node.cli.options import out, run_coro
from node.home import load_home
from node.peers.roots import Notified, notify_enrolled
from node.storage import Store


def notify_peers_of_root(home: Path, version: int) -> None:
    """Notify every enrolled peer that root *version* is now current; print the outcomes."""
    try:
        loaded = load_home(home)
        if not loaded.settings.database_url and not loaded.paths.sqlite.exists():
            return  # a home that never served nor enrolled anyone: no peer to tell

        async def notify() -> list[Notified]:
            async with Store.opened(loaded.database_url) as store:
                return await notify_enrolled(loaded.tls, store, version)

        outcomes = run_coro(notify())
    except Exception as exc:  # never fail a command whose root is already published
        out.print(
            f"peers not notified of root v{version} ({type(exc).__name__}); they fetch it "
            "at their next sync",
            markup=False,
            soft_wrap=True,
        )
        return
    for outcome in outcomes:
        line = (
            f"notified {outcome.peer} of root v{version} ({outcome.detail})"
            if outcome.ok
            else f"{outcome.peer} not notified: {outcome.detail}; it fetches root "
            f"v{version} at its next sync"
        )
        out.print(line, markup=False, soft_wrap=True, highlight=False)
