"""An independent WebSocket peer for the integration tests, built on Python's `websockets`.

Started by scripts/test.sh on 127.0.0.1; prints its port on stdout once listening.

Paths:
  /echo       sends {"type": "hello", "server": "python-websockets"}, then echoes every JSON
              message back with "echo": true (text that is not JSON comes back unchanged)
  /close1011  sends one message and closes with code 1011 ("internal error")
  /flood      sends {"type": "noise", "n": i} as fast as it can, forever
Subprotocol "v1.echo" is accepted when offered.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws):
    path = ws.request.path
    if path == "/close1011":
        await ws.send(json.dumps({"type": "hello"}))
        await ws.close(code=1011, reason="peer failure for tests")
        return
    if path == "/flood":
        n = 0
        try:
            while True:
                n += 1
                await ws.send(json.dumps({"type": "noise", "n": n}))
                if n % 100 == 0:
                    await asyncio.sleep(0)
        except ConnectionClosed:
            return  # the client gave up on the flood, as it should
    await ws.send(json.dumps({"type": "hello", "server": "python-websockets"}))
    async for message in ws:
        try:
            data = json.loads(message)
        except ValueError:
            await ws.send(message)
            continue
        if isinstance(data, dict):
            data["echo"] = True
        await ws.send(json.dumps(data))


def select_subprotocol(connection, offered):
    """Accept "v1.echo" when offered; clients that offer nothing are accepted too."""
    return "v1.echo" if "v1.echo" in offered else None


async def main():
    async with serve(handler, "127.0.0.1", 0, select_subprotocol=select_subprotocol) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
