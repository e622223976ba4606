"""Sandbox hardening: loopback only by default; malformed JSON, wrong content types, over-limit and
deeply nested bodies and slow clients (headers then a trickle, or a stall) never crash it nor grow
its memory without bound (RSS of a sandbox process, measured); and its HTTP API, fuzzed from its
OpenAPI description with schemathesis, never answers 5xx."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.reliability.helpers import FIXTURE_DATAFILE, sandbox_process
from tests.sandbox.bodies import body, conversion, visitor
from toolkit.sandbox import MAX_BODY_BYTES, Sandbox, SandboxError

OPENAPI = Path(__file__).resolve().parents[2] / "toolkit" / "sandbox" / "openapi.json"


def test_sandbox_refuses_non_loopback_hosts_and_binds_loopback_by_default(tmp_path):
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(SandboxError, match="loopback"):
            Sandbox(tmp_path / "sb", datafile=FIXTURE_DATAFILE, host=host)
    with Sandbox(tmp_path / "sb", datafile=FIXTURE_DATAFILE) as sb:
        assert urlparse(sb.url).hostname == "127.0.0.1"
        mine = [c for c in psutil.Process().net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == sb.port]
        assert mine and all(c.laddr.ip == "127.0.0.1" for c in mine)


# ---------------------------------------------------------------------------- abuse of a sandbox process
def _good(i: int) -> bytes:
    return json.dumps(body(visitor(f"u{i}", conversion("purchase", i)))).encode()


def _post(url: str, data, ctype: str = "application/json") -> int:
    return requests.post(url, data=data, headers={"Content-Type": ctype}, timeout=60).status_code


def _slow_client(host: str, port: int, *, declared: int, send: bytes, trickle: float | None) -> socket.socket:
    """Headers with a Content-Length, then part of the body (trickled byte by byte, or all at once
    and then a stall). The socket is left open: the caller closes it."""
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {declared}\r\n\r\n".encode())
    if trickle is None:
        s.sendall(send)
    else:
        for b in send:
            s.sendall(bytes([b]))
            time.sleep(trickle)
    return s


def _abuse_round(url: str, host: str, port: int) -> None:
    events = f"{url}/v1/events"
    deep = b"[" * 200_000 + b"]" * 200_000
    deep_obj = b'{"account_id":"12345678","visitors":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    over = b'{"account_id":"12345678","visitors":[],"pad":"' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    stalled, trickling = [], []
    try:
        # clients that send headers and stall with the body unfinished, or send nothing more
        stalled += [_slow_client(host, port, declared=3_000_000, send=b'{"account_id":' + b" " * 65_536,
                                 trickle=None) for _ in range(40)]
        stalled += [_slow_client(host, port, declared=500, send=b"", trickle=None) for _ in range(20)]
        stopper = threading.Event()

        def trickle():
            with contextlib.closing(_slow_client(host, port, declared=10_000, send=b"", trickle=None)) as s:
                while not stopper.wait(0.05):
                    with contextlib.suppress(OSError):
                        s.sendall(b" ")

        trickling = [threading.Thread(target=trickle, daemon=True) for _ in range(5)]
        for t in trickling:
            t.start()
        # meanwhile, everyone else is served, and every bad body gets its 4xx
        for i in range(10):
            assert _post(events, b"{not json") == 400
            assert _post(events, _good(i), ctype="text/plain") == 400
            assert _post(events, _good(i), ctype="application/x-www-form-urlencoded") == 400
            assert _post(events, deep) == 400
            assert _post(events, deep_obj) == 400
            assert _post(events, b"\xff\xfe" * 1000) == 400
            assert _post(events, _good(i)) == 204
        for _ in range(3):
            assert _post(events, over) == 413
            assert _post(events, iter([over[:1_000_000], over[1_000_000:]])) == 413  # chunked, no length
        stopper.set()
        for t in trickling:
            t.join(30)
    finally:
        for s in stalled:
            s.close()


def test_abusive_clients_never_crash_it_nor_grow_its_memory(tmp_path):
    with sandbox_process(tmp_path / "sandbox") as (proc, url):
        host, port = urlparse(url).hostname, urlparse(url).port
        ps = psutil.Process(proc.pid)
        listening = [c for c in ps.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)  # the CLI default too
        _abuse_round(url, host, port)  # warm-up: allocator pools, caches
        time.sleep(0.5)
        rss_warm = ps.memory_info().rss
        for _ in range(3):
            _abuse_round(url, host, port)
        time.sleep(0.5)
        rss_after = ps.memory_info().rss
        assert proc.poll() is None, "the sandbox died"
        stats = requests.get(f"{url}/admin/stats", timeout=30).json()
        # three more rounds of the same abuse cost at most a few tens of MB (not 3x the first round's)
        assert rss_after - rss_warm < 80 * 2**20, (rss_warm, rss_after)
    assert stats["events_stored"] == 40 and stats["duplicates"] == 0  # 10 good bodies a round, fresh uuids
    assert stats["requests"]["413"] == 24 and stats["requests"]["204"] == 40
    assert stats["requests"]["400"] == 4 * 10 * 6


# ---------------------------------------------------------------------------- schemathesis
SCHEMA = schemathesis.openapi.from_path(OPENAPI).exclude(method="POST", path="/admin/faults")


@pytest.fixture(scope="module")
def fuzzed_sandbox(tmp_path_factory):
    with Sandbox(tmp_path_factory.mktemp("fuzz") / "sandbox", datafile=FIXTURE_DATAFILE, api_token="FuzzToken") as sb:
        yield sb


def test_openapi_description_matches_the_routes(tmp_path):
    from toolkit.datafile import load_datafile
    from toolkit.sandbox import SandboxState, Store, create_app

    described = {(p, m.upper()) for p, ops in json.loads(OPENAPI.read_text())["paths"].items() for m in ops}
    store = Store(tmp_path / "sb")
    try:
        app = create_app(SandboxState(store, datafile=load_datafile(str(FIXTURE_DATAFILE)), sdk_key="K"))
        routes = {(r.path, m) for r in app.app.routes for m in r.methods if m != "HEAD"}
    finally:
        store.close()
    assert described == routes


CASES = st.one_of(SCHEMA.as_strategy(GenerationMode.POSITIVE), SCHEMA.as_strategy(GenerationMode.NEGATIVE))


def _no_5xx(fuzzed_sandbox, case):
    response = case.call(base_url=fuzzed_sandbox.url, timeout=60)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])


def _fuzz(n: int, seeded: bool):
    return settings(max_examples=n, deadline=None, derandomize=seeded, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])(given(case=CASES)(_no_5xx))


test_fuzzed_requests_never_get_a_5xx = _fuzz(50, True)
test_fuzzed_requests_never_get_a_5xx_soak = pytest.mark.timeout(1800)(pytest.mark.soak(_fuzz(1500, False)))
