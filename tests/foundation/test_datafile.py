import json
import logging

import pytest

from tests.foundation.cdn import Cdn
from toolkit.config import parse_integration
from toolkit.datafile import load_datafile, parse_datafile
from toolkit.errors import (
    DatafileForbiddenError,
    DatafileMismatchError,
    DatafileNotFoundError,
    DatafileRejectedError,
    DatafileUnavailableError,
)

KEY = "CdnKey0123456789"


@pytest.fixture
def datafile_bytes(fixture_datafile_path):
    return fixture_datafile_path.read_bytes()


@pytest.fixture
def cdn(datafile_bytes):
    with Cdn() as c:
        c.state.datafiles[KEY] = datafile_bytes
        yield c


def config_for(url, **over):
    body = {"account_id": "12345678", "project_id": "98765432", "datafile_url": url}
    body.update(over)
    return parse_integration({"config": body}, env={"OPTIMIZELY_SDK_KEY": KEY})


def test_index(fixture_datafile_path):
    df = load_datafile(fixture_datafile_path)
    assert df.revision == "42" and df.account_id == "12345678"
    assert df.events["purchase"].id == "40001"
    assert set(df.events["purchase"].experiment_ids) == {"50001", "50002", "50011"}
    exp = df.experiment("checkout_flow")
    assert exp.campaign_id == "60001" and exp.rule_type == "feature-test" and exp.flag_key == "new_checkout"
    assert [v.key for v in exp.variations] == ["checkout_control", "checkout_new"]
    assert exp.traffic_allocation == (("70001", 5000), ("70002", 10000))
    assert df.experiment("group_exp_1").group_id == "80001"
    assert df.experiment("default-rollout-90001").rule_type == "rollout"
    assert {e.key for e in df.running_experiments()} == {"checkout_flow", "pricing_page", "group_exp_1", "group_exp_2"}
    assert df.attributes == {"country": "20001", "plan": "20002"}
    assert df.suggest_key("Purchase") == "purchase"
    assert df.suggest_key("add-to-cart") == "add_to_cart"
    assert df.suggest_key("refund") is None
    assert df.project_config().get_event("purchase").id == "40001"


def test_200_then_304_uses_the_cache(cdn, tmp_path):
    url = cdn.url(KEY)
    first = load_datafile(url, cache_dir=tmp_path)
    assert first.fetch.status == 200 and not first.fetch.from_cache
    second = load_datafile(url, cache_dir=tmp_path)
    assert second.fetch.status == 304 and second.fetch.from_cache and not second.fetch.stale
    assert cdn.state.requests[1]["headers"].get("If-None-Match") == '"v1"'
    assert cdn.state.requests[1]["headers"].get("If-Modified-Since") == cdn.state.last_modified
    assert second.revision == first.revision


def test_403_means_invalid_sdk_key(cdn, tmp_path):
    with pytest.raises(DatafileForbiddenError) as err:
        load_datafile(cdn.url("WrongKey99999"), cache_dir=tmp_path)
    msg = str(err.value)
    assert "403" in msg and "invalid or belongs to another environment" in msg and "Settings > Environments" in msg
    assert "WrongKey99999" not in msg  # the key in the URL is masked


@pytest.mark.parametrize("status, error", [(404, DatafileNotFoundError), (500, DatafileUnavailableError),
                                           (503, DatafileUnavailableError)])
def test_errors_without_cache(cdn, tmp_path, status, error):
    cdn.state.status = status
    with pytest.raises(error) as err:
        load_datafile(cdn.url(KEY), cache_dir=tmp_path)
    assert "no cached copy" in str(err.value) and KEY not in str(err.value)


@pytest.mark.parametrize("status", [404, 500, 502])
def test_errors_with_cache_use_the_stale_copy_and_say_its_age(cdn, tmp_path, caplog, status):
    load_datafile(cdn.url(KEY), cache_dir=tmp_path)
    cdn.state.status = status
    with caplog.at_level(logging.WARNING, logger="toolkit"):
        df = load_datafile(cdn.url(KEY), cache_dir=tmp_path)
    assert df.fetch.stale and df.fetch.from_cache and df.revision == "42"
    assert "using the cached copy from" in df.fetch.warning and "ago" in df.fetch.warning
    assert "revision 42" in caplog.text
    assert KEY not in caplog.text


def test_timeout_without_and_with_cache(cdn, tmp_path):
    cdn.state.delay = 1.0
    with pytest.raises(DatafileUnavailableError, match="timed out after 0.2 s"):
        load_datafile(cdn.url(KEY), cache_dir=tmp_path, timeout=0.2)
    cdn.state.delay = 0
    load_datafile(cdn.url(KEY), cache_dir=tmp_path)
    cdn.state.delay = 1.0
    df = load_datafile(cdn.url(KEY), cache_dir=tmp_path, timeout=0.2)
    assert df.fetch.stale and "timed out" in df.fetch.warning


def test_network_error_without_cache(tmp_path):
    with pytest.raises(DatafileUnavailableError, match="network error"):
        load_datafile("http://127.0.0.1:9/datafiles/x.json", cache_dir=tmp_path, timeout=2)


def test_cache_never_holds_the_key(cdn, tmp_path):
    load_datafile(cdn.url(KEY), cache_dir=tmp_path)
    files = list(tmp_path.rglob("*"))
    assert files
    for f in files:
        assert KEY not in f.name
        if f.is_file():
            assert KEY.encode() not in f.read_bytes()


def test_config_url_and_id_check(cdn, tmp_path):
    cfg = config_for(cdn.base + "/datafiles/{sdk_key}.json")
    df = load_datafile(config=cfg, cache_dir=tmp_path)
    assert df.project_id == "98765432"
    bad = config_for(cdn.base + "/datafiles/{sdk_key}.json", project_id="11111111", account_id="22222222")
    with pytest.raises(DatafileMismatchError) as err:
        load_datafile(config=bad, cache_dir=tmp_path)
    msg = str(err.value)
    assert "'98765432'" in msg and "'11111111'" in msg and "'12345678'" in msg and "'22222222'" in msg
    assert "400" in msg


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.pop("events"), "schema"),
    (lambda d: d.update(version="1"), "UnsupportedDatafileVersion"),
    (lambda d: d["experiments"][0].update(trafficAllocation="all"), "schema"),
])
def test_a_datafile_the_sdk_rejects_is_rejected(datafile_bytes, mutate, words):
    data = json.loads(datafile_bytes)
    mutate(data)
    with pytest.raises(DatafileRejectedError) as err:
        parse_datafile(json.dumps(data))
    assert "optimizely-sdk" in str(err.value) and words in str(err.value)


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "d.json"
    p.write_text("<html>")
    with pytest.raises(DatafileRejectedError, match="not JSON"):
        load_datafile(p)
    with pytest.raises(DatafileNotFoundError, match="file not found"):
        load_datafile(tmp_path / "missing.json")
