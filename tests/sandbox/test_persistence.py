"""State lives in SQLite under the data dir: a restart loses nothing."""

from __future__ import annotations

import json

import requests

from toolkit.sandbox import Sandbox

from .bodies import EXPECTED, SCENARIO_EVENTS, metric_table, post, scenario
from .conftest import FIXTURE_DATAFILE


def test_restart_with_the_same_data_dir_keeps_everything(tmp_path):
    data = tmp_path / "state"
    sent = scenario()
    with Sandbox(data, datafile=FIXTURE_DATAFILE) as sb:
        post(sb.events_url, sent)
        before = sb.stats()
        etag = requests.get(sb.datafile_url, timeout=30).headers["ETag"]
        raw = json.loads(FIXTURE_DATAFILE.read_text(encoding="utf-8"))
        raw["revision"] = "77"
        sb.set_datafile(raw)
    # no datafile given: the stored (replaced) one is served again
    with Sandbox(data, datafile=None) as sb:
        assert sb.stats()["events_stored"] == before["events_stored"] == 22
        assert metric_table(requests.get(sb.results_url("50001"), timeout=30).json()) == EXPECTED
        served = requests.get(sb.datafile_url, timeout=30)
        assert served.json()["revision"] == "77" and served.headers["ETag"] != etag
        # dedup survives the restart
        post(sb.events_url, sent)
        after = sb.stats()
    assert after["events_stored"] == 22 and after["duplicates"] == before["duplicates"] + SCENARIO_EVENTS
    assert Sandbox(data, datafile=None).stats()["duplicates"] == after["duplicates"]  # readable while stopped


def test_same_datafile_after_restart_keeps_its_validators(tmp_path):
    with Sandbox(tmp_path, datafile=FIXTURE_DATAFILE) as sb:
        first = requests.get(sb.datafile_url, timeout=30).headers
    with Sandbox(tmp_path, datafile=FIXTURE_DATAFILE) as sb:
        r = requests.get(sb.datafile_url, headers={"If-None-Match": first["ETag"]}, timeout=30)
        assert r.status_code == 304 and r.headers["Last-Modified"] == first["Last-Modified"]


def test_reset_forgets_events_but_keeps_the_datafile(sandbox):
    post(sandbox.events_url, scenario())
    assert requests.post(f"{sandbox.url}/admin/reset", timeout=30).json() == {"reset": True}
    s = sandbox.stats()
    assert s["events_stored"] == 0 and s["decisions"] == 0 and s["conversions"] == 0 and s["requests"] == {}
    assert requests.get(sandbox.datafile_url, timeout=30).status_code == 200
