"""A running node: its store, peer directory, gRPC server and heartbeat, started and stopped
as one. ``creditnode serve``, the demo and the tests all run nodes through this class."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from keys import PeerBundle
from node import sdnotify
from node.actions.log import ActionsLog
from node.actions.pull import ActionsError, pull_actions
from node.api import (
    actions,
    actions_rpc,
    audit,
    audit_rpc,
    feeds,
    feeds_rpc,
    objections,
    objections_rpc,
    pb,
    pseudonyms,
    pseudonyms_rpc,
    query,
    query_rpc,
    reports,
    reports_rpc,
    rpc,
    witness,
    witness_rpc,
)
from node.audit.local import AuditSigners
from node.audit.log import AuditLog, load_secret
from node.border import Border, BorderInterceptor, Exit
from node.config import parse_hostport
from node.errors import ConfigError
from node.feeds.catalogue import list_kinds
from node.feeds.expiry import run_expiry
from node.feeds.measures import agreement_check
from node.feeds.publisher import Publisher
from node.feeds.rederive import rederive_pseudonyms
from node.feeds.subscriber import follow_forever
from node.home import Home, load_home
from node.keys.signers import FeedSigners
from node.metrics import NodeMetrics
from node.metrics.collect import ScrapeCollector, Snapshot, store_answers, take_snapshot
from node.metrics.history import HistorySampler
from node.metrics.http import MetricsListener, health_app
from node.metrics.interceptor import MetricsInterceptor
from node.officers.check import Checker, own_reports
from node.officers.listener import start_officer_listener

if TYPE_CHECKING:
    from node.console.server import ConsoleServer
from node.peers.certificates import certificate_expiries
from node.peers.certificates import warnings as expiry_warnings
from node.peers.contact import InboundContacts, RunInfo, remove_run_info, write_run_info
from node.peers.directory import DirectoryChange, KnownPeer, PeerDirectory
from node.peers.enrollment import enroll
from node.peers.gate import Caller, GateInterceptor, PeerGate
from node.peers.heartbeat import Heartbeat
from node.peers.roots import RootRefresher
from node.peers.transport import SERVER_OPTIONS, server_credentials
from node.reports.build import ReportDeps
from node.services.actions import ActionsServicer
from node.services.audit import AuditServicer
from node.services.feed import FeedServicer
from node.services.health import StoppingHealth
from node.services.info import NodeServicer
from node.services.objection import ObjectionServicer
from node.services.pseudonym import PseudonymServicer, TokenBuckets
from node.services.query import QueryServicer
from node.services.report import ReportServicer
from node.services.witness import WitnessServicer
from node.storage import Store
from node.verification.background import BackgroundVerifier
from node.witness.gossip import Found, Gossip
from node.witness.requester import CosignRequester
from node.witness.witness import ProvenFork, Witness

log = structlog.get_logger("creditnode.node")

STOP_TASKS_SECONDS = 5.0

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["NodeService"].full_name,
    feeds.DESCRIPTOR.services_by_name["FeedService"].full_name,
    query.DESCRIPTOR.services_by_name["QueryService"].full_name,
    reports.DESCRIPTOR.services_by_name["ReportService"].full_name,
    pseudonyms.DESCRIPTOR.services_by_name["PseudonymService"].full_name,
    audit.DESCRIPTOR.services_by_name["AuditService"].full_name,
    actions.DESCRIPTOR.services_by_name["ActionsService"].full_name,
    objections.DESCRIPTOR.services_by_name["ObjectionService"].full_name,
    witness.DESCRIPTOR.services_by_name["WitnessService"].full_name,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
)


class Node:
    def __init__(self, home: Home, store: Store, publisher: Publisher, audit: AuditLog) -> None:
        self.home = home
        self.store = store
        self.publisher = publisher
        self.audit = audit
        self._followers: dict[str, asyncio.Task[None]] = {}
        # The record each follower was started with: a change of it rebuilds the follower.
        self._following: dict[str, KnownPeer] = {}
        self._enrollment_changed = asyncio.Event()
        self.directory = PeerDirectory(store, home.settings.federation, home.tls.ca_pem)
        self.directory.add_listener(self._on_enrollment_change)
        # Peers' roots fetched in the background: when a peer notifies, or presents a
        # certificate its held root does not list.
        self.roots = RootRefresher(home.tls, self.directory)
        self.gate = PeerGate(
            home.identity,
            home.tls.ca_certificate,
            self.directory,
            on_admit=self._seen,
            on_stale_root=self.roots.schedule,
        )
        # Set as the stop begins: open streams (Subscribe, health Watch) end instead of
        # holding the stop for the whole grace period (peers resume from their cursors).
        self.stopping = asyncio.Event()
        self.health = StoppingHealth(self.stopping)
        self.border = Border(
            home.paths.root / "agreements",
            pseudonym_key=home.pseudonym_keys.current,
            reidentification_threshold=home.settings.reidentification_threshold,
            check=agreement_check(home.paths.root, lambda: list_kinds(home.catalogue_path)),
        )
        self.audit_secret = load_secret(home.paths.root)
        self.exit = Exit(self.border, audit, self.audit_secret)
        self.gate.on_refuse = self.exit.refused_at_gate
        # Metrics (issue 16): this node's own registry; disclosures counted as they leave.
        self.metrics = NodeMetrics()
        self.exit.observers.append(
            lambda call, _message, out: self.metrics.released(call.peer, out.forms, out.values)
        )
        self.metrics_port = 0
        self._metrics_listener: MetricsListener | None = None
        self._metrics_collecting = False
        # The metrics history `status --html` plots (sampled while serving; 0: off).
        self.history = HistorySampler(
            store, self.metrics, self._metrics_snapshot,
            interval=home.settings.metrics_history_seconds,
            keep_days=home.settings.metrics_history_days,
        )  # fmt: skip
        self.heartbeat = Heartbeat(home.tls, self.directory, home.settings.heartbeat_seconds)
        # Stored data re-checked in the background; the own feed is not served while it fails.
        self.verifier = BackgroundVerifier(
            home,
            store,
            share=home.settings.verify_io_share,
            interval=home.settings.verify_interval_seconds,
        )
        # Witnessing (issue 13): cosign peers' checkpoints, have ours cosigned, gossip.
        self.witness = Witness(home, store, on_fork=self._witnessed_fork)
        # Never the per-partner actions logs: a witness (a third city) would learn their sizes.
        self.cosigning = CosignRequester.for_origins(
            home.tls, store, self.directory.peers, [publisher.origin, audit.origin]
        )
        self.gossip = Gossip(home.tls, store, self.directory.peers, on_fork=self._gossiped_fork)
        # Signed reports (issue 14): GetReport for peers, build_report for the node's own.
        self.report_deps = ReportDeps.of(home, publisher)
        self.started_at = dt.datetime.now(dt.UTC)
        self.port = 0
        self._server: grpc.aio.Server | None = None
        # The officers' own listener (setting officer_listen; issue 14), apart from peers.
        self.officer_port = 0
        self._officer_server: grpc.aio.Server | None = None
        self.checker: Checker | None = None
        # The console (setting console_listen; issue 18): HTTPS for officers' browsers.
        self.console_port = 0
        self._console: ConsoleServer | None = None
        self._console_checker: Checker | None = None  # its own, without an officer listener
        # The actions log (issue 15): opened at start; responses, hits, lifted measures.
        self.actions: ActionsLog | None = None
        self._pulling = asyncio.Lock()
        self._last_seen_write: dict[str, float] = {}
        # Inbound calls are shown apart ("last called us"): reachability is outbound only.
        self.inbound = InboundContacts(home.paths.root)
        self._background: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._reloading = asyncio.Lock()

    @classmethod
    async def open(cls, root: Path, *, database_url: str | None = None) -> Node:
        home = load_home(root)
        store = await Store.open(database_url or home.database_url)
        try:
            publisher = await Publisher.open(store, home.identity.uri, FeedSigners.of_home(home))
            audit = await AuditLog.open(store, home.identity.uri, AuditSigners(home))
        except BaseException:
            await store.close()
            raise
        return cls(home, store, publisher, audit)

    @property
    def name(self) -> str:
        return self.home.settings.name

    @property
    def endpoint(self) -> str:
        host, _ = parse_hostport(self.home.settings.listen)
        return f"{host}:{self.port}"

    @property
    def officer_endpoint(self) -> str:
        """Where officers dial (HOST:PORT of officer_listen as bound); "" if none."""
        if not self.officer_port:
            return ""
        host, _ = parse_hostport(self.home.settings.officer_listen)
        return f"{host}:{self.officer_port}"

    @property
    def console_url(self) -> str:
        """Where browsers open the console (https://HOST:PORT/); "" if none."""
        if not self.console_port:
            return ""
        host, _ = parse_hostport(self.home.settings.console_listen)
        shown = f"[{host}]" if ":" in host else host
        return f"https://{shown}:{self.console_port}/"

    async def start(
        self,
        *,
        heartbeat: bool = True,
        subscribe: bool = True,
        expire: bool = True,
        verify: bool = True,
        extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
    ) -> None:
        """Bind and serve. Raises ConfigError naming the address if the port is taken."""
        # Own pseudonyms of an older key generation (a rotation, or a home from before
        # per-origin keys) are re-derived before anyone can ask; then the old shared key goes.
        await rederive_pseudonyms(self.publisher, self.home.pseudonym_key)
        old_key = self.home.paths.old_alliance_key
        if old_key.exists():
            old_key.unlink()
            log.info("old shared alliance key deleted", file=str(old_key))
        await self.directory.refresh()
        await self.verifier.load()  # a finding kept from before: the own feed stays refused
        if self.actions is None:
            self.actions = await ActionsLog.open(
                self.store, self.home.identity.uri, FeedSigners.of_home(self.home),
                suspend_on_objection=self.home.settings.suspend_on_objection,
            )  # fmt: skip
        # The gate admits the caller; then every response passes the border's one exit.
        # Metrics outermost: a call the gate refuses is counted too.
        server = grpc.aio.server(
            interceptors=[
                MetricsInterceptor(self.metrics),
                GateInterceptor(self.gate),
                BorderInterceptor(self.exit),
            ],
            options=SERVER_OPTIONS,
        )
        rpc.add_NodeServiceServicer_to_server(
            NodeServicer(self.home, self.directory.repository, self.started_at, self.roots),
            server,
        )
        feeds_rpc.add_FeedServiceServicer_to_server(
            FeedServicer(
                self.publisher,
                self.border,
                refuse=self.verifier.own_failure,
                stopping=self.stopping,
            ),
            server,
        )
        query_rpc.add_QueryServiceServicer_to_server(QueryServicer(self.publisher), server)
        reports_rpc.add_ReportServiceServicer_to_server(ReportServicer(self.report_deps), server)
        settings = self.home.settings
        pseudonyms_rpc.add_PseudonymServiceServicer_to_server(
            PseudonymServicer(
                self.home.pseudonym_keys.current,
                self.exit,
                TokenBuckets(settings.pseudonym_rate, settings.pseudonym_burst),
            ),
            server,
        )
        witness_rpc.add_WitnessServiceServicer_to_server(WitnessServicer(self.witness), server)
        audit_rpc.add_AuditServiceServicer_to_server(
            AuditServicer(self.audit, self.home.identity.uri), server
        )
        actions_rpc.add_ActionsServiceServicer_to_server(ActionsServicer(self.actions), server)
        objections_rpc.add_ObjectionServiceServicer_to_server(
            ObjectionServicer(self.publisher), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(SERVICE_NAMES, server)
        if extra_handlers:
            server.add_generic_rpc_handlers(tuple(extra_handlers))
        creds = server_credentials(
            self.home.tls, self.directory.trust_roots_pem, lambda: self.directory.generation
        )
        listen = self.home.settings.listen
        try:
            self.port = server.add_secure_port(listen, creds)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise ConfigError(f"cannot listen on {listen}: {_bind_problem(listen)}")
        await server.start()
        self._server = server
        # Where `status` (another process) finds the listener to check `serving`.
        since = self.started_at.isoformat(timespec="seconds")
        write_run_info(self.home.paths.root, RunInfo(os.getpid(), self.port, listen, since))
        if self.home.settings.officer_listen:
            try:
                started = await start_officer_listener(
                    self.home, self.store, self.directory, self.audit, self.audit_secret,
                    own_reports(self.report_deps),
                )  # fmt: skip
                self._officer_server, self.officer_port, self.checker = started
                self.checker.actions = self.actions  # a check's hits on partners' entries
            except BaseException:
                await server.stop(0)
                self._server = None
                raise
        if self.home.settings.metrics_listen:
            try:
                self._start_metrics()
            except BaseException:
                if self._officer_server is not None:
                    await self._officer_server.stop(0)
                    self._officer_server = None
                await server.stop(0)
                self._server = None
                raise
        if self.home.settings.console_listen:
            # Loaded only when serving it (starlette, uvicorn and jinja2 cost start-up time).
            from node.console.serve import start_console

            try:
                self._console, checker = await start_console(self, self.checker)
                self.console_port = self._console.port
                self._console_checker = checker if checker is not self.checker else None
            except BaseException:
                if self._metrics_listener is not None:
                    await asyncio.to_thread(self._metrics_listener.stop)
                    self._metrics_listener = None
                if self._officer_server is not None:
                    await self._officer_server.stop(0)
                    self._officer_server = None
                await server.stop(0)
                self._server = None
                raise
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._spawn(self.publisher.run(), "publisher")
        if verify:
            self._spawn(self.verifier.run(), "verify")
        self._spawn(self.audit.run(), "audit")
        self._spawn(self.actions.run(), "actions")
        # Enrollment changes made by any process reach this node within WATCH_SECONDS.
        self._spawn(self.directory.watch(), "enrollment")
        if expire:
            self._spawn(run_expiry(self.publisher), "expiry")
        if heartbeat:
            self.heartbeat.start()
        self._spawn(self.cosigning.run(), "cosigning")
        if self.home.settings.metrics_history_seconds:
            self._spawn(self.history.run(), "metrics-history")
        if subscribe:
            self._spawn(self._supervise_followers(), "followers")
            self._spawn(self.gossip.run(), "gossip")
            self._spawn(self._pull_actions_forever(), "actions-pull")
        log.info(
            "node serving",
            node=self.home.identity.uri,
            endpoint=self.endpoint,
            database=self.store.backend,
            peers=len(self.directory.peers()),
            metrics=self.metrics_endpoint or "off",
            console=self.console_url or "off",
        )
        records = [p.record for p in self.directory.peers()]
        for expiring in expiry_warnings(certificate_expiries(self.home.tls, records)):
            log.warning("certificate expiry", detail=expiring.describe())

    @property
    def metrics_endpoint(self) -> str:
        """Where /metrics, /healthz and /readyz answer (HOST:PORT as bound); "" if off."""
        if not self.metrics_port:
            return ""
        host, _ = parse_hostport(self.home.settings.metrics_listen)
        return f"[{host}]:{self.metrics_port}" if ":" in host else f"{host}:{self.metrics_port}"

    def _start_metrics(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._metrics_collecting:  # the scrape-time collector, once per node
            self.metrics.registry.register(ScrapeCollector(loop, self._metrics_snapshot))
            self._metrics_collecting = True
        listener = MetricsListener(
            self.home.settings.metrics_listen,
            health_app(self.metrics.registry, lambda: self._not_ready(loop)),
        )
        listener.start()
        self._metrics_listener = listener
        self.metrics_port = listener.port

    async def _metrics_snapshot(self) -> Snapshot:
        records = [p.record for p in self.directory.peers()]
        return await take_snapshot(self.home, self.store, records)

    def _not_ready(self, loop: asyncio.AbstractEventLoop) -> str:
        """Why this node is not ready ("" if it is): stopping, not serving, or its store does
        not answer within a second. Called from the metrics listener's thread."""
        if self.stopping.is_set():
            return "stopping"
        if self._server is None:
            return "not serving"
        try:
            asyncio.run_coroutine_threadsafe(store_answers(self.store), loop).result(1.0)
        except Exception:
            return "the store does not answer"
        return ""

    async def pull_actions(self) -> dict[str, str]:
        """Pull every enrolled partner's actions log once (:mod:`node.actions.pull`); per
        partner, "" or why its pull failed (nothing of a failing answer is kept)."""
        async with self._pulling:  # the periodic pull and an explicit one never interleave
            return await self._pull_actions_once()

    async def _pull_actions_once(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        for peer in self.directory.peers():
            try:
                await pull_actions(
                    self.home.tls, self.store, peer, self.home.identity.uri, audit=self.audit
                )
                failed[peer.identity.node] = ""
            except ActionsError as exc:
                failed[peer.identity.node] = str(exc)
        return failed

    async def _pull_actions_forever(self) -> None:
        while True:
            await asyncio.sleep(self.home.settings.actions_pull_seconds)
            try:
                for name, problem in (await self.pull_actions()).items():
                    if problem:
                        log.warning("partner actions not pulled", peer=name, reason=problem)
            except Exception:  # a busy database must not end the loop
                log.exception("actions pull failed")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_enrollment_change(self, change: DirectoryChange) -> None:
        self._enrollment_changed.set()

    async def _supervise_followers(self) -> None:
        """One feed follower per enrolled peer: started, stopped, and rebuilt with the new
        record when a peer's endpoint, CA or feed key changes, as soon as enrollment does."""
        while True:
            self._enrollment_changed.clear()
            peers = {p.identity.node: p for p in self.directory.peers()}
            stale = [
                name
                for name in self._followers
                if name not in peers
                or name not in self._following
                or _follows(peers[name]) != _follows(self._following[name])
            ]
            if stale:
                tasks = [self._followers.pop(name) for name in stale]
                for name, task in zip(stale, tasks, strict=True):
                    task.cancel()
                    self._following.pop(name, None)
                    log.info(
                        "feed follower rebuilt" if name in peers else "feed follower stopped",
                        peer=name,
                    )
                # One follower per mirror at a time: the old one is gone before the new starts.
                await asyncio.wait(tasks, timeout=5.0)
            for name, peer in peers.items():
                if name not in self._followers or self._followers[name].done():
                    self._followers[name] = asyncio.create_task(
                        follow_forever(self.home.tls, self.store, peer, audit=self.audit),
                        name=f"follow-{name}",
                    )
                    self._following[name] = peer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enrollment_changed.wait(), 1.0)

    def _stop_following(self, name: str) -> None:
        """A fork found by the witness or by gossip: the running follower of *name* stops now
        (a new one finds the feed forked and does not apply it)."""
        task = self._followers.get(name)
        if task is not None:
            task.cancel()

    def _witnessed_fork(self, fork: ProvenFork) -> None:
        for peer in self.directory.peers():
            if peer.identity.uri == fork.origin:
                self._stop_following(peer.identity.node)

    def _gossiped_fork(self, found: Found) -> None:
        self._stop_following(found.peer)

    def following(self, name: str) -> KnownPeer | None:
        """The enrolled record the running follower of *name*'s feed was started with."""
        return self._following.get(name)

    async def enroll(self, bundle: PeerBundle, *, replace: bool = False) -> bool:
        """Enroll a peer and let the running server admit it at once; a re-enrollment cuts the
        peer's open calls if its keys changed and rebuilds its follower. True if new."""
        enrolled = await enroll(self.home, self.store, bundle, replace=replace)
        await self.directory.refresh()
        return enrolled.created

    async def remove_peer(self, name: str) -> bool:
        """Withdraw a peer's enrollment: refused from now on, its open calls cut."""
        removed = await self.directory.repository.remove(name)
        await self.directory.refresh()
        return removed

    def _seen(self, caller: Caller) -> None:
        now = time.monotonic()
        name = caller.identity.node
        if caller.is_self or now - self._last_seen_write.get(name, 0.0) < 2.0:
            return
        self._last_seen_write[name] = now
        self.inbound.called(name)

    async def stop(self, grace: float | None = None) -> None:
        """Health to NOT_SERVING, refuse new calls, let in-flight ones finish, then close."""
        if self._server is None:
            return
        grace = self.home.settings.shutdown_grace_seconds if grace is None else grace
        self.stopping.set()  # streams end now; unary calls in flight drain within the grace
        await self.health.enter_graceful_shutdown()
        await self.heartbeat.stop()
        # In-flight calls drain first, with the node's machinery (publisher, audit, actions)
        # still running under them; the background tasks end after.
        if self._console is not None:
            await self._console.stop(grace)
            self._console = None
            self.console_port = 0
        if self._console_checker is not None:
            await self._console_checker.close()
            self._console_checker = None
        if self._officer_server is not None:
            await self._officer_server.stop(grace)
            self._officer_server = None
        if self.checker is not None:
            await self.checker.close()
        await self._server.stop(grace)
        self._server = None
        remove_run_info(self.home.paths.root)
        for task in [*self._followers.values(), *self._background]:
            if task.get_name() != "seen":
                task.cancel()
        await self.roots.close()
        # Bounded: a task that does not end on cancellation (a database call that never
        # returns) must not keep the process from exiting; it is named in the log instead.
        tasks = [*self._followers.values(), *self._background]
        _, stuck = await asyncio.wait(tasks, timeout=STOP_TASKS_SECONDS) if tasks else ((), ())
        if stuck:
            log.warning("tasks still running at stop", tasks=sorted(t.get_name() for t in stuck))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.directory.settle(), STOP_TASKS_SECONDS)
        if self.actions is not None:
            try:  # the last responses and hits get their signed checkpoint
                await asyncio.wait_for(self.actions.sign_checkpoint(), STOP_TASKS_SECONDS)
            except Exception:
                log.exception("actions checkpoint not signed at stop")
        try:  # the last entries get their signed checkpoint
            await asyncio.wait_for(self.audit.close(), STOP_TASKS_SECONDS)
        except Exception:
            log.exception("audit checkpoint not signed at stop")
        await self.store.close()
        if self._metrics_listener is not None:
            await asyncio.to_thread(self._metrics_listener.stop)
            self._metrics_listener = None
            self.metrics_port = 0
        log.info("node stopped", node=self.home.identity.uri)
        self._stopped.set()

    async def reload(self) -> None:
        """Re-read what an operator edits in place (SIGHUP, systemd's ExecReload): the
        agreements, enrollment (peers' endpoints, CAs and keys) and the home's own TLS and
        pseudonym keys. Calls in flight keep going; the next ones see the new state."""
        self.border.reload()
        self.home.tls.reload()
        self.home.pseudonym_keys.reload()
        await self.directory.refresh()
        log.info("configuration reloaded", node=self.home.identity.uri)

    async def _reload_on_signal(self) -> None:
        async with self._reloading:  # two quick SIGHUPs reload twice, never at once
            if self.stopping.is_set():
                return
            sdnotify.notify(sdnotify.reloading())
            try:
                await self.reload()
            except Exception:  # a reload that fails must not end the node; it is logged
                log.exception("reload failed")
            if not self.stopping.is_set():
                sdnotify.notify(sdnotify.READY, status=f"serving on {self.endpoint}")

    async def serve_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully; SIGHUP reloads. systemd hears
        READY=1 once the signals are handled (the node is listening since start),
        RELOADING=1 and READY=1 around a reload, and STOPPING=1 at the stop."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: self._spawn(self._reload_on_signal(), "reload")
        )
        try:
            sdnotify.notify(sdnotify.READY, status=f"serving on {self.endpoint}")
            await stop.wait()
            log.info("shutdown requested", node=self.home.identity.uri)
            sdnotify.notify(sdnotify.STOPPING)
            await self.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)


def _follows(peer: KnownPeer) -> tuple[str, str, str, str]:
    """What a feed follower depends on: where to dial, whom to trust, whose signature (the
    enrolled feed key, or the pinned root)."""
    r = peer.record
    return (r.endpoint, r.ca_certificate, r.feed_key, r.root_v1_sha256)


def _bind_problem(listen: str) -> str:
    """Why the OS refuses *listen* (gRPC only says that it failed)."""
    host, port = parse_hostport(listen)
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return "address not available"
