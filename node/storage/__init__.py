"""Storage: SQLModel tables behind async sessions; SQLite (WAL) by default, PostgreSQL by URL.

>>> async with Store.opened("sqlite:///tmp/node.db") as store:   # doctest: +SKIP
...     async with store.session() as s: ...
"""

from node.storage._store import Store
from node.storage.models import PeerRecord

__all__ = ["PeerRecord", "Store"]
