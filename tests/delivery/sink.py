"""A minimal, fast HTTP sink for throughput measurements: reads each request body, answers 204.

Runs in its own process (so it does not share the client's GIL): ``Sink()`` starts
``python -m tests.delivery.sink``, which prints its port; ``GET /stats`` returns the counts
(requests, bytes, events: occurrences of ``"uuid"`` in bodies). asyncio streams, HTTP/1.1
keep-alive, Content-Length bodies only (what requests and the optimizely-sdk send).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
REPO = Path(__file__).resolve().parents[2]


async def _serve() -> None:
    stats = {"requests": 0, "bytes": 0, "events": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /stats"):
                    data = json.dumps(stats).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(data)).encode() + b"\r\n\r\n" + data)
                else:
                    stats["requests"] += 1
                    stats["bytes"] += len(body)
                    stats["events"] += body.count(b'"uuid"')
                    writer.write(_NO_CONTENT)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class Sink:
    """The sink in a child process; ``url`` is its events endpoint."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Sink:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.delivery.sink"], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/events"

    def stats(self) -> dict[str, int]:
        import requests

        return requests.get(f"http://127.0.0.1:{self.port}/stats", timeout=10).json()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            if self.proc.stdout:
                self.proc.stdout.close()


if __name__ == "__main__":
    asyncio.run(_serve())
