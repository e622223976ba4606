"""``toolkit demo``: the main job on the bundled sample against the local sandbox."""

from __future__ import annotations

import argparse
import sys

from ..logs import Redactor

ORDER = 95


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline on the bundled sample against a local sandbox (no account, no network)",
        description="Starts the sandbox on 127.0.0.1, runs notebooks 01-04 with papermill on the bundled "
        "sample (which holds known defects, so the report shows real diagnoses), stops the sandbox and "
        "prints the report path and the headline numbers. Exit 0 when the pipeline ran (its own verdict "
        "is printed), 2 when a stage could not run.")
    p.add_argument("--out", default="reports", metavar="DIR", help="parent folder of the run (default reports)")
    p.add_argument("--events", type=int, metavar="N", help="generate a fresh sample of N events instead")
    p.add_argument("--seed", type=int, default=7, help="seed of a generated sample (default 7)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..pipeline.demo import headline, run_demo

    result = run_demo(out=args.out, events=args.events, seed=args.seed, progress=not args.no_progress)
    out = sys.stdout
    s = result.summary
    print(f"demo run {s['run_id']} finished in {s['seconds']:.0f} s: pipeline exit code {s['exit_code']} "
          f"({s['verdict']})", file=out)
    for line in headline(result):
        print(line, file=out)
    print(f"report:  {result.report}", file=out)
    print(f"summary: {result.run_dir / 'summary.json'}", file=out)
    if s["exit_code"] == 1:
        print("(exit code 1 is expected here: the sample holds defects on purpose, and the report explains them)",
              file=out)
    return 2 if s["exit_code"] >= 2 else 0
