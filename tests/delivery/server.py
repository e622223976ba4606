"""A programmable Event API stand-in on 127.0.0.1 (stdlib ThreadingHTTPServer) for delivery tests.

Each POST takes the next scripted action (when the script runs out, ``default`` applies):
``Reply(status, headers, text, delay)`` answers after ``delay`` seconds, ``RESET`` reads the body
and closes the socket with a TCP reset, no response. Every fully received body is recorded
(raw bytes, headers, uuids) before the action runs, so a body counts as received even when the
client is gone by the time the answer is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    delay: float = 0.0


RESET = "reset"


@dataclass(frozen=True)
class Received:
    data: bytes
    headers: dict[str, str]
    at: float

    @property
    def batch_id(self) -> str:  # the same hash toolkit.payload uses
        return hashlib.sha256(self.data).hexdigest()[:16]

    def uuids(self) -> list[str]:
        body = orjson.loads(self.data)
        return [e["uuid"] for v in body["visitors"] for s in v["snapshots"] for e in s["events"]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):  # noqa: N802
        server: EventServer = self.server.owner  # type: ignore[attr-defined]
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        if len(data) < n:
            return  # the client went away mid-body: nothing received
        action = server._record_and_next(Received(data, dict(self.headers), time.monotonic()))
        try:
            self._act(action)
        finally:
            server._done()

    def _act(self, action: Reply | str) -> None:
        if action == RESET:
            # SO_LINGER 0: close() sends a RST instead of a FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if action.delay:
            time.sleep(action.delay)
        body = action.text.encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(action.status)
            for k, v in action.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


class EventServer:
    """Use as a context manager; ``url`` is the endpoint; ``script`` and ``default`` program it."""

    def __init__(self, *, default: Reply | str = Reply(), script: list[Reply | str] | None = None,
                 record: bool = True) -> None:
        self.default = default
        self.script = list(script or [])
        self.record = record
        self.received: list[Received] = []
        self.count = 0
        self.active = 0  # requests being answered now
        self.max_active = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record_and_next(self, rec: Received) -> Reply | str:
        with self._lock:
            self.count += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.record:
                self.received.append(rec)
            return self.script.pop(0) if self.script else self.default

    def _done(self) -> None:
        with self._lock:
            self.active -= 1

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/events"

    def uuid_counts(self) -> Counter:
        with self._lock:
            received = list(self.received)
        return Counter(u for r in received for u in r.uuids())

    def __enter__(self) -> EventServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
