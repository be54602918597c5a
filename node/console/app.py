"""The console's ASGI app: admission by officer certificate, roles, sessions, CSRF and the
security headers, each decided in one place here; pages come from the page modules.

Layers, outermost first (every response passes all of them):

1. headers: CSP (no inline script or style), frame, referrer and cache rules;
2. admission: the client certificate from the TLS extension through the officer gate (the
   officer listener's decision: registered, fingerprint as issued, not revoked, not expired),
   on every request; a refusal is audited;
3. session: a signed cookie bound to the certificate, with an absolute lifetime;
4. roles: a path under a section prefix opens only for the roles node.console.roles allows;
5. CSRF: every POST carries the session's token in its form (checked here, once).
"""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import grpc
import jinja2
import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from node.audit.entry import AuditEntry, now_us, uuid7
from node.audit.log import AuditLog
from node.console import i18n
from node.console.roles import ROLE_SECTIONS, SECTIONS, home_of, may_open
from node.home import Home
from node.officers.check import Checker
from node.officers.gate import Officer, OfficerGate, OfficerRefused
from node.peers.directory import PeerDirectory
from node.storage import Store

log = structlog.get_logger("creditnode.console")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
# The page modules the app includes when present (each exposes routes(deps)).
PAGE_MODULES: Final = ("officer_pages", "operator_pages", "auditor_pages")

COOKIE: Final = "__Host-creditnode-console"  # __Host-: Secure, Path=/, no Domain
CSRF_FIELD: Final = "csrf"
MAX_BODY: Final = 8 * 1024 * 1024
UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_UNAUTHENTICATED: Final = grpc.StatusCode.UNAUTHENTICATED
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class ConsoleDeps:
    """What the pages read: the same services the CLI and the officer listener use."""

    home: Home
    store: Store
    audit: AuditLog
    gate: OfficerGate
    directory: PeerDirectory
    # The federated check (the officer listener's Checker); None if the node serves none.
    checker: Checker | None = None
    # The audit's keyed-commitment secret (subjects are recorded as commitments).
    secret: bytes = b""
    session_seconds: float = 1800.0
    # The running node (node.runtime.Node) for pages that read its state; None without one.
    node: Any = None
    # Signs session cookies: random per process (a restart ends every session).
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


@dataclass
class Session:
    fingerprint: str
    csrf: str
    lang: str
    fresh: bool = False  # issued on this request: the response sets the cookie


# ------------------------------------------------------------------------------ templates

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name: values are text, never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def officer_of(request: Request) -> Officer:
    """The officer the admission layer admitted for this request."""
    officer = request.scope.get("state", {}).get("officer")
    if not isinstance(officer, Officer):
        raise RuntimeError("console page reached without an admitted officer")
    return officer


def session_of(request: Request) -> Session:
    session = request.scope.get("state", {}).get("session")
    if not isinstance(session, Session):
        raise RuntimeError("console page reached without a session")
    return session


def nav_for(role: str) -> list[tuple[str, str]]:
    """(path, catalogue key) of every section the role opens, in the sections' order."""
    allowed = ROLE_SECTIONS.get(role, frozenset())
    return [(prefix, f"nav.{s}") for s, prefix in SECTIONS.items() if s in allowed]


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """A page: the template with the officer, nav, language and CSRF token added."""
    officer = officer_of(request)
    session = session_of(request)
    ctx = {
        "t": partial(i18n.translate, session.lang),
        "lang": session.lang,
        "officer": officer,
        "nav": nav_for(officer.role),
        "csrf": session.csrf,
        "csrf_field": CSRF_FIELD,
        "path": request.url.path,
        **(context or {}),
    }
    return HTMLResponse(_env.get_template(template).render(ctx), status_code=status)


def error_page(request: Request, status: int, key: str) -> HTMLResponse:
    return render(request, "error.html", {"message_key": key}, status)


# ------------------------------------------------------------------------------ layers


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")


class Headers:
    """The security headers on every response; no-store on all but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.extend(SECURITY_HEADERS)
                headers.append(
                    (b"cache-control", b"private, max-age=300" if static else b"no-store")
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def client_pem(scope: Scope) -> bytes | None:
    """The client certificate (PEM) the TLS extension carries, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0].encode("ascii") if chain else None


class Admission:
    """Every request through the officer gate; refusals are audited, as at the listener."""

    def __init__(self, app: ASGIApp, gate: OfficerGate, audit: AuditLog) -> None:
        self.app = app
        self.gate = gate
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets, no lifespan
        pem = client_pem(scope)
        try:
            if pem is None:
                raise OfficerRefused(_UNAUTHENTICATED, "no client certificate")
            officer = await self.gate.admit({"x509_pem_cert": [pem]})
        except OfficerRefused as refused:
            await self._record(refused, str(scope.get("method", "")))
            status = 401 if refused.code == _UNAUTHENTICATED else 403
            await _plain(status, f"refused: {refused}")(scope, receive, send)
            return
        except ValueError:  # a certificate that does not parse (TLS verified it, still)
            await _plain(403, "refused: unreadable certificate")(scope, receive, send)
            return
        scope.setdefault("state", {})["officer"] = officer
        await self.app(scope, receive, send)

    async def _record(self, refused: OfficerRefused, method: str) -> None:
        try:  # recorded before the refusal is sent
            await self.audit.record(
                AuditEntry(
                    exchange=uuid7(), at_us=now_us(), direction="in", kind="refusal",
                    outcome="refused", method=f"console {method}"[:200],
                    officer=refused.officer, reason=refused.why[:300],
                )
            )  # fmt: skip
        except Exception:
            log.exception("console refusal not recorded")


class Roles:
    """Sections by role (node.console.roles), before any page runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        officer: Officer = scope["state"]["officer"]
        if not may_open(officer.role, str(scope.get("path", ""))):
            log.info("console section refused", officer=officer.id, role=officer.role)
            request = Request(scope)
            await error_page(request, 403, "error.forbidden")(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Sessions:
    """A signed cookie bound to the certificate's fingerprint, valid for session_seconds from
    issue; a missing, altered, expired or foreign cookie gives a fresh session (and token)."""

    def __init__(self, app: ASGIApp, key: bytes, lifetime: float) -> None:
        self.app = app
        self.lifetime = lifetime
        self.serializer = URLSafeTimedSerializer(key, salt="creditnode-console-session")

    def load(self, cookie: str | None, fingerprint: str) -> Session | None:
        if not cookie:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=int(self.lifetime))
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or data.get("fp") != fingerprint:
            return None
        csrf, lang = data.get("csrf"), data.get("lang")
        if not isinstance(csrf, str) or not isinstance(lang, str):
            return None
        return Session(fingerprint, csrf, i18n.language(lang))

    def cookie(self, session: Session) -> bytes:
        value = self.serializer.dumps(
            {"fp": session.fingerprint, "csrf": session.csrf, "lang": session.lang}
        )
        return (
            f"{COOKIE}={value}; Path=/; Max-Age={int(self.lifetime)}; Secure; HttpOnly; "
            "SameSite=Strict"
        ).encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        officer: Officer = scope["state"]["officer"]
        request = Request(scope)
        session = self.load(request.cookies.get(COOKIE), officer.fingerprint)
        if session is None:
            session = Session(officer.fingerprint, secrets.token_urlsafe(32), i18n.DEFAULT, True)
        scope["state"]["session"] = session

        async def with_cookie(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and session.fresh:
                cookie = (b"set-cookie", self.cookie(session))
                message["headers"] = [*message.get("headers", []), cookie]
            await send(message)

        await self.app(scope, receive, with_cookie)


class Csrf:
    """Every unsafe request carries the session's token in its form and comes from this
    origin; the body is read here (bounded) and replayed to the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") not in UNSAFE:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session: Session = scope["state"]["session"]
        origin = request.headers.get("origin")
        # Under Referrer-Policy no-referrer Chromium sends "Origin: null" with its own forms:
        # no origin to compare; the session-bound token (and SameSite=Strict) decides.
        if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get(
            "host", ""
        ):
            await error_page(request, 403, "error.csrf")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await error_page(request, 413, "error.too_large")(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def replay() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        token = ""
        try:
            async with Request(scope, replay).form() as form:
                value = form.get(CSRF_FIELD)
                token = value if isinstance(value, str) else ""
        except Exception:  # a body that is no form carries no token
            token = ""
        if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            log.info("console form refused: CSRF token", officer=scope["state"]["officer"].id)
            await error_page(request, 403, "error.csrf")(scope, receive, send)
            return
        sent = False

        async def once() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, once, send)


# ------------------------------------------------------------------------------ pages


def safe_next(value: object) -> str:
    """A local path to go back to ("/" for anything else: no open redirect)."""
    local = isinstance(value, str) and value.startswith("/") and not value.startswith("//")
    if local and isinstance(value, str) and "\\" not in value and len(value) <= 500:
        return value
    return "/"


async def home_page(request: Request) -> Response:
    officer = officer_of(request)
    start = home_of(officer.role)
    if start != "/":
        return RedirectResponse(start, status_code=303)
    return render(request, "home.html")


async def switch_language(request: Request) -> Response:
    form = await request.form()
    session = session_of(request)
    session.lang = i18n.language(str(form.get("lang", "")))
    session.fresh = True  # the cookie is re-issued with the new language
    return RedirectResponse(safe_next(form.get("next")), status_code=303)


def page_routes(deps: ConsoleDeps) -> list[BaseRoute]:
    """The routes of every page module present (console2's modules may not exist yet)."""
    routes: list[BaseRoute] = []
    for name in PAGE_MODULES:
        module_name = f"{__package__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        routes.extend(module.routes(deps))
    return routes


def build_app(deps: ConsoleDeps) -> ASGIApp:
    """The console app: base routes, the page modules' routes, static files, all layers."""
    routes: list[BaseRoute] = [
        Route("/", home_page),
        Route("/lang", switch_language, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *page_routes(deps),
    ]
    pages = Starlette(routes=routes)
    pages.state.deps = deps

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "error.not_found")

    pages.add_exception_handler(404, not_found)
    app: ASGIApp = Csrf(pages)
    app = Roles(app)
    app = Sessions(app, deps.session_key, deps.session_seconds)
    app = Admission(app, deps.gate, deps.audit)
    return Headers(app)
