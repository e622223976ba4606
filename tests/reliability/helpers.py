"""Helpers for the reliability tests: a sandbox in its own process, a recording proxy in front of
an Event API, the sandbox's stored uuids, and a scan of files for secret canaries."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import requests

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DATAFILE = REPO / "tests" / "fixtures" / "datafile.json"
ACCOUNT, PROJECT = "12345678", "98765432"


def toolkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", *args]


# ---------------------------------------------------------------------------- sandbox process
@contextlib.contextmanager
def sandbox_process(data_dir: Path, *extra: str, env: dict | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``toolkit sandbox --port 0`` in its own process; yields (process, base URL). Stopped with SIGTERM."""
    proc = subprocess.Popen(
        toolkit_cmd("sandbox", "--port", "0", "--data", str(data_dir), "--datafile", str(FIXTURE_DATAFILE), *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=data_dir.parent)
    try:
        first = proc.stdout.readline()  # "sandbox listening on http://127.0.0.1:PORT (data in ...)"
        m = re.search(r"listening on (http://\S+)", first)
        if not m:
            proc.kill()
            raise AssertionError(f"sandbox did not start: {first!r} {proc.stderr.read()[-2000:]}")
        for pipe in (proc.stdout, proc.stderr):  # keep its pipes from filling up (and blocking it)
            threading.Thread(target=pipe.read, daemon=True).start()
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# ---------------------------------------------------------------------------- recording proxy
class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        proxy: RecordingProxy = self.server.owner  # type: ignore[attr-defined]
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        if len(data) < n:
            return  # the client died mid-body: nothing was sent
        proxy._record(data)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-optimizely-strict")}
            r = proxy._session().post(proxy.target, data=data, headers=headers, timeout=60)
            status, body, extra = r.status_code, r.content, {k: v for k, v in r.headers.items()
                                                             if k.lower() == "retry-after"}
        except requests.RequestException:
            self.close_connection = True
            return
        finally:
            proxy._done()
        with contextlib.suppress(OSError):
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


class RecordingProxy:
    """Records every fully received body, then forwards it to ``target`` and relays the answer.

    The record comes first, so a body counts as sent even if its client is killed while waiting.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[bytes] = []
        self.active = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    def _record(self, data: bytes) -> None:
        with self._lock:
            self.bodies.append(data)
            self.active += 1

    def _done(self) -> None:
        with self._lock:
            self.active -= 1

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.bodies)

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no forwarded request is still on its way to the target."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.active == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("proxy: requests still forwarding after the timeout")

    def snapshot(self) -> list[bytes]:
        with self._lock:
            return list(self.bodies)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1/events"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def body_uuids(data: bytes) -> list[str]:
    body = orjson.loads(data)
    return [e["uuid"] for v in body["visitors"] for s in v["snapshots"] for e in s["events"]]


def uuid_counts(bodies: list[bytes]) -> Counter:
    return Counter(u for b in bodies for u in body_uuids(b))


# ---------------------------------------------------------------------------- sandbox state
def stored_rows(data_dir: Path) -> list[tuple[str, str, str, int]]:
    """(uuid, entity_id, visitor_id, timestamp) of every event the sandbox stored (read-only)."""
    db = Path(data_dir) / "sandbox.sqlite"
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT uuid, entity_id, visitor_id, timestamp FROM decisions UNION ALL "
                            "SELECT uuid, entity_id, visitor_id, timestamp FROM conversions").fetchall()
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------------------- secrets
def files_holding(root: Path, *needles: str) -> list[str]:
    """Every file under ``root`` (names and bytes, gzip left as is) holding one of ``needles``."""
    hits = []
    raw = [n.encode() for n in needles]
    for f in sorted(Path(root).rglob("*")):
        if any(n in f.name for n in needles):
            hits.append(f"{f} (name)")
        if f.is_file() and not f.is_symlink():
            data = f.read_bytes()
            if any(n in data for n in raw):
                hits.append(str(f))
    return hits


def env_with(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPTIMIZELY_SDK_KEY", "OPTIMIZELY_API_TOKEN")}
    env.update(values)
    return env
