"""The console's HTTPS listener: uvicorn over TLS with client certificates required, verified
against this node's CA only (as the officer listener: never the peers' CAs).

uvicorn does not put the peer certificate in the ASGI scope, so the HTTP protocol is
subclassed to add it as the ASGI TLS extension (``scope["extensions"]["tls"]``); the app's
admission reads it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from node.config import parse_hostport
from node.errors import ConfigError
from node.home import Home

ASGIApp = Any  # an ASGI application (uvicorn and starlette type it each their own way)


def tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension of one connection (client chain as PEM; None without TLS)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None if chain else "no client certificate",
        "tls_version": None,
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


class TlsH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, adding each connection's TLS details to every scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_extension(transport.get_extra_info("ssl_object"))
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            if tls is not None and scope["type"] in ("http", "websocket"):
                scope = dict(scope)
                scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await app(scope, receive, send)

        self.app = with_tls


def server_context(home: Home) -> ssl.SSLContext:
    """TLS 1.2+ with the node's certificate; client certificates required, this node's CA
    the only root (an officer credential is issued by it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(home.paths.tls_cert, home.paths.tls_key)
    context.load_verify_locations(cadata=home.tls.ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class ConsoleServer:
    """One uvicorn server on the node's loop: start() binds, stop() drains within a grace."""

    def __init__(self, app: ASGIApp, home: Home, listen: str) -> None:
        self._host, self._port = parse_hostport(listen)
        self._listen = listen
        context = server_context(home)
        config = uvicorn.Config(
            app,
            host=self._host,
            port=self._port,
            http=TlsH11Protocol,
            lifespan="off",
            # Paths are logged by the node's own middleware, never uvicorn's access log.
            access_log=False,
            log_config=None,
            log_level=logging.WARNING,
            server_header=False,
            proxy_headers=False,  # no proxy is trusted to name the client
            ssl_context_factory=lambda _config, _default: context,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._loop_task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; ConfigError naming the address if it cannot bind."""
        config = self._server.config
        if not config.loaded:
            config.load()
        # What Server.serve() would set before startup (lifespan "off": no events sent).
        self._server.lifespan = config.lifespan_class(config)
        try:
            await self._server.startup()
        except (OSError, SystemExit):
            raise ConfigError(f"cannot serve the console on {self._listen} (taken?)") from None
        servers = getattr(self._server, "servers", [])
        if not self._server.started or not servers:
            raise ConfigError(f"cannot serve the console on {self._listen} (taken?)")
        self.port = int(servers[0].sockets[0].getsockname()[1])
        self._loop_task = asyncio.get_running_loop().create_task(
            self._server.main_loop(), name="console"
        )
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new connections, let requests in flight finish within *grace*, then close."""
        if self._loop_task is None:
            return
        self._server.config.timeout_graceful_shutdown = max(int(grace), 0)
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        self._loop_task = None
        try:
            await asyncio.wait_for(self._server.shutdown(), grace + 1.0)
        except TimeoutError:
            self._server.force_exit = True
        self.port = 0
