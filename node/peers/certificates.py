"""When the certificates this node relies on expire: its own TLS certificate and CA, and each
enrolled peer's TLS certificate and CA as enrolled (from its bundle). Pure: no I/O.

Node certificates are issued for 825 days; nothing renews them. ``status`` (and ``serve`` at
start) warns from :data:`WARN_DAYS` days before one expires, and says "expired" after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from keys import load_certificate
from node.home import TlsMaterial
from node.storage import PeerRecord

WARN_DAYS = 30


@dataclass(frozen=True)
class Expiry:
    what: str  # "this node's TLS certificate", "peer lanzhou's CA", …
    not_after: dt.datetime  # UTC
    now: dt.datetime

    @property
    def left(self) -> dt.timedelta:
        return self.not_after - self.now

    @property
    def days_ago(self) -> int:
        """Whole days since it expired (0 on the day)."""
        return (self.now - self.not_after).days

    @property
    def state(self) -> str:
        """ok, expiring (within WARN_DAYS) or expired."""
        if self.left <= dt.timedelta(0):
            return "expired"
        if self.left <= dt.timedelta(days=WARN_DAYS):
            return "expiring"
        return "ok"

    @property
    def date(self) -> str:
        return self.not_after.strftime("%Y-%m-%d %H:%M UTC")

    def describe(self) -> str:
        if self.state == "expired":
            return f"{self.what} expired on {self.date} ({self.days_ago} days ago)"
        if self.state == "expiring":
            return f"{self.what} expires on {self.date} (in {self.left.days} days)"
        return f"{self.what} is valid until {self.date}"


def expiry(what: str, cert: x509.Certificate, now: dt.datetime) -> Expiry:
    return Expiry(what, cert.not_valid_after_utc, now)


def certificate_expiries(
    tls: TlsMaterial, peers: Iterable[PeerRecord], now: dt.datetime | None = None
) -> list[Expiry]:
    """This node's certificate and CA, then each peer's, soonest first within each group."""
    now = now or dt.datetime.now(dt.UTC)
    own = [
        expiry("this node's TLS certificate", tls.certificate, now),
        expiry("this node's CA", tls.ca_certificate, now),
    ]
    theirs: list[Expiry] = []
    for p in peers:
        for what, pem in (("TLS certificate", p.tls_certificate), ("CA", p.ca_certificate)):
            try:
                cert = load_certificate(pem.encode())
            except ValueError:
                continue  # enrollment checked it; a damaged row is not this view's to report
            theirs.append(expiry(f"peer {p.name}'s {what}", cert, now))
    return sorted(own, key=lambda e: e.not_after) + sorted(theirs, key=lambda e: e.not_after)


def warnings(expiries: Iterable[Expiry]) -> list[Expiry]:
    """The ones to warn about: expiring within WARN_DAYS, or expired."""
    return [e for e in expiries if e.state != "ok"]
