"""Browser fixtures: a three-node federation in this process with the console on 127.0.0.1:0,
Debian's chromium driven by Playwright (never a browser Playwright downloads), and a browser
context per role holding that role's officer certificate (Playwright's client_certificates).

``make test`` installs chromium if it is missing (deploy/ensure-chromium.sh); without it, and
without Playwright, these tests are skipped unless CREDITNODE_TEST_BROWSER=require.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from node.api import feeds
from node.feeds.publisher import Event
from node.local_federation import LocalFederation
from node.officers.issue import issue_officer
from node.runtime import Node
from tests.helpers import list_entry_agreement

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Response

CHROMIUM = Path("/usr/bin/chromium")
CITIES = [("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100")]
DEPT = "11370100MB0000174G"  # a Jinan department (valid check characters)
ROLES = ("officer", "operator", "auditor")
# The README's screenshots are rewritten only on request (`make screenshots`): a plain test run
# takes them too, into a scratch directory, so it never dirties the working tree.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("CREDITNODE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "creditnode-screenshots"
)


def _browser_available() -> str:
    """Why the browser tests cannot run here ("" if they can)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (make test installs Debian's chromium)"
    return ""


@pytest.fixture(scope="session")
def _browser_check() -> None:
    missing = _browser_available()
    if missing:
        if os.environ.get("CREDITNODE_TEST_BROWSER") == "require":
            pytest.fail(f"browser tests required: {missing}")
        pytest.skip(missing)


async def list_entry(node: Node, entry: feeds.ListEntry) -> None:
    """Publish *entry* on *node*'s feed and sign a checkpoint over it."""
    await node.publisher.append([Event(uuid.uuid4().hex, feeds.EVENT_TYPE_ADD, entry)])
    await node.publisher.sign_checkpoint()


@pytest.fixture
async def fed(tmp_path: Path, _browser_check: None) -> AsyncIterator[LocalFederation]:
    """Jinan, Lanzhou and Taiyuan with officer listeners and consoles; Lanzhou and Taiyuan
    share their reports with Jinan for licensing and procurement."""
    federation = LocalFederation(
        tmp_path / "fed", CITIES, heartbeat=False, subscribe=False, officers=True, console=True
    )
    async with federation:
        for name in ("lanzhou", "taiyuan"):
            node = federation[name]
            agreements = node.home.paths.root / "agreements"
            agreements.mkdir(exist_ok=True)
            (agreements / "jinan.toml").write_text(
                list_entry_agreement(name, "jinan"), encoding="utf-8"
            )
            node.border.refresh(force=True)
        await federation["jinan"].heartbeat.beat_once()
        yield federation


@dataclass
class Credential:
    """One officer's certificate and key as PEM files, and the officer's id."""

    role: str
    cert: Path
    key: Path
    officer_id: str


async def issue(node: Node, fed: LocalFederation, role: str, directory: Path) -> Credential:
    """An officer credential of *role* at *node*, as `creditnode officer add` issues it."""
    credential, record = await issue_officer(
        node.home, node.store, name=f"{role} 张", department=DEPT, role=role,
        ca_dir=fed.ca_dir,
    )  # fmt: skip
    cert_pem, key_pem, _ca = credential.pem()
    cert, key = _write_pem(directory, role, cert_pem, key_pem)
    return Credential(role, cert, key, record.id)


def _write_pem(directory: Path, role: str, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    """The PEM files Playwright reads (the key readable by this user only)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{role}.crt", directory / f"{role}.key"
    cert.write_bytes(cert_pem)
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    return cert, key


@dataclass
class Watched:
    """Everything a browser context showed: the URLs it visited or fetched, its console
    messages and the bodies of the responses it got (checked for raw IDs by the tests)."""

    urls: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    bodies: list[asyncio.Task[str]] = field(default_factory=list)

    def response(self, response: Response) -> None:
        self.bodies.append(asyncio.ensure_future(_body(response)))

    async def everything(self) -> str:
        """URLs, console messages and every response body so far, as one text."""
        texts = await asyncio.gather(*self.bodies)
        return "\n".join([*self.urls, *self.console, *texts])


async def _body(response: Response) -> str:
    with contextlib.suppress(Exception):  # a redirect or a download keeps no body here
        return (await response.body()).decode("utf-8", "replace")
    return ""


@dataclass
class Console:
    """The console of one node and a Chromium browser to open it with."""

    node: Node
    browser: Browser
    credentials: dict[str, Credential]
    watched: Watched = field(default_factory=Watched)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.node.console_port}"

    async def context(self, role: str | None) -> BrowserContext:
        """A browser context holding *role*'s certificate (None: no certificate at all)."""
        certs: list[Any] = []
        if role is not None:
            cred = self.credentials[role]
            certs = [{"origin": self.url, "certPath": str(cred.cert), "keyPath": str(cred.key)}]
        # The node's certificate is issued by the federation CA, which Chromium does not hold:
        # the tests trust the TLS they set up themselves.
        ctx = await self.browser.new_context(
            client_certificates=certs, ignore_https_errors=True, accept_downloads=True,
            locale="zh-CN", viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        ctx.on("page", self._watch)
        return ctx

    def _watch(self, page: Page) -> None:
        page.on("request", lambda r: self.watched.urls.append(r.url))
        page.on("framenavigated", lambda f: self.watched.urls.append(f.url))
        page.on("response", self.watched.response)

        def message(m: ConsoleMessage) -> None:
            self.watched.console.append(m.text)

        page.on("console", message)

    async def page(self, role: str | None) -> Page:
        return await (await self.context(role)).new_page()


ConsoleFactory = Callable[[str], Awaitable[Console]]


@pytest.fixture
async def browser(_browser_check: None) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        # Debian's chromium, as installed by make test (Playwright downloads no browser).
        found = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield found
        finally:
            await found.close()


@pytest.fixture
def console(fed: LocalFederation, browser: Browser, tmp_path: Path) -> ConsoleFactory:
    """``await console("jinan")``: that node's console, with a credential for every role."""

    async def make(name: str) -> Console:
        node = fed[name]
        assert node.console_port, "the node serves no console"
        creds = {r: await issue(node, fed, r, tmp_path / "creds" / name) for r in ROLES}
        return Console(node, browser, creds)

    return make


def screenshot_path(name: str) -> Path:
    """Where a main page's screenshot is kept (deterministic names, for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
