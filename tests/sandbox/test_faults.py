"""Fault injection on /v1/events: seeded shares of 500 / 429 / dropped connections, latency."""

from __future__ import annotations

import time

import pytest
import requests

from toolkit.sandbox import FaultSpec, parse_faults
from toolkit.sandbox.faults import FaultInjector, FaultSpecError

from .bodies import body, conversion, post, visitor

SPEC = "error=0.2,throttle=0.1,retry_after=3,drop=0.1,seed=11"
N = 200


def _send(url: str, i: int) -> str:
    try:
        r = post(url, body(visitor(f"u{i}", conversion("purchase", i))), timeout=30)
    except requests.ConnectionError:
        return "dropped"
    if r.status_code == 429:
        assert r.headers["Retry-After"] == "3"
    return str(r.status_code)


def test_seeded_shares_of_faults(sandbox):
    sandbox.set_faults(SPEC)
    seen = [_send(sandbox.events_url, i) for i in range(N)]
    # the same seed draws the same sequence: exactly what a fresh injector predicts
    injector = FaultInjector(parse_faults(SPEC))
    expected = [{"ok": "204", "error": "500", "throttle": "429", "drop": "dropped"}[injector.draw()] for _ in range(N)]
    assert seen == expected
    shares = {k: seen.count(k) / N for k in ("500", "429", "dropped", "204")}
    assert shares["500"] == pytest.approx(0.2, abs=0.08)
    assert shares["429"] == pytest.approx(0.1, abs=0.06)
    assert shares["dropped"] == pytest.approx(0.1, abs=0.06)
    s = sandbox.stats()
    assert s["faults_injected"] == {k: seen.count(v) for k, v in
                                    (("error", "500"), ("throttle", "429"), ("drop", "dropped")) if seen.count(v)}
    assert s["events_stored"] == seen.count("204")  # a faulted request stores nothing


def test_faults_apply_to_the_event_api_only(sandbox):
    sandbox.set_faults("error=1")
    assert requests.get(sandbox.datafile_url, timeout=30).status_code == 200
    assert requests.get(sandbox.results_url("50001"), timeout=30).status_code == 200
    assert _send(sandbox.events_url, 1) == "500"


def test_faults_set_over_http_and_latency_is_added(sandbox):
    r = requests.post(f"{sandbox.url}/admin/faults", data='{"latency_ms": 300}', timeout=30)
    assert r.status_code == 200 and r.json()["latency_ms"] == 300
    t0 = time.perf_counter()
    assert _send(sandbox.events_url, 1) == "204"
    assert time.perf_counter() - t0 >= 0.3
    bad = requests.post(f"{sandbox.url}/admin/faults", data='{"error": 2}', timeout=30)
    assert bad.status_code == 400 and "within 0..1" in bad.json()["reason"]
    assert requests.post(f"{sandbox.url}/admin/faults", data="", timeout=30).json() == FaultSpec().to_dict()


@pytest.mark.parametrize("spec,message", [
    ("error=0.7,drop=0.5", "sum to at most 1"),
    ("boom=1", "unknown name"),
    ("error", "not name=value"),
    ("error=lots", "not a number"),
    ("{bad json", "not valid JSON"),
])
def test_bad_fault_specs_say_what_is_wrong(spec, message):
    with pytest.raises(FaultSpecError, match=message):
        parse_faults(spec)


def test_fault_spec_forms_agree():
    a = parse_faults("500=0.1,429=0.2,drop=0.05,latency=10,seed=3")
    b = parse_faults('{"error_share": 0.1, "throttle_share": 0.2, "drop_share": 0.05, "latency_ms": 10, "seed": 3}')
    assert a == b == FaultSpec(0.1, 0.2, 0.05, 1.0, 10.0, 3)
