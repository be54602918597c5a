"""The metrics listener: ``/metrics`` (prometheus_client's WSGI app over the node's own
registry), ``/healthz`` and ``/readyz``, served by wsgiref in a daemon thread, as
``prometheus_client.start_http_server`` does. Plain HTTP, no client certificates: it exposes
counts and states only, never a data value, and binds to localhost unless configured.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from node.config import parse_hostport
from node.errors import ConfigError

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
POLL_SECONDS = 0.05  # how soon the serving thread sees a stop: part of "stops in a second"


def _plain(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))])  # fmt: skip
    return [data]


def health_app(registry: CollectorRegistry, ready: Callable[[], str]) -> WsgiApp:
    """``/healthz``: 200 while the process runs; ``/readyz``: 200 when *ready* returns "",
    else 503 with its reason; anything else: the metrics app."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            problem = ready()
            if problem:
                return _plain(start_response, "503 Service Unavailable", f"not ready: {problem}\n")
            return _plain(start_response, "200 OK", "ready\n")
        if path in ("/metrics", "/"):
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        return _plain(start_response, "404 Not Found", "not found\n")

    return app


class MetricsListener:
    """The HTTP listener of one node; :meth:`start` binds (ConfigError naming the address if
    it cannot), :meth:`stop` closes it."""

    def __init__(self, listen: str, app: WsgiApp) -> None:
        self.listen = listen
        self.app = app
        self.port = 0
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        host, port = parse_hostport(self.listen)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            httpd = make_server(host, port, self.app, Server, handler_class=_SilentHandler)
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            raise ConfigError(f"cannot listen for metrics on {self.listen}: {why}") from None
        self.port = int(httpd.server_port)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(POLL_SECONDS,), name="metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (blocks up to POLL_SECONDS: call in a thread)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(1.0)
