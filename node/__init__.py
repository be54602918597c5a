"""creditnode: one city's node in a federation that shares credit lists verifiably.

Example::

    import asyncio
    from pathlib import Path
    from node.home import init_home
    from node.runtime import Node

    async def main(home: Path) -> None:
        init_home(home, name="jinan", region="370100", federation="yellow-river",
                  listen="127.0.0.1:0")
        node = await Node.open(home)
        await node.start()
        print(node.endpoint)
        await node.stop()
"""

from node import native as _native

__version__ = "0.1.0"
PROTOCOL_VERSION = "v1"

# Compiled pure cores (mypyc), when built from the current source; see node/native.
_native.install()
