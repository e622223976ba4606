"""The sample: deterministic, manifest counts match what is in the files (counted here
independently from the raw files), datafile accepted, activations agree with the SDK bucketer."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from toolkit.cli import main
from toolkit.config import load_integration
from toolkit.datafile import parse_datafile
from toolkit.errors import UserInputError
from toolkit.exports import load_export
from toolkit.sample import SAMPLE_FILES, generate_sample

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "sample"
ORDER_NAMES = {"Order Completed", "order_completed", "purchase", "Purchase"}
ACTIVATION = {"Experiment Viewed", "experiment_viewed"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, events=2000, seed=7)
    return out


def raw_jsonl(path: Path) -> tuple[list[dict], int]:
    good, bad = [], 0
    for line in path.read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        good.append(obj)
    return good, bad


def test_bundled_sample_is_what_the_generator_writes(fresh):
    for name in SAMPLE_FILES:
        if name != "export.parquet":
            assert (fresh / name).read_bytes() == (BUNDLED / name).read_bytes(), name
    # Parquet bytes carry the writer's pyarrow version: compare the content
    assert pq.read_table(fresh / "export.parquet").equals(pq.read_table(BUNDLED / "export.parquet"))


def test_same_seed_same_bytes_other_seed_other_events(fresh, tmp_path):
    generate_sample(tmp_path / "again", events=2000, seed=7)
    for name in SAMPLE_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (fresh / name).read_bytes(), name
    generate_sample(tmp_path / "other", events=2000, seed=8)
    assert (tmp_path / "other" / "export.jsonl").read_bytes() != (fresh / "export.jsonl").read_bytes()


def test_manifest_counts_match_the_files(fresh):
    m = json.loads((fresh / "manifest.json").read_text())
    d = m["defects"]
    events, malformed = raw_jsonl(fresh / "export.jsonl")
    assert malformed == d["malformed_json_line"]["jsonl"] == 1
    assert len(events) == m["events"] == 2000
    assert m["files"]["export.jsonl"]["rows"] == 2001
    with open(fresh / "export.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == m["files"]["export.csv"]["rows"] == 2000
    assert pq.read_metadata(fresh / "export.parquet").num_rows == 2000

    assert dict(Counter(e["type"] for e in events)) == m["kinds"]["by_type"]
    tracks = [e for e in events if e["type"] == "track"]
    assert dict(Counter(e["event"] for e in tracks)) == m["kinds"]["track_by_name"]
    assert {k: v for k, v in Counter(e["event"] for e in tracks).items() if k in ("Signup", "Purchase")} \
        == d["miscased_keys"] and all(v >= 1 for v in d["miscased_keys"].values())

    orders = [e for e in tracks if e["event"] in ORDER_NAMES]
    cur = Counter(e["properties"]["currency"] for e in orders)
    assert (cur["JPY"], cur["KWD"]) == (d["jpy_orders"], d["kwd_orders"]) and min(cur["JPY"], cur["KWD"]) >= 1
    assert sum(n for c, n in cur.items() if c not in {"USD", "GBP", "EUR", "JPY", "KWD"}) == d["unknown_currency"] >= 1
    money = [next(p[k] for k in ("revenue", "total", "value") if k in p) for p in (e["properties"] for e in orders)]
    assert sum(isinstance(v, float) for v in money) == d["decimal_revenue"] >= 1
    assert sum(isinstance(v, str) for v in money) == d["string_revenue"] >= 1
    assert sum(isinstance(v, int) for v in money) == d["integer_revenue"]
    assert sum(float(v) < 0 for v in money) == d["negative_revenue"] >= 1
    assert sum(1 for e in events if not e.get("userId") and not e.get("anonymousId")) == d["missing_ids"] >= 1

    anons = defaultdict(set)
    for e in events:
        if e.get("userId") and e.get("anonymousId"):
            anons[e["userId"]].add(e["anonymousId"])
    assert sum(len(s) > 1 for s in anons.values()) == d["multi_anonymous_persons"] >= 1

    # visitor-level defects, with the timestamps as the loader reads them
    ts = dict(zip(*load_export(fresh / "export.jsonl").events[["event_id", "timestamp"]].T.values, strict=True))
    decided, converted = {}, defaultdict(list)
    for e in tracks:
        v = e.get("userId") or e.get("anonymousId")
        if not v or e["messageId"] not in ts:
            continue
        if e["event"] in ACTIVATION:
            decided[v] = min(decided.get(v, ts[e["messageId"]]), ts[e["messageId"]])
        else:
            converted[v].append(ts[e["messageId"]])
    never = [v for v in converted if v not in decided]
    assert len(never) == d["unbucketed_visitors"] >= 1
    assert sum(len(converted[v]) for v in never) == d["unbucketed_conversions"]
    before = sum(t < decided[v] for v, tl in converted.items() if v in decided for t in tl)
    assert before == d["conversion_before_decision"] >= 1


def test_loader_reads_the_same_events_from_every_format(fresh):
    m = json.loads((fresh / "manifest.json").read_text())
    loaded = {f: load_export(fresh / f"export.{f}") for f in ("jsonl", "csv", "parquet")}
    for f, chunk in loaded.items():
        reasons = Counter(chunk.quarantine["reason"])
        assert reasons["unparseable_timestamp"] == m["defects"]["unparseable_timestamp"][f]
        assert reasons["malformed_row"] == m["defects"]["malformed_json_line"][f]
        assert chunk.rows_in == m["files"][f"export.{f}"]["rows"]
    cols = [c for c in loaded["jsonl"].events.columns if c != "source_row"]
    base = loaded["jsonl"].events[cols]
    for f in ("csv", "parquet"):
        assert loaded[f].events[cols].equals(base), f


def test_datafile_config_and_activations_agree_with_the_sdk(fresh):
    df = parse_datafile((fresh / "datafile.json").read_text())
    assert set(df.events) >= {"purchase", "add_to_cart", "begin_checkout", "form_submit", "signup"}
    running = df.running_experiments()
    assert 2 <= len(running) <= 3 and any(e.rule_type == "feature-test" for e in running)
    assert any(e.status == "Paused" for e in df.experiments.values())
    assert all(e.layer_id for e in df.experiments.values())
    cfg = load_integration(fresh / "config.json", env={})
    assert (cfg.account_id, cfg.project_id) == (df.account_id, df.project_id)
    assert cfg.sdk_key.reveal() == df.raw["sdkKey"] and cfg.datafile_url.endswith(f"/{df.raw['sdkKey']}.json")

    from optimizely.bucketer import Bucketer

    pc, bucketer = df.project_config(), Bucketer()
    events, _ = raw_jsonl(fresh / "export.jsonl")
    checked = 0
    for e in events:
        if e.get("event") not in ACTIVATION:
            continue
        p = e["properties"]
        exp = df.experiment(p.get("experiment_id") or p["experiment_key"])
        want = exp.variation(p.get("variation_id") or p["variation_key"])
        visitor = e.get("userId") or e["anonymousId"]
        got, _ = bucketer.bucket(pc, pc.get_experiment_from_id(exp.id), visitor, visitor)
        assert got is not None and got.id == want.id
        checked += 1
    assert checked > 100


def test_cli(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "s"), "--events", "300", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "export.jsonl" in out and "unbucketed_visitors" in out
    assert {p.name for p in (tmp_path / "s").iterdir()} == set(SAMPLE_FILES)
    assert main(["sample", "--out", str(tmp_path / "t"), "--events", "5"]) == 2
    assert "at least 200" in capsys.readouterr().err
    with pytest.raises(UserInputError):
        generate_sample(tmp_path / "u", events=10)
