"""map_export and `toolkit map` end to end on real export files (the exports loader reads them)."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

from toolkit.cli import main
from toolkit.contracts import Reason
from toolkit.events_io import read_events_jsonl
from toolkit.mapping import map_export

from .exportfile import iso, synthetic, write_jsonl


@pytest.fixture
def export(tmp_path):
    return write_jsonl(tmp_path / "export.jsonl", synthetic(60))


def test_counts_add_up_including_loader_quarantine(export, datafile, tmp_path):
    out = map_export(export, datafile, progress=False, events_out=tmp_path / "e.jsonl",
                     quarantine_out=tmp_path / "q.jsonl", chunk_rows=37)
    s = out.summary
    assert s.balanced and s.rows_in == len(export.read_text().splitlines())
    assert s.by_reason[Reason.MALFORMED_ROW] == 6  # from the loader
    assert s.by_reason[Reason.KEY_NOT_IN_DATAFILE] == 12  # "Purchase"
    assert s.by_reason[Reason.INVALID_REVENUE] == 5  # 12.999 GBP
    assert s.by_reason[Reason.MISSING_VISITOR_ID] == 9
    assert s.by_skip == {"not_a_track_event": 140}  # page + identify (+ 20 second-device identifies)
    assert s.impressions == 60 and s.conversions == s.mapped - 60
    assert s.warnings["default_currency"] > 0
    # the files hold exactly what the summary counts
    assert len(read_events_jsonl(tmp_path / "e.jsonl")) == s.mapped == len(out.events)
    q = [orjson.loads(x) for x in (tmp_path / "q.jsonl").read_bytes().splitlines()]
    assert len(q) == s.quarantined == len(out.quarantine)
    assert all(set(r) == {"source_event_id", "source_row", "reason", "detail"} for r in q)


def test_same_export_twice_is_byte_identical_whatever_the_chunking(export, datafile, tmp_path):
    paths = []
    for i, rows in enumerate((10_000, 37, 10_000)):
        e, q = tmp_path / f"e{i}.jsonl", tmp_path / f"q{i}.jsonl"
        map_export(export, datafile, progress=False, events_out=e, quarantine_out=q, chunk_rows=rows)
        paths.append((e.read_bytes(), q.read_bytes()))
    assert paths[0] == paths[2]
    assert paths[0] == paths[1]  # neither events nor quarantine depend on chunk boundaries


def test_identity_policies_and_multi_anonymous(export, datafile):
    plain = map_export(export, datafile, progress=False).summary
    stitched = map_export(export, datafile, progress=False, identity="stitched", chunk_rows=50).summary
    # a third of the people (p % 3 == 0) logged in on a second device: two anonymous ids each
    assert plain.multi_anonymous == stitched.multi_anonymous == 20
    # plain: anon-p (before login), user-p, anon2-p per person; stitched: anon-p always joins user-p,
    # anon2-p only for the people who logged in on the second device
    assert (plain.visitors, stitched.visitors) == (180, 100)
    ev = map_export(export, datafile, progress=False, identity="stitched").events
    assert set(ev.loc[ev["source_event_id"].str.startswith("0-"), "visitor_id"]) == {"user-0"}
    assert set(ev.loc[ev["source_event_id"].str.startswith("1-"), "visitor_id"]) == {"user-1", "anon2-1"}
    plain_ev = map_export(export, datafile, progress=False).events
    assert set(plain_ev.loc[plain_ev["source_event_id"].str.startswith("0-"), "visitor_id"]) == \
        {"user-0", "anon-0-" + plain_ev["visitor_id"].str.extract(r"anon-0-(\d+)")[0].dropna().iloc[0], "anon2-0"}


def test_decisions_modes(export, datafile):
    none = map_export(export, datafile, progress=False, decisions="none").summary
    assert none.impressions == 0 and none.by_skip["activation_not_sent"] == 60 and none.balanced
    bucket = map_export(export, datafile, progress=False, decisions="bucket")
    s = bucket.summary
    assert s.synthesized > 0 and s.balanced
    synth = bucket.events[bucket.events["synthesized"].fillna(False)]
    assert len(synth) == s.synthesized and (synth["kind"] == "impression").all()


def test_cli_map_prints_the_summary_and_exits_0(export, tmp_path, capsys, fixture_datafile_path):
    out = tmp_path / "events.jsonl"
    rc = main(["map", "--export", str(export), "--datafile", str(fixture_datafile_path), "--out", str(out),
               "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "rows in" in text and "key_not_in_datafile" in text and ": ok" in text
    assert "people with more than one anonymous id" in text
    assert (tmp_path / "events.quarantine.jsonl").exists()
    assert len(read_events_jsonl(out)) > 0


@pytest.mark.parametrize(("argv", "needle"), [
    (["--export", "{missing}"], "export"),
    (["--blueprint", "{bad_bp}"], "blueprint"),
    (["--datafile", "{missing}"], "datafile"),
])
def test_cli_unusable_input_is_one_line_exit_2(export, tmp_path, capsys, fixture_datafile_path, argv, needle):
    bad_bp = tmp_path / "bad.toml"
    bad_bp.write_text("[revenue]\nallow_refunds = 1\n")
    subst = {"missing": str(tmp_path / "nope.jsonl"), "bad_bp": str(bad_bp)}
    base = {"--export": str(export), "--datafile": str(fixture_datafile_path), "--out": str(tmp_path / "o.jsonl")}
    base[argv[0]] = argv[1].format(**subst)
    args = ["map", "--no-progress"] + [x for kv in base.items() for x in kv]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_revenue_table_through_a_real_file(tmp_path, datafile):
    rows = [{"messageId": f"m{i}", "type": "track", "event": "Order Completed", "anonymousId": "a",
             "timestamp": iso(i), "properties": props}
            for i, props in enumerate([{"total": 89.99, "currency": "GBP"}, {"revenue": 19.99, "currency": "USD"},
                                       {"revenue": "19.99", "currency": "USD"}, {"total": 1200, "currency": "JPY"},
                                       {"value": "12.345", "currency": "KWD"}])]
    out = map_export(write_jsonl(tmp_path / "x.jsonl", rows), datafile, progress=False)
    assert out.events["revenue"].tolist() == [8999, 1999, 1999, 1200, 12345]
    assert out.quarantine.empty and pd.Series(out.events["kind"]).eq("conversion").all()
