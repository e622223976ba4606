"""Classification, backoff, Retry-After parsing, the token bucket and the mock transport."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from tests.delivery.conftest import FAST
from toolkit.delivery import (
    MockTransport,
    RetryPolicy,
    TokenBucket,
    TransportResponse,
    classify_response,
    deliver,
    parse_retry_after,
)
from toolkit.errors import TerminalDeliveryError, TransientDeliveryError
from toolkit.ledger import read_ledger

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status, kind", [
    (429, TransientDeliveryError), (500, TransientDeliveryError), (502, TransientDeliveryError),
    (503, TransientDeliveryError), (504, TransientDeliveryError),
    (400, TerminalDeliveryError), (401, TerminalDeliveryError), (403, TerminalDeliveryError),
    (404, TerminalDeliveryError), (413, TerminalDeliveryError), (302, TerminalDeliveryError),
])
def test_classification_follows_the_exception_tree(status, kind):
    err = classify_response(TransportResponse(status, {}, "x"))
    assert type(err) is kind and err.status == status
    assert err.transient == (kind is TransientDeliveryError)


def test_2xx_is_success_and_400_names_the_likely_cause():
    assert classify_response(TransportResponse(204)) is None and classify_response(TransportResponse(200)) is None
    err = classify_response(TransportResponse(400, {}, '{"message": "project 1 not found"}'))
    assert "project 1 not found" in str(err) and "wrong account_id or project_id" in str(err)
    long = classify_response(TransportResponse(400, {}, "y" * 10_000))
    assert len(str(long)) < 1_000  # the ledger keeps a bounded excerpt


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=NOW) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=NOW) == 0.0  # in the past: now
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("") is None
    err = classify_response(TransportResponse(429, {"retry-after": "Wed, 01 Jan 2099 00:00:00 GMT"}))
    assert err.retry_after > 1e9 and RetryPolicy(max_retry_after=60).delay(1, err) == 60


def test_backoff_is_exponential_capped_with_full_jitter():
    none = RetryPolicy(base=0.5, cap=3.0, jitter="none")
    assert [none.backoff(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    full = RetryPolicy(base=0.5, cap=3.0)
    rng = random.Random(3)
    draws = [full.backoff(4, rng) for _ in range(500)]
    assert 0 <= min(draws) < 0.3 and 2.7 < max(draws) <= 3.0  # spread over [0, cap]
    err = TransientDeliveryError("x", status=429, retry_after=2.5)
    assert full.delay(1, err) == 2.5
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_token_bucket_spaces_acquisitions():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(4.0, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(9)]
    assert waits[0] == 0 and all(w == pytest.approx(0.25) for w in waits[1:])
    assert now[0] == pytest.approx(2.0)  # 9 acquisitions at 4/s: 8 intervals
    now[0] += 10  # idle time does not bank more than one burst
    assert bucket.acquire() == 0 and bucket.acquire() == pytest.approx(0.25)


def test_mock_transport_drives_deliver(bodies, tmp_path):
    outcomes = iter([TransientDeliveryError("network error: reset"), TransportResponse(503), TransportResponse(204)])

    def handler(req):
        assert req.headers["X-Optimizely-Strict"] == "true" and req.timeout == 2.0
        nxt = next(outcomes, TransportResponse(204))
        if isinstance(nxt, Exception):
            raise nxt
        return nxt

    mock = MockTransport(handler)
    report = deliver(bodies[:2], endpoint="http://example.invalid/v1/events", ledger=tmp_path / "m.sqlite",
                     transport=mock, strict=True, timeout=2.0, retry=FAST, concurrency=1, progress=False)
    assert report.exit_code == 0 and report.retried_requests == 2 and len(mock.requests) == 4
    assert [r.data for r in mock.requests] == [bodies[0].data] * 3 + [bodies[1].data]
    req = read_ledger(tmp_path / "m.sqlite").requests
    req = req[req["batch_id"] == bodies[0].batch_id].sort_values("attempt")
    assert req["status"].isna().iloc[0] and req["status"].iloc[1:].tolist() == [503, 204]
    assert "network error: reset" in req["error"].iloc[0]


def test_max_rps_limits_the_request_rate(bodies, tmp_path):
    calls = []

    def handler(req):
        import time

        calls.append(time.monotonic())
        return TransportResponse(204)

    deliver(bodies[:5], endpoint="http://example.invalid/v1/events", ledger=tmp_path / "r.sqlite",
            transport=MockTransport(handler), max_rps=20, concurrency=4, progress=False)
    assert len(calls) == 5 and calls[-1] - calls[0] >= 4 / 20 * 0.9  # at least 4 intervals of 50 ms
