"""``toolkit map``: an export -> Optimizely events (JSON Lines) plus a quarantine file and a summary."""

from __future__ import annotations

import argparse
import sys

from ..logs import Redactor
from .common import add_config_args, add_datafile_args, add_mapping_args, config_from_args, datafile_from_args

ORDER = 30


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map", help="map an export to Optimizely events (JSONL) with a quarantine of rejected rows",
        description="Reads a Datafly export (JSONL, CSV or Parquet), maps it through the blueprint and the "
        "datafile, writes the Optimizely events and the quarantined rows as JSON Lines, and prints "
        "rows in / mapped / skipped / quarantined with a count per reason. Exit 0 (quarantined rows are "
        "reported, not an error), 2 on unusable input.")
    p.add_argument("--export", metavar="PATH", required=True, help="the export file (.jsonl/.csv/.parquet, .gz ok)")
    add_mapping_args(p)
    p.add_argument("--out", metavar="EVENTS.jsonl", required=True, help="where to write the Optimizely events")
    p.add_argument("--quarantine", metavar="QUARANTINE.jsonl",
                   help="where to write rejected rows (default: next to --out, .quarantine.jsonl)")
    p.add_argument("--chunk-rows", type=int, default=200_000, metavar="N", help="rows per chunk (default 200000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(p)
    add_datafile_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from pathlib import Path

    from ..blueprint import load_blueprint
    from ..mapping import map_export

    cfg = config_from_args(args, redactor)
    datafile = datafile_from_args(args, cfg)
    blueprint = load_blueprint(args.blueprint)
    out = Path(args.out)
    quarantine = Path(args.quarantine) if args.quarantine else out.with_name(out.stem + ".quarantine.jsonl")
    result = map_export(
        args.export, datafile, blueprint=blueprint, identity=args.identity, decisions=args.decisions,
        fmt=args.fmt, progress=not args.no_progress, events_out=out, quarantine_out=quarantine,
        chunk_rows=args.chunk_rows, keep_frames=False, workers=args.workers,
    )
    print(f"datafile      revision {datafile.revision} ({datafile.fetch.source if datafile.fetch else '?'})")
    for line in result.summary.lines():
        print(redactor.clean(line), file=sys.stdout)
    return 0
