"""``toolkit validate``: run the expectation suites over mapped events (maps the export first, or
reads the events file of ``toolkit map``), print the summary, write validation.json + Data Docs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ExportError
from ..logs import Redactor
from .common import add_config_args, add_datafile_args, add_mapping_args, config_from_args, datafile_from_args

ORDER = 35


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate", help="check mapped events against the expectation suites (keys, revenue, identity/time)",
        description="Maps the export (same options as `toolkit map`) or reads --events, runs the Great "
        "Expectations suites of data/expectations (or --suites), prints each expectation with its failing "
        "count, share and example rows, and writes OUT/validation.json and OUT/data_docs/. Exit 0 when no "
        "error-severity expectation fails (warnings are reported only), 1 when one does, 2 on unusable input.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--export", metavar="PATH", help="an export to map first (.jsonl/.csv/.parquet, .gz ok)")
    src.add_argument("--events", metavar="EVENTS.jsonl", help="events written by `toolkit map`")
    p.add_argument("--quarantine", metavar="QUARANTINE.jsonl", help="with --events: the quarantine file of `toolkit map`")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for validation.json and data_docs/")
    p.add_argument("--suites", metavar="DIR", help="folder of suite JSON files (default data/expectations)")
    m = p.add_argument_group("mapping (with --export)")
    add_mapping_args(m)
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = p.add_argument_group("rules")
    r.add_argument("--allow-refunds", action="store_true", default=None,
                   help="accept negative revenue (default: the blueprint's allow_refunds)")
    r.add_argument("--no-decisions-expected", action="store_true",
                   help="do not require a decision before each conversion (implied by --decisions none)")
    r.add_argument("--window-start", metavar="TIME", help="run window start (ISO 8601 or epoch ms)")
    r.add_argument("--window-end", metavar="TIME", help="run window end (ISO 8601 or epoch ms)")
    r.add_argument("--max-key-not-in-datafile", type=float, default=0.01, metavar="SHARE",
                   help="accepted share of rows quarantined as key_not_in_datafile (default 0.01)")
    r.add_argument("--magnitude-factor", type=float, default=30.0, metavar="X",
                   help="revenue more than X times (or 1/X) its currency's median is flagged (default 30)")
    add_config_args(p)
    add_datafile_args(p)
    p.set_defaults(func=run)


def _read_events(path: Path):
    from ..events_io import read_events_jsonl

    try:
        return read_events_jsonl(path)
    except (ValueError, TypeError) as exc:  # a field of the wrong type for the EVENTS contract
        raise ExportError(f"events file {path}: a field has the wrong type ({' '.join(str(exc).split())[:200]}); "
                          "regenerate it with `toolkit map`") from None


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..blueprint import load_blueprint
    from ..contracts import QUARANTINE, empty
    from ..events_io import read_quarantine_jsonl
    from ..expectations import ValidationSettings, load_suites, run_suites

    out = sys.stdout
    settings_kw = dict(window_start=args.window_start, window_end=args.window_end,
                       key_not_in_datafile_max_share=args.max_key_not_in_datafile,
                       magnitude_factor=args.magnitude_factor)
    if args.quarantine and not args.events:
        raise ExportError("--quarantine goes with --events (with --export the quarantine comes from mapping)")
    suites = load_suites(args.suites)  # a broken suite fails before any mapping work
    Path(args.out).mkdir(parents=True, exist_ok=True)  # so does an unwritable --out (not after validating)
    cfg = config_from_args(args, redactor)
    datafile = datafile_from_args(args, cfg)
    blueprint = load_blueprint(args.blueprint) if args.export or args.blueprint else None
    allow_refunds = args.allow_refunds if args.allow_refunds is not None else bool(blueprint and blueprint.allow_refunds)
    decisions_expected = not args.no_decisions_expected and not (args.export and args.decisions == "none")
    settings = ValidationSettings(allow_refunds=allow_refunds, decisions_expected=decisions_expected, **settings_kw)

    if args.export:
        from ..mapping import map_export

        mapped = map_export(args.export, datafile, blueprint=blueprint, identity=args.identity,
                            decisions=args.decisions, fmt=args.fmt, progress=not args.no_progress,
                            workers=args.workers)
        events, quarantine = mapped.events, mapped.quarantine
        print(f"mapped        {mapped.summary.rows_in} rows in: {mapped.summary.mapped} events, "
              f"{mapped.summary.quarantined} quarantined, {mapped.summary.skipped} skipped", file=out)
    else:
        events = _read_events(Path(args.events))
        quarantine = read_quarantine_jsonl(args.quarantine) if args.quarantine else empty(QUARANTINE)
    print(f"datafile      revision {datafile.revision}", file=out)
    report = run_suites(events, quarantine, datafile, suites=suites, settings=settings)
    paths = report.write(Path(args.out))
    for line in report.lines():
        print(redactor.clean(line), file=out)
    print(f"wrote {paths['validation']} and {paths['data_docs']}", file=out)
    return report.exit_code
