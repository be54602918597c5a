"""Storage: SQLModel tables behind async sessions; SQLite (WAL) by default, PostgreSQL by URL.

>>> store = await Store.open("sqlite:///tmp/node.db")   # doctest: +SKIP
>>> async with store.session() as s: ...                # doctest: +SKIP
"""

from node.storage._store import Store
from node.storage.models import PeerRecord

__all__ = ["PeerRecord", "Store"]
