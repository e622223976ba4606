"""``toolkit sample``: write a synthetic Datafly export (JSONL, CSV, Parquet) with known defects,
its datafile, an install config and a manifest of what was injected."""

from __future__ import annotations

import argparse
import sys

from ..logs import Redactor

ORDER = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample", help="write a synthetic export with known defects, its datafile and config",
        description="Writes DIR/export.jsonl, export.csv, export.parquet (the same events), datafile.json, "
        "config.json (Datafly install JSON) and manifest.json (counts of every event kind and injected defect). "
        "Same --seed and --events give byte-identical files.")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created if needed)")
    p.add_argument("--events", type=int, default=2000, metavar="N", help="number of events (default 2000, min 200)")
    p.add_argument("--seed", type=int, default=7, metavar="S", help="random seed (default 7)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..sample import generate_sample

    m = generate_sample(args.out, events=args.events, seed=args.seed)
    out = sys.stdout
    d = m["defects"]
    print(f"sample written to {args.out} (seed {m['seed']}, {m['events']} events)", file=out)
    for name, info in m["files"].items():
        print(f"  {name:<16} {info['rows']} rows", file=out)
    print("  datafile.json    account {account_id}, project {project_id}, revision {revision}".format(**m["datafile"]),
          file=out)
    print("  config.json      install JSON for the same project", file=out)
    print("defects (see manifest.json notes):", file=out)
    for key, value in d.items():
        shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        print(f"  {key:<28} {shown}", file=out)
    return 0
