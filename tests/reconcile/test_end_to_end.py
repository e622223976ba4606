"""End to end: map data/sample/export.jsonl, replay it to a Sandbox, load the sandbox's results in each
format, reconcile. The sample's injected defects must come out as diagnoses with their manifest counts
and nothing unexplained; injected delivery defects (wrong project id, stale datafile, lag) likewise."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.datafile import load_datafile
from toolkit.delivery import deliver
from toolkit.ledger import Ledger, read_ledger
from toolkit.mapping import map_export, write_quarantine_jsonl
from toolkit.payload import iter_bodies
from toolkit.reconcile import reconcile
from toolkit.results import load_e3, load_results
from toolkit.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
LATER = timedelta(minutes=11)


@pytest.fixture(scope="module")
def sample():
    df = load_datafile(SAMPLE / "datafile.json")
    out = map_export(SAMPLE / "export.jsonl", df, progress=False)
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    return df, out, manifest


def replay(tmp: Path, sb: Sandbox, df, events, *, project_id=None, strict=False):
    run = {"account_id": df.account_id, "project_id": project_id or df.project_id, "revision": df.revision}
    with Ledger.create(tmp / "ledger.sqlite", run=run) as book:
        bodies = iter_bodies(events, account_id=df.account_id, project_id=run["project_id"], revision=df.revision)
        deliver(bodies, endpoint=sb.events_url, ledger=book, progress=False, strict=strict)
    return read_ledger(tmp / "ledger.sqlite")


def urls(sb, df):
    return [sb.results_url(e.id) for e in df.running_experiments()]


def test_sample_reconciles_to_zero_unexplained_in_every_results_format(tmp_path, sample):
    df, out, manifest = sample
    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json") as sb:
        led = replay(tmp_path, sb, df, out.events)
        as_of = datetime.now(UTC) + LATER
        api = load_results(urls(sb, df))
        csv = load_results([sb.results_csv_url(e.id) for e in df.running_experiments()])
        sb.export_e3(tmp_path / "e3")
    e3 = load_e3(tmp_path / "e3")
    defects = manifest["defects"]
    for results, e3_frames in ((api, None), (csv, None), (load_results(tmp_path / "e3", datafile=df), e3)):
        rec = reconcile(led, results, df, quarantine=out.quarantine, mapping=out.summary, e3=e3_frames, as_of=as_of)
        assert rec.unexplained == 0, rec.table[rec.table["unexplained"] != 0]
        assert not (rec.table["status"] == "gap").any()
        assert rec.diagnosis("key_mismatch").count == sum(defects["miscased_keys"].values())
        assert rec.diagnosis("not_bucketed").count == defects["unbucketed_conversions"]
        assert rec.diagnosis("visitor_inflation").count == defects["multi_anonymous_persons"]
        assert rec.diagnosis("decision_after_conversion").count >= defects["conversion_before_decision"]
    assert rec.arrivals["arrived"].all()  # with E3: every delivered event was stored


def test_cli_against_the_sandbox(tmp_path, sample, capsys):
    df, out, _ = sample
    write_quarantine_jsonl(out.quarantine, tmp_path / "q.jsonl")
    (tmp_path / "summary.json").write_text(json.dumps(out.summary.to_dict()))
    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json") as sb:
        replay(tmp_path, sb, df, out.events)
        template = sb.url.rstrip("/") + "/v2/experiments/{experiment_id}/results"
        args = ["reconcile", "--ledger", str(tmp_path / "ledger.sqlite"), "--results", template,
                "--datafile", str(SAMPLE / "datafile.json"), "--quarantine", str(tmp_path / "q.jsonl"),
                "--map-summary", str(tmp_path / "summary.json"), "--out", str(tmp_path / "out")]
        code = main(args)
        text = capsys.readouterr().out
        assert code == 1  # conversions were lost (explained, not ok)
        assert "unexplained conversions: 0" in text and "key_mismatch" in text
        doc = json.loads((tmp_path / "out" / "diagnoses.json").read_text())
        assert doc["summary"]["unexplained_conversions"] == 0
        assert (tmp_path / "out" / "reconciliation.csv").stat().st_size > 0
        # a huge tolerance accepts every row: exit 0
        assert main([*args, "--tolerance", "100000,0.99"]) == 0
    capsys.readouterr()
    assert main(["reconcile", "--ledger", str(tmp_path / "missing.sqlite"), "--results", template, "--datafile",
                 str(SAMPLE / "datafile.json"), "--out", str(tmp_path / "o2")]) == 2
    assert main([*args[:-2], "--out", str(tmp_path / "o3"), "--tolerance", "x"]) == 2
    err = capsys.readouterr().err
    assert "--tolerance" in err and "Traceback" not in err


def test_wrong_project_id_400(tmp_path, sample):
    df, out, _ = sample
    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json") as sb:
        led = replay(tmp_path, sb, df, out.events, project_id="11111111")
        rec = reconcile(led, load_results(urls(sb, df)), df, as_of=datetime.now(UTC) + LATER)
    d = rec.diagnosis("rejected_400")
    assert d.count == len(out.events) and "project_id sent '11111111'" in d.detail
    assert rec.unexplained == 0


def test_stale_datafile(tmp_path, sample):
    df, out, _ = sample
    newer = json.loads((SAMPLE / "datafile.json").read_text())
    newer["revision"] = str(int(newer["revision"]) + 1)
    (tmp_path / "df.json").write_text(json.dumps(newer))
    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json") as sb:
        led = replay(tmp_path, sb, df, out.events)
        current = sb.set_datafile(tmp_path / "df.json")
        rec = reconcile(led, load_results(urls(sb, df)), current, as_of=datetime.now(UTC) + LATER)
    d = rec.diagnosis("stale_datafile")
    assert d.count == len(out.events) and f"current datafile {newer['revision']}" in d.examples


def test_processing_lag(tmp_path, sample):
    df, out, _ = sample
    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json", lag_seconds=600) as sb:
        led = replay(tmp_path, sb, df, out.events)
        rec = reconcile(led, load_results(urls(sb, df)), df, as_of=datetime.now(UTC))
    assert rec.diagnosis("processing_lag").count > 0
    assert rec.unexplained == 0
    shutil.rmtree(tmp_path / "sb", ignore_errors=True)


def test_revenue_through_a_wrong_blueprint(tmp_path):
    """An export in major units (90 USD) mapped with a blueprint that claims the amounts are
    already in cents: Optimizely counts 90 instead of 9000, and reconcile names the unit error
    against a reference mapped with the correct blueprint."""
    from toolkit.attribution import predict
    from toolkit.blueprint import load_blueprint

    df = load_datafile(SAMPLE / "datafile.json")
    exp = next(e for e in df.running_experiments() if any(e.id in ev.experiment_ids and k == "purchase"
                                                          for k, ev in df.events.items()))
    variation = exp.variations[0]
    lines = []
    for i in range(6):
        visitor = f"00000000-0000-4000-8000-{i:012d}"
        lines.append({"type": "track", "event": "Experiment Viewed", "anonymousId": visitor,
                      "messageId": f"10000000-0000-4000-8000-{i:012d}", "timestamp": f"2026-11-03T10:00:0{i}.000Z",
                      "properties": {"experiment_id": exp.id, "variation_id": variation.id}})
        lines.append({"type": "track", "event": "Order Completed", "anonymousId": visitor,
                      "messageId": f"20000000-0000-4000-8000-{i:012d}", "timestamp": f"2026-11-03T11:00:0{i}.000Z",
                      "properties": {"revenue": 90 + i, "currency": "USD", "order_id": f"o{i}"}})
    export = tmp_path / "orders.jsonl"
    export.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[revenue]\namounts_in_minor_units = true\n")

    sent = map_export(export, df, blueprint=load_blueprint(wrong), progress=False)
    reference = map_export(export, df, progress=False)
    purchases = sent.events[sent.events["key"] == "purchase"]
    assert purchases["revenue"].tolist() == [90 + i for i in range(6)]  # sent as-is: 100x too small
    assert reference.events.loc[reference.events["key"] == "purchase", "revenue"].tolist() == \
        [(90 + i) * 100 for i in range(6)]

    with Sandbox(tmp_path / "sb", datafile=SAMPLE / "datafile.json") as sb:
        led = replay(tmp_path, sb, df, sent.events)
        results = load_results(urls(sb, df))
    rec = reconcile(led, results, df, expected=predict(reference.events, df), as_of=datetime.now(UTC) + LATER)
    d = rec.diagnosis("revenue_units")
    assert d is not None and d.count == 6 and "0.01" in d.detail
    revenue = rec.table[(rec.table["metric"] == "revenue") & (rec.table["event_key"] == "purchase")
                        & (rec.table["variation_id"] == variation.id)].iloc[0]
    assert (revenue["counted"], revenue["expected"]) == (sum(90 + i for i in range(6)), sum((90 + i) * 100 for i in range(6)))
    assert rec.unexplained == 0
