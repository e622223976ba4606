"""A slow client cannot hold a request open: a body that has not arrived ``body_timeout`` s after the
request started gets 408 and a closed connection, whether the client stalls or trickles bytes."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import pytest
import requests

from toolkit.sandbox import Sandbox, SandboxError

from .bodies import body, conversion, visitor
from .conftest import FIXTURE_DATAFILE

TIMEOUT = 0.5


@pytest.fixture
def quick(tmp_path):
    with Sandbox(tmp_path / "sandbox", datafile=FIXTURE_DATAFILE, body_timeout=TIMEOUT) as sb:
        yield sb


def _open(sb: Sandbox, path: str = "/v1/events", declared: int = 1000) -> socket.socket:
    u = urlparse(sb.url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {declared}\r\n\r\n".encode() + b'{"account_id":')
    return s


def _read_all(s: socket.socket) -> bytes:
    """Everything until the server closes the connection (a timeout here fails the test)."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_stalled_body_gets_408_and_the_connection_is_closed(quick):
    s = _open(quick)
    t0 = time.monotonic()
    answer = _read_all(s)
    waited = time.monotonic() - t0
    s.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in head.lower()
    assert json.loads(payload)["code"] == "body_timeout"
    assert TIMEOUT * 0.8 <= waited < TIMEOUT + 5
    stats = quick.stats()
    assert stats["requests"].get("408") == 1 and stats["rejected"].get("body_timeout") == 1


def test_a_trickle_does_not_keep_the_deadline_alive(quick):
    s = _open(quick, declared=100_000)
    t0 = time.monotonic()
    s.settimeout(0.05)
    answer, ended = b"", None
    while ended is None and time.monotonic() - t0 < TIMEOUT + 5:
        try:
            s.sendall(b" ")  # one byte every 50 ms: never idle, never done
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: the server closed with our trickle unread (the 408 may be lost with it)
            chunk = b""
        answer += chunk
        if not chunk:
            ended = time.monotonic() - t0
    s.close()
    assert ended is not None and TIMEOUT * 0.8 <= ended < TIMEOUT + 5
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
    assert quick.stats()["rejected"].get("body_timeout") == 1


def test_a_stalled_body_on_a_faulted_request_is_cut_too(quick):
    quick.set_faults({"error": 1.0, "seed": 1})  # the fault path drains the body itself
    s = _open(quick)
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408")


def test_prompt_clients_are_unaffected(quick):
    s = _open(quick)  # a stalled neighbour
    try:
        data = json.dumps(body(visitor("u", conversion("purchase", 1)))).encode()
        with requests.Session() as session:
            for _ in range(3):
                r = session.post(quick.events_url, data=data, headers={"Content-Type": "application/json"}, timeout=10)
                assert r.status_code == 204
                time.sleep(TIMEOUT / 2)  # the keep-alive connection outlives the body deadline of one request
        assert quick.stats()["events_received"] == 3
    finally:
        s.close()


def test_body_timeout_must_be_positive(tmp_path):
    for bad in (0, -1.0):
        with pytest.raises(SandboxError, match="body_timeout"):
            Sandbox(tmp_path / "sb", datafile=FIXTURE_DATAFILE, body_timeout=bad)
