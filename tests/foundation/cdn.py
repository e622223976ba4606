"""A programmable datafile CDN on 127.0.0.1 for the datafile client's tests."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class CdnState:
    datafiles: dict[str, bytes] = field(default_factory=dict)  # sdk key -> body
    status: int | None = None  # force a status for every request
    delay: float = 0.0
    etag: str = '"v1"'
    last_modified: str = formatdate(1_700_000_000, usegmt=True)
    requests: list[dict] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    state: CdnState

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        st = self.server.state  # type: ignore[attr-defined]
        st.requests.append({"path": self.path, "headers": dict(self.headers)})
        if st.delay:
            time.sleep(st.delay)
        if st.status:
            self._send(st.status, b"error")
            return
        key = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        if key not in st.datafiles:
            self._send(403, b"Forbidden")
            return
        if self.headers.get("If-None-Match") == st.etag:
            self._send(304, b"")
            return
        self._send(200, st.datafiles[key], {"ETag": st.etag, "Last-Modified": st.last_modified})

    def _send(self, status, body, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)


class Cdn:
    def __init__(self) -> None:
        self.state = CdnState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.state = self.state  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, key: str) -> str:
        return f"{self.base}/datafiles/{key}.json"

    def __enter__(self) -> Cdn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
