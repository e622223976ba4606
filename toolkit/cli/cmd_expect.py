"""``toolkit expect``: predict the counts Optimizely should show for a mapped events file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ExportError
from ..logs import Redactor
from .common import add_config_args, add_datafile_args, config_from_args, datafile_from_args

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "expect", help="predict the results Optimizely should show for mapped events",
        description="Applies Optimizely's attribution rules (decision strictly before the conversion, "
        "first variation wins, only keys attached to a running experiment, duplicates once) to the "
        "events of `toolkit map` and writes the expected visitors / conversions / revenue per "
        "experiment x variation x event key. Exit 0, 2 on unusable input.",
    )
    p.add_argument("--events", metavar="EVENTS.jsonl", required=True, help="events file written by `toolkit map`")
    p.add_argument("--out", metavar="EXPECTED.csv", required=True, help="where to write the predicted counts")
    p.add_argument("--not-counted", metavar="NOT_COUNTED.csv",
                   help="also write one row per conversion that will not count, with the reason")
    add_config_args(p)
    add_datafile_args(p)
    p.set_defaults(func=run)


def _write_csv(frame, path: Path, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    except OSError as exc:
        raise ExportError(f"{what} {path}: cannot write it ({exc.strerror}); choose another path") from None


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..attribution import predict
    from ..events_io import read_events_jsonl

    out = sys.stdout
    cfg = config_from_args(args, redactor)
    datafile = datafile_from_args(args, cfg)
    events = read_events_jsonl(Path(args.events))
    prediction = predict(events, datafile)
    _write_csv(prediction.counts, Path(args.out), "--out")
    if args.not_counted:
        _write_csv(prediction.not_counted, Path(args.not_counted), "--not-counted")

    n_imp = int((events["kind"] == "impression").sum())
    n_syn = int(((events["kind"] == "impression") & events["synthesized"].fillna(False)).sum())
    n_conv = int((events["kind"] == "conversion").sum())
    print(f"events       {len(events)} ({n_conv} conversions, {n_imp} impressions of which "
          f"{n_syn} synthesized by offline bucketing)", file=out)
    print(f"datafile     revision {datafile.revision}", file=out)
    print("expected results (per experiment x variation x event key)", file=out)
    _print_counts(prediction.counts, out)
    print("conversions that will not count (rows per reason)", file=out)
    for reason, n in prediction.reasons().items():
        print(f"  {reason:<27} {n}", file=out)
    if n_syn:
        print("note: synthesized decisions are the SDK's offline bucketing; live decisions may differ "
              "(user profiles, attributes not in the export)", file=out)
    print(f"wrote {args.out}" + (f" and {args.not_counted}" if args.not_counted else ""), file=out)
    return 0


def _print_counts(counts, out) -> None:
    if counts.empty:
        print("  (no running experiment in the datafile)", file=out)
        return
    cols = ["experiment_key", "variation_key", "event_key", "visitors", "unique_conversions",
            "total_conversions", "revenue"]
    heads = ["experiment", "variation", "key", "visitors", "unique", "total", "revenue"]
    table = counts[cols].astype(object).where(counts[cols].notna(), "-").astype(str)
    widths = [max(len(h), *(len(v) for v in table[c])) for h, c in zip(heads, cols, strict=True)]
    print("  " + "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths, strict=True))),
          file=out)
    for row in table.itertuples(index=False):
        print("  " + "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))),
              file=out)
