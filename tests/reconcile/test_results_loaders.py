"""Results loaders on hand-written files in each format, a loopback HTTP server for the API paths."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.errors import ResultsError
from toolkit.results import RESULTS, detect_results_format, load_e3, load_results

API_BODY = {
    "experiment_id": 50001, "start_time": "2023-11-14T00:00:00Z", "end_time": "2023-11-15T00:00:00Z",
    "reach": {"total_count": 30, "variations": {
        "70001": {"count": 14, "name": "checkout_control", "variation_id": "70001"},
        "70002": {"count": 16, "name": "checkout_new", "variation_id": "70002"}}},
    "metrics": [
        {"event_id": 40001, "name": "purchase", "aggregator": "unique", "scope": "visitor", "results": {
            "70001": {"variation_id": "70001", "value": 5, "samples": 14}, "70002": {"variation_id": "70002", "value": 7}}},
        {"event_id": 40001, "name": "purchase", "aggregator": "count", "scope": "event", "results": {
            "70001": {"variation_id": "70001", "value": 6}, "70002": {"variation_id": "70002", "value": 9}}},
        {"event_id": 40001, "name": "purchase", "aggregator": "sum", "field": "revenue", "results": {
            "70001": {"variation_id": "70001", "value": 12345}, "70002": {"variation_id": "70002", "value": 999}}},
        {"event_id": 40001, "name": "purchase", "aggregator": "sum", "field": "value", "results": {
            "70001": {"variation_id": "70001", "value": 1.5}}},
    ],
}

CSV_TEXT = """Start time (UTC),End time (UTC),Variation Name,Variation ID,Is Baseline Variation,Metric Event Name,Metric Event ID,Metric Numerator Type,Metric Denominator Type,Metric Winning Direction,Numerator Value,Denominator Value,Metric Value
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_control,70001,true,purchase,40001,Unique conversions,Visitors,increasing,5,14,0.35
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_control,70001,true,purchase,40001,Total conversions,Visitors,increasing,6,14,0.42
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_control,70001,true,purchase,40001,Revenue,Visitors,increasing,"12,345",14,881
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_control,70001,true,purchase,40001,Total value,Visitors,increasing,1.5,14,0.1
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_new,70002,false,purchase,40001,unique conversions,visitors,increasing,7,16,0.43
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_new,70002,false,purchase,40001,total conversions,visitors,increasing,9,16,0.56
2023-11-14 00:00:00,2023-11-15 00:00:00,checkout_new,70002,false,purchase,40001,revenue,visitors,increasing,999,16,62
"""

EXPECTED = {  # variation -> (visitors, unique, total, revenue)
    "70001": (14, 5, 6, 12345),
    "70002": (16, 7, 9, 999),
}


def _check(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(RESULTS)
    conv = frame[frame["event_key"] == "purchase"].set_index("variation_id")
    for vid, (vis, uniq, tot, rev) in EXPECTED.items():
        row = conv.loc[vid]
        assert (row["visitors"], row["unique_conversions"], row["total_conversions"], row["revenue"]) == (vis, uniq, tot, rev)
        assert row["experiment_id"] == "50001" and row["event_id"] == "40001"
    assert conv["start_time"].iloc[0] == pd.Timestamp("2023-11-14", tz="UTC")


def test_api_json_file(tmp_path):
    p = tmp_path / "results_50001.json"
    p.write_text(json.dumps(API_BODY))
    assert detect_results_format(p) == "api"
    _check(load_results(p))


def test_api_json_list_and_variation_without_metrics(tmp_path):
    other = {"experiment_id": "50002", "reach": {"variations": {"70003": {"count": 4, "name": "pricing_a"}}}, "metrics": []}
    p = tmp_path / "all.json"
    p.write_text(json.dumps([API_BODY, other]))
    frame = load_results(p)
    _check(frame[frame["experiment_id"] == "50001"])
    lone = frame[frame["experiment_id"] == "50002"]
    assert len(lone) == 1 and lone["event_key"].isna().all() and lone["visitors"].iloc[0] == 4


def test_csv_export(tmp_path):
    p = tmp_path / "results_50001.csv"
    p.write_text(CSV_TEXT)
    assert detect_results_format(p) == "csv"
    _check(load_results(p))


def test_folder_of_results_files_concatenates(tmp_path):
    (tmp_path / "results_50001.csv").write_text(CSV_TEXT)
    other = dict(API_BODY, experiment_id="50002")
    (tmp_path / "b.json").write_text(json.dumps(other))
    frame = load_results(tmp_path)
    assert sorted(frame["experiment_id"].unique()) == ["50001", "50002"]


@pytest.mark.parametrize(("name", "text", "needle"), [
    ("r.json", "{not json", "not JSON"),
    ("r.json", json.dumps({"hello": 1}), "not a Results API response"),
    ("r.json", json.dumps({"reach": {}, "metrics": []}), "no experiment_id"),
    ("results_50001.csv", "a,b\n1,2\n", "missing column"),
    ("results.csv", CSV_TEXT, "does not name its experiment"),
    ("results_50001.csv", CSV_TEXT.replace(",6,14,", ",six,14,"), "'Numerator Value' 'six' is not a number"),
])
def test_broken_files_one_line_naming_the_file(tmp_path, name, text, needle):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ResultsError) as err:
        load_results(p)
    msg = str(err.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_missing_file_and_bad_format(tmp_path):
    with pytest.raises(ResultsError, match="not found"):
        load_results(tmp_path / "nope.json")
    with pytest.raises(ResultsError, match="use one of"):
        load_results(tmp_path / "x.json", fmt="xml")


# ------------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if "/empty/" in self.path:
            self.send_response(204)
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer tok-SECRET-123":
            self.send_response(401)
            self.end_headers()
            return
        body = CSV_TEXT.encode() if self.path.split("?")[0].endswith("/csv") else json.dumps(API_BODY).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_api_url_with_token_from_env_and_window(server, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "tok-SECRET-123")
    base = f"http://127.0.0.1:{server.server_port}"
    frame = load_results(f"{base}/v2/experiments/{{experiment_id}}/results", token_env="MY_TOKEN",
                         start_time="2023-11-14T00:00:00Z", experiment_ids=["50001"])
    _check(frame)
    path, auth = server.seen[-1]
    assert path.startswith("/v2/experiments/50001/results?start_time=2023-11-14") and auth == "Bearer tok-SECRET-123"
    _check(load_results(f"{base}/v2/export/experiments/50001/results/csv", token_env="MY_TOKEN"))


def test_api_url_401_is_one_clear_line_without_the_token(server, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "wrong-token-xyz")
    url = f"http://127.0.0.1:{server.server_port}/v2/experiments/50001/results"
    with pytest.raises(ResultsError) as err:
        load_results(url, token_env="MY_TOKEN")
    msg = str(err.value)
    assert "401" in msg and "$MY_TOKEN" in msg and "wrong-token-xyz" not in msg and "\n" not in msg
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(ResultsError, match=r"no token: set \$MY_TOKEN"):
        load_results(url, token_env="MY_TOKEN")


def test_204_no_results_yet_is_empty_with_a_warning(server, caplog):
    url = f"http://127.0.0.1:{server.server_port}/empty/v2/experiments/50001/results"
    with caplog.at_level("WARNING", logger="toolkit"):
        frame = load_results(url)
    assert frame.empty and list(frame.columns) == list(RESULTS)
    assert "up to 10 minutes" in caplog.text


# ------------------------------------------------------------------------------- E3

_TS = pa.timestamp("ms", tz="UTC")
_EXPS = pa.list_(pa.struct([("campaign_id", pa.string()), ("experiment_id", pa.string()),
                            ("variation_id", pa.string()), ("is_holdback", pa.bool_())]))


def write_e3(root, decisions: list[dict], events: list[dict]) -> None:
    d = root / "type=decisions" / "date=2023-11-14" / "experiment=50001"
    d.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(decisions, schema=pa.schema([
        ("uuid", pa.string()), ("timestamp", _TS), ("visitor_id", pa.string()), ("campaign_id", pa.string()),
        ("experiment_id", pa.string()), ("variation_id", pa.string()), ("is_holdback", pa.bool_()),
        ("revision", pa.string())])), d / "part-0.parquet")
    e = root / "type=events" / "date=2023-11-14" / "event=purchase"
    e.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(events, schema=pa.schema([
        ("uuid", pa.string()), ("timestamp", _TS), ("visitor_id", pa.string()), ("experiments", _EXPS),
        ("entity_id", pa.string()), ("event_name", pa.string()), ("revenue", pa.int64()), ("value", pa.float64()),
        ("revision", pa.string())])), e / "part-0.parquet")


def test_e3_per_event_frames_and_aggregate(tmp_path):
    from datetime import UTC, datetime

    t = datetime(2023, 11, 14, 12, tzinfo=UTC)
    dec = [{"uuid": f"d{i}", "timestamp": t, "visitor_id": f"v{i}", "campaign_id": "60001", "experiment_id": "50001",
            "variation_id": "70001" if i < 2 else "70002", "is_holdback": False, "revision": "42"} for i in range(3)]
    att = lambda v: [{"campaign_id": "60001", "experiment_id": "50001", "variation_id": v, "is_holdback": False}]  # noqa: E731
    ev = [{"uuid": "c0", "timestamp": t, "visitor_id": "v0", "experiments": att("70001"), "entity_id": "40001",
           "event_name": "purchase", "revenue": 500, "value": None, "revision": "42"},
          {"uuid": "c1", "timestamp": t, "visitor_id": "v0", "experiments": att("70001"), "entity_id": "40001",
           "event_name": "purchase", "revenue": 700, "value": None, "revision": "42"},
          {"uuid": "c2", "timestamp": t, "visitor_id": "v9", "experiments": [], "entity_id": "40001",
           "event_name": "purchase", "revenue": None, "value": None, "revision": "42"}]
    write_e3(tmp_path, dec, ev)
    e3 = load_e3(tmp_path)
    assert len(e3.decisions) == 3 and len(e3.events) == 3 and len(e3.attributions) == 2
    assert e3.decisions["timestamp"].iloc[0] == int(t.timestamp() * 1000)
    assert detect_results_format(tmp_path) == "e3"
    frame = load_results(tmp_path).set_index("variation_id")
    assert frame.loc["70001", "visitors"] == 2 and frame.loc["70002", "visitors"] == 1
    assert (frame.loc["70001", "unique_conversions"], frame.loc["70001", "total_conversions"],
            frame.loc["70001", "revenue"]) == (1, 2, 1200)
    assert pd.isna(frame.loc["70002", "total_conversions"])


def test_e3_broken(tmp_path):
    with pytest.raises(ResultsError, match="no type=decisions"):
        load_e3(tmp_path)
    bad = tmp_path / "type=events" / "date=2023-11-14"
    bad.mkdir(parents=True)
    (bad / "part-0.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ResultsError, match="unreadable Parquet"):
        load_e3(tmp_path)
