"""The benchmarks' minimal sink counts exactly the requests and body bytes it is sent, per path,
however the bytes are cut into reads."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.delivery.sink import Sink, _Http


class _Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True


def _post(body: bytes, extra: str = "", path: str = "/v1/events") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _feed(stream: bytes, cuts: list[int]) -> tuple[dict[str, dict[str, int]], _Transport]:
    """``stream`` handed to one connection in reads ending at ``cuts``."""
    stats: dict[str, dict[str, int]] = {}
    proto, transport = _Http(stats), _Transport()
    proto.connection_made(transport)
    start = 0
    for end in [*cuts, len(stream)]:
        buf = proto.get_buffer(-1)
        piece = stream[start:end]
        buf[:len(piece)] = piece
        proto.buffer_updated(len(piece))
        start = end
    return stats, transport


BODIES = [b'{"visitors":[{"uuid":"a"},{"uuid":"b"}]}', b"", b"\r\n\r\nPOST / HTTP/1.1\r\n", b'{"uuid"}']
STREAM = b"".join(_post(b, path="/v1/events" if i % 2 else "/sdk") for i, b in enumerate(BODIES))
EXPECTED = {"/sdk": {"requests": 2, "bytes": len(BODIES[0]) + len(BODIES[2])},
            "/v1/events": {"requests": 2, "bytes": len(BODIES[1]) + len(BODIES[3])}}


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 11, len(STREAM)])
def test_pipelined_requests_counted_exactly_whatever_the_reads(step):
    stats, transport = _feed(STREAM, list(range(step, len(STREAM), step)))
    assert stats == EXPECTED
    assert transport.out == b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n" * 4 and not transport.closed


def test_every_single_cut_point():
    for cut in range(1, len(STREAM)):
        stats, _ = _feed(STREAM, [cut])
        assert stats == EXPECTED, cut


def test_connection_close_is_honoured():
    stats, transport = _feed(_post(b'{"uuid"}', "Connection: close\r\n"), [])
    assert stats == {"/v1/events": {"requests": 1, "bytes": 8}} and transport.closed


def test_sink_process_counts_what_requests_sends():
    body = b'{"visitors":[' + b",".join(b'{"uuid":"%d"}' % i for i in range(50_000)) + b"]}"  # ~1 MB: many reads
    with Sink() as sink:
        with requests.Session() as s:  # keep-alive: both bodies on one connection
            for _ in range(2):
                assert s.post(sink.url, data=body, timeout=10).status_code == 204
        with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as raw:  # two requests in one write
            raw.sendall(_post(b'"uuid"', path="/other") * 2)
            got = b""
            while got.count(b"204") < 2:
                got += raw.recv(1024)
        assert sink.stats() == {"/v1/events": {"requests": 2, "bytes": 2 * len(body)},
                                "/other": {"requests": 2, "bytes": 12}}
