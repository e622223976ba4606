"""``toolkit run``: execute the stage notebooks with papermill and write the run's report."""

from __future__ import annotations

import argparse
import sys

from ..logs import Redactor

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the notebooks 01-04 with papermill into reports/<run-id>/",
        description="Executes 01_load_export, 02_validate_rules, 03_replay and 04_reconcile with papermill. "
        "Writes the executed notebooks, an HTML report, summary.json, the ledger and the stage files. "
        "Exit 0 all good, 1 problems found, 2 unusable input or a failed notebook. Secrets are read "
        "from the environment variables the config names, never passed as parameters.")
    p.add_argument("--config", required=True, metavar="RUN.toml", help="the run config (TOML)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a [run] setting (repeatable)")
    p.add_argument("--stages", default="", metavar="LIST",
                   help="comma-separated subset of stages to run (default: all four)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def print_outcome(result, out=sys.stdout) -> None:
    s = result.summary
    print(f"run {s['run_id']}: exit {s['exit_code']} ({s['verdict']})", file=out)
    for name, stage in s["stages"].items():
        print(f"  {name:<18} {stage.get('status', '?'):<9} {stage.get('headline', '')}", file=out)
    print(f"report:  {result.report}", file=out)
    print(f"summary: {result.run_dir / 'summary.json'}", file=out)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..errors import ConfigError
    from ..pipeline import STAGES, load_run_settings, run_pipeline

    settings = load_run_settings(args.config, args.param)
    stages = STAGES
    if args.stages:
        wanted = tuple(s.strip() for s in args.stages.split(",") if s.strip())
        unknown = [s for s in wanted if s not in STAGES]
        if unknown:
            raise ConfigError(f"--stages: unknown {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        stages = wanted
    result = run_pipeline(settings, stages=stages, progress=not args.no_progress)
    print_outcome(result)
    return result.exit_code
