"""``toolkit doctor``: check the integration config and the datafile, list each problem with its fix."""

from __future__ import annotations

import argparse
import sys

from ..errors import DatafileError
from ..logs import Redactor
from .common import add_config_args, add_datafile_args, config_from_args, datafile_from_args

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the config and the datafile, list problems with fixes",
                       description="Checks the config, fetches the datafile, checks account/project ids, "
                       "prints the revision, event keys and running experiments. Exit 0 healthy, "
                       "1 problems found, 2 unusable input.")
    add_config_args(p, required=True)
    add_datafile_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    out = sys.stdout
    cfg = config_from_args(args, redactor)  # ConfigError -> exit 2 with one line per field
    assert cfg is not None
    problems: list[str] = []
    print("config", file=out)
    for k, v in cfg.describe().items():
        print(f"  {k:<15} {v}", file=out)
    problems.extend(cfg.warnings)
    try:
        df = datafile_from_args(args, cfg)
    except DatafileError as exc:
        problems.append(redactor.clean(str(exc)))
        df = None
    if df is not None:
        info = df.fetch
        print("datafile", file=out)
        print(f"  source          {info.source if info else '?'}", file=out)
        print(f"  revision        {df.revision} (version {df.version})", file=out)
        if info and info.stale:
            problems.append(info.warning or "the datafile came from a stale cache")
        print(f"  event keys      {', '.join(sorted(df.events)) or '(none)'}", file=out)
        running = df.running_experiments()
        print(f"  running         {len(running)} experiment(s)", file=out)
        for e in sorted(running, key=lambda e: e.key):
            events = sorted(k for k, ev in df.events.items() if e.id in ev.experiment_ids)
            print(f"    {e.key} (id {e.id}, {e.rule_type}) variations: "
                  f"{', '.join(v.key for v in e.variations)}; metrics: {', '.join(events) or '(none)'}", file=out)
        if not running:
            problems.append("no running experiment in the datafile: conversions will not be attributed anywhere; "
                            "start an experiment in Optimizely or check you use the right environment")
        if not df.events:
            problems.append("the datafile has no events: every conversion would be dropped; "
                            "create the events in Optimizely (Events page) with the exact keys you send")
    if problems:
        print(f"{len(problems)} problem(s):", file=out)
        for i, p in enumerate(problems, 1):
            print(f"  {i}. {p}", file=out)
        return 1
    print("healthy: config and datafile agree", file=out)
    return 0
