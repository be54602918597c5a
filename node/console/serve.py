"""Starting the console with a running node (the edge node.runtime calls)."""

from __future__ import annotations

from typing import Any

from node.console.app import ConsoleDeps, build_app
from node.console.server import ConsoleServer
from node.officers.check import Checker, own_reports
from node.officers.gate import OfficerDirectory, OfficerGate


async def start_console(node: Any, checker: Checker | None) -> tuple[ConsoleServer, Checker]:
    """Bind console_listen and serve; the checker is the officer listener's if the node runs
    one, else one of the console's own (the same class, the same path to the partners).
    ConfigError naming the address if it cannot bind."""
    home = node.home
    settings = home.settings
    if checker is None:
        checker = Checker(
            home, node.directory, node.audit, node.audit_secret, own_reports(node.report_deps),
            settings.check_deadline_seconds, actions=node.actions,
        )  # fmt: skip
    # The officer listener's gate: the same decision, the same re-read of the officers table
    # when its generation moves (a revocation refuses the next request).
    gate = OfficerGate(home.identity, home.tls.ca_certificate, OfficerDirectory(node.store))
    deps = ConsoleDeps(
        home=home, store=node.store, audit=node.audit, gate=gate, directory=node.directory,
        checker=checker, secret=node.audit_secret,
        session_seconds=settings.console_session_minutes * 60, node=node,
    )  # fmt: skip
    server = ConsoleServer(build_app(deps), home, settings.console_listen)
    await server.start()
    return server, checker
