"""``toolkit reconcile``: compare a replay's ledger and the expected counts with Optimizely's results,
and explain every gap."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ResultsError, UserInputError
from ..logs import Redactor
from .common import add_config_args, add_datafile_args, config_from_args, datafile_from_args

ORDER = 70


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconcile", help="compare the ledger with Optimizely's results and explain every gap",
        description="Per experiment x variation x event key: sent and delivered (the ledger), expected "
        "to count (the attribution rules over what was delivered) and counted (the results), with a "
        "diagnosis for each gap. Writes reconciliation.csv, diagnoses.json (and arrivals.csv with E3). "
        "Exit 0 every row within tolerance, 1 not, 2 unusable input.")
    p.add_argument("--ledger", metavar="PATH", required=True, help="ledger of a replay run (SQLite)")
    p.add_argument("--results", metavar="PATH_OR_URL", required=True, action="append",
                   help="Results API JSON file or URL, CSV export, E3 folder, or a folder of results files; "
                   "repeat for several experiments; a URL may contain {experiment_id} (expanded for each "
                   "running experiment of the datafile)")
    p.add_argument("--results-format", choices=("api", "csv", "e3"), help="default: detected from the source")
    p.add_argument("--e3", metavar="DIR", help="E3 export folder for event-by-event arrival (implied by an E3 --results)")
    p.add_argument("--token-env", metavar="NAME", default=None,
                   help="environment variable holding the Results API token (default OPTIMIZELY_API_TOKEN)")
    p.add_argument("--start-time", metavar="ISO", help="results window start, passed to the Results API")
    p.add_argument("--end-time", metavar="ISO", help="results window end, passed to the Results API")
    p.add_argument("--tolerance", metavar="ABS,REL", default="0,0",
                   help="allowed difference per row: absolute, relative (default 0,0)")
    p.add_argument("--expected-events", metavar="PATH",
                   help="reference mapped events (JSONL of `toolkit map`): expected counts come from those of "
                   "them that were delivered (catches revenue units sent wrong)")
    p.add_argument("--quarantine", metavar="PATH", help="quarantine JSONL of `toolkit map` (keys not in the datafile)")
    p.add_argument("--map-summary", metavar="PATH", help="summary JSON of `toolkit map` (visitor inflation)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="table file format (default csv)")
    p.add_argument("--rows", type=int, default=20, metavar="N", help="table rows to print (default 20)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    add_config_args(p)
    add_datafile_args(p)
    p.set_defaults(func=run)


def _expected(path: str, ledger, datafile):
    from ..attribution import predict
    from ..events_io import read_events_jsonl

    ref = read_events_jsonl(path)
    delivered = set(ledger.events.loc[(ledger.events["status"] == "delivered").fillna(False), "uuid"])
    return predict(ref[ref["uuid"].isin(delivered).fillna(False)], datafile)


def _map_summary(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"map summary {path}: unreadable ({exc}); pass the summary JSON of `toolkit map`") from None
    return data.get("summary", data) if isinstance(data, dict) else {}


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..config import DEFAULT_TOKEN_ENV
    from ..events_io import read_quarantine_jsonl
    from ..ledger import read_ledger
    from ..reconcile import Tolerance, format_table, reconcile, write_outputs
    from ..results import e3_to_results, is_e3_root, load_e3, load_results
    from ..results._api import resolve_token

    try:
        tolerance = Tolerance.parse(args.tolerance)
    except ValueError as exc:
        raise UserInputError(f"--tolerance: {exc}") from None
    cfg = config_from_args(args, redactor)
    if cfg is None and not args.datafile:
        raise UserInputError("no datafile: pass --datafile PATH_OR_URL or --config with a datafile_url")
    token_env = args.token_env or (cfg.token_env if cfg else DEFAULT_TOKEN_ENV)
    redactor.add(resolve_token(token_env))
    datafile = datafile_from_args(args, cfg)
    ledger = read_ledger(args.ledger)

    results_is_e3 = args.results_format == "e3" or (args.results_format is None and is_e3_root(Path(args.results[0])))
    if results_is_e3 and len(args.results) != 1:
        raise ResultsError("E3 results: pass one E3 folder to --results")
    e3_dir = args.e3 or (args.results[0] if results_is_e3 else None)
    e3 = load_e3(e3_dir) if e3_dir else None
    if results_is_e3:
        results = e3_to_results(load_e3(args.results[0]) if args.e3 else e3, datafile)
    else:
        results = load_results(args.results, fmt=args.results_format, token_env=token_env,
                               start_time=args.start_time, end_time=args.end_time,
                               experiment_ids=[e.id for e in datafile.running_experiments()], datafile=datafile)
    expected = _expected(args.expected_events, ledger, datafile) if args.expected_events else None
    mapping = _map_summary(args.map_summary) if args.map_summary else None

    quarantine = read_quarantine_jsonl(args.quarantine) if args.quarantine else None
    rec = reconcile(ledger, results, datafile, expected=expected, e3=e3, tolerance=tolerance, mapping=mapping,
                    quarantine=quarantine)
    paths = write_outputs(rec, args.out, fmt=args.format)
    out = sys.stdout
    print(format_table(rec, rows=args.rows), file=out)
    s = rec.summary()["status"]
    print(f"\n{len(rec.table)} row(s): {s['ok']} ok, {s['explained']} explained, {s['gap']} gap; "
          f"unexplained conversions: {rec.unexplained} (tolerance {tolerance.abs:g},{tolerance.rel:g})", file=out)
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=out)
    return 0 if rec.ok else 1
