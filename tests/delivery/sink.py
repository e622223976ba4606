"""A minimal, fast HTTP sink for throughput measurements: reads each request body, answers 204.

Runs in its own process (so it does not share the client's GIL): ``Sink()`` starts
``python -m tests.delivery.sink``, which prints its port; ``GET /stats`` returns the counts per
request path (``{path: {"requests": n, "bytes": body bytes}}``). HTTP/1.1 keep-alive, Content-Length bodies only (what requests and the
optimizely-sdk send), pipelining allowed.

On a machine of a few cores the sink shares the CPUs with the client it measures, so it does as
little as it can per byte: an :class:`asyncio.BufferedProtocol` receives into one reused buffer
and a body's bytes are only counted, never gathered or scanned. The asyncio streams version that
copied each body three times and counted its ``"uuid"`` tokens cost 0.42 CPU-s per 1M-row replay
(705k events, 275 MB), this one 0.11 (measured): callers check what arrived by its bytes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_MAX_HEAD = 64 * 1024
REPO = Path(__file__).resolve().parents[2]


class _Http(asyncio.BufferedProtocol):
    """One connection: heads are gathered (small), bodies only counted in the receive buffer."""

    def __init__(self, stats: dict[str, dict[str, int]]) -> None:
        self.stats = stats
        self.counts: dict[str, int] = {}  # of the current request's path
        self.buf = bytearray(1 << 18)
        self.head = bytearray()
        self.left = 0  # body bytes still to come of the current request
        self.close_after = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        pos = 0
        while pos < nbytes:
            if self.left:
                pos = self._body(pos, min(nbytes, pos + self.left))
            else:
                pos = self._head(pos, nbytes)
                if pos < 0:
                    return

    def _body(self, start: int, end: int) -> int:
        self.counts["bytes"] += end - start
        self.left -= end - start
        if not self.left:
            self._answer()
        return end

    def _head(self, start: int, end: int) -> int:
        self.head += self.buf[start:end]
        at = self.head.find(b"\r\n\r\n")
        if at < 0:
            if len(self.head) > _MAX_HEAD:
                self.transport.close()  # type: ignore[union-attr]
                return -1
            return end
        rest = len(self.head) - (at + 4)  # bytes after the head, still in buf
        head = bytes(self.head[:at])
        self.head = bytearray()
        self.left, self.close_after = 0, False
        request_line, *header_lines = head.split(b"\r\n")
        for line in header_lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.left = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.close_after = True
        method, _, target = request_line.partition(b" ")
        path = target.partition(b" ")[0].decode("latin-1")
        if method == b"GET" and path == "/stats":
            data = json.dumps(self.stats).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "  # type: ignore[union-attr]
                                 + str(len(data)).encode() + b"\r\n\r\n" + data)
            self.left = 0  # a GET has no body to count
            if self.close_after:
                self.transport.close()  # type: ignore[union-attr]
                return -1
        else:
            self.counts = self.stats.setdefault(path, {"requests": 0, "bytes": 0})
            self.counts["requests"] += 1
            if not self.left:
                self._answer()
        return end - rest

    def _answer(self) -> None:
        self.transport.write(_NO_CONTENT)  # type: ignore[union-attr]
        if self.close_after:
            self.transport.close()  # type: ignore[union-attr]


async def _serve() -> None:
    stats: dict[str, dict[str, int]] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(stats), "127.0.0.1", 0, backlog=512)
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
        return self.url_for("/v1/events")

    def url_for(self, path: str) -> str:
        """An endpoint of the sink: requests to each path are counted apart."""
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict[str, dict[str, int]]:
        """Per request path: requests and body bytes received."""
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
