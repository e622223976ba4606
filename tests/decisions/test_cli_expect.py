"""``toolkit expect``: files out, the printed table, exit codes on unusable input."""

from __future__ import annotations

import pandas as pd

from toolkit.cli import main
from toolkit.events_io import write_events_jsonl

from .builders import CHECKOUT, CONTROL, FIXTURE, conv, frame, imp


def _events(tmp_path):
    path = tmp_path / "events.jsonl"
    ev = frame(imp("v", CHECKOUT, CONTROL, 10), conv("v", "purchase", 20, 4999), conv("v", "purchase", 5, uuid="early"),
               conv("w", "nope", 30, uuid="unknown"))
    ev.loc[0, "synthesized"] = True
    write_events_jsonl(ev, path)
    return path


def test_writes_counts_and_not_counted(tmp_path, capsys):
    out, nc = tmp_path / "out" / "expected.csv", tmp_path / "nc.csv"
    rc = main(["expect", "--events", str(_events(tmp_path)), "--datafile", str(FIXTURE),
               "--out", str(out), "--not-counted", str(nc)])
    assert rc == 0
    counts = pd.read_csv(out, dtype={"experiment_id": str, "variation_id": str})
    row = counts[(counts["experiment_id"] == CHECKOUT) & (counts["variation_id"] == CONTROL)
                 & (counts["event_key"] == "purchase")].iloc[0]
    assert (row["visitors"], row["unique_conversions"], row["total_conversions"], row["revenue"]) == (1, 1, 1, 4999)
    assert list(pd.read_csv(nc)[["uuid", "reason"]].itertuples(index=False, name=None)) == [
        ("early", "decision_after_conversion"), ("unknown", "key_not_in_datafile")]
    text = capsys.readouterr().out
    assert "1 synthesized" in text and "synthesized decisions" in text
    assert "checkout_flow  checkout_control  purchase" in text
    assert "key_not_in_datafile         1" in text


def test_missing_events_file_is_exit_2(tmp_path, capsys):
    rc = main(["expect", "--events", str(tmp_path / "none.jsonl"), "--datafile", str(FIXTURE),
               "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "none.jsonl" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_broken_events_line_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "conversion", "uuid": "a"}\n{not json\n')
    rc = main(["expect", "--events", str(bad), "--datafile", str(FIXTURE), "--out", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.jsonl:2" in err
    assert not (tmp_path / "x.csv").exists()


def test_no_datafile_is_exit_2(tmp_path, capsys):
    rc = main(["expect", "--events", str(_events(tmp_path)), "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and "--datafile" in capsys.readouterr().err


def test_unwritable_out_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main(["expect", "--events", str(_events(tmp_path)), "--datafile", str(FIXTURE),
               "--out", str(blocker / "x.csv")])
    assert rc == 2 and "--out" in capsys.readouterr().err
