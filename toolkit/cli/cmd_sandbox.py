"""``toolkit sandbox``: run the local Optimizely stand-in in the foreground (Ctrl-C stops it), and
``toolkit sandbox export-e3``: write its E3 Parquet export."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import SecretError, UserInputError
from ..logs import Redactor

log = logging.getLogger(__name__)

ORDER = 80
DEFAULT_DATA = "reports/sandbox"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox", help="run a local Optimizely stand-in (Event API, datafile CDN, results, E3)",
        description="Runs the sandbox on loopback in the foreground and prints its URLs and the install "
        "JSON that points the toolkit at it. State lives in SQLite under --data: a restart loses nothing. "
        "Ctrl-C stops it.",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8077, help="port (default 8077; 0 picks a free one)")
    p.add_argument("--data", default=DEFAULT_DATA, metavar="DIR", help=f"state folder (default {DEFAULT_DATA})")
    p.add_argument("--datafile", metavar="PATH", help="datafile JSON to serve (default: the one stored in --data)")
    p.add_argument("--sdk-key-env", metavar="NAME",
                   help="environment variable holding the SDK key of the CDN URL (default key: SandboxSdkKey)")
    p.add_argument("--sdk-key", default=None, metavar="KEY",
                   help="the SDK key itself (deprecated: it shows in ps and the shell history; use --sdk-key-env)")
    p.add_argument("--token-env", metavar="NAME",
                   help="environment variable holding a Results API bearer token to require (default: none required)")
    p.add_argument("--faults", metavar="SPEC",
                   help="fault injection on /v1/events, e.g. error=0.1,throttle=0.05,retry_after=2,drop=0.02,latency_ms=20,seed=7")
    p.add_argument("--lag", type=float, default=0.0, metavar="S",
                   help="processing lag: results count only events received more than S seconds ago")
    p.add_argument("--body-timeout", type=float, default=None, metavar="S",
                   help="answer 408 and close when a request body is not in S seconds after the request "
                   "started (default 30)")
    p.add_argument("--config-out", metavar="PATH", help="also write the install JSON to this file")
    p.set_defaults(func=run)
    inner = p.add_subparsers(dest="sandbox_command", metavar="[export-e3]")
    e = inner.add_parser("export-e3", help="write the E3 Parquet export of a sandbox's data",
                         description="Writes type=decisions/date=.../experiment=<id>/ and "
                         "type=events/date=.../event=<name>/ Parquet from the sandbox state in --data.")
    e.add_argument("--data", default=DEFAULT_DATA, metavar="DIR", help=f"state folder (default {DEFAULT_DATA})")
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.set_defaults(func=run_export)


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..sandbox import DEFAULT_SDK_KEY, Sandbox

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise SecretError(f"--token-env {args.token_env}: the variable is not set; export {args.token_env}=<token>")
        redactor.add(token)
    sdk_key = _sdk_key(args)
    own_key = bool(sdk_key) and sdk_key != DEFAULT_SDK_KEY  # a chosen key is a secret: never printed
    if own_key:
        redactor.add(sdk_key)
    timeout = {} if args.body_timeout is None else {"body_timeout": args.body_timeout}
    sb = Sandbox(args.data, datafile=args.datafile, sdk_key=sdk_key or DEFAULT_SDK_KEY, api_token=token,
                 host=args.host, port=args.port, faults=args.faults, lag_seconds=args.lag, **timeout)
    sb.start()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        config = sb.install_config()
        if own_key:  # the toolkit fills {sdk_key} from OPTIMIZELY_SDK_KEY
            config["config"].pop("sdk_key", None)
            config["config"]["datafile_url"] = f"{sb.url}/datafiles/{{sdk_key}}.json"
        df = sb.datafile
        out = sys.stdout
        print(f"sandbox listening on {sb.url} (data in {sb.data_dir})", file=out)
        print(f"  events      POST {sb.events_url}", file=out)
        print(redactor.clean(f"  datafile    GET  {sb.datafile_url} (revision {df.revision})"), file=out)
        print(f"  results     GET  {sb.results_url('<experiment_id>')}"
              f"{' (bearer token from ' + args.token_env + ')' if token else ''}", file=out)
        print(f"  csv export  GET  {sb.results_csv_url('<experiment_id>')}", file=out)
        print(f"  admin       GET  {sb.url}/admin/stats   POST {sb.url}/admin/reset | /admin/faults | /admin/e3"
              f"   PUT {sb.url}/admin/datafile", file=out)
        running = ", ".join(f"{e.key} ({e.id})" for e in sorted(df.running_experiments(), key=lambda e: e.key))
        print(f"  experiments {running or '(none running)'}", file=out)
        if args.faults:
            print(f"  faults      {sb.set_faults(args.faults).to_dict()}", file=out)
        if args.lag:
            print(f"  lag         results count events received more than {args.lag:g} s ago", file=out)
        print("install JSON (point the toolkit at the sandbox with --config):", file=out)
        print(json.dumps(config, indent=2), file=out)
        if own_key:
            print(f"  (the SDK key is left out: export OPTIMIZELY_SDK_KEY=<the value of "
                  f"{args.sdk_key_env or '--sdk-key'}>)", file=out)
        if args.config_out:
            Path(args.config_out).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            print(f"written to {args.config_out}", file=out)
        print("Ctrl-C to stop", file=out, flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sb.stop()
    stats = sb.stats()
    print(f"sandbox stopped: {stats['events_received']} events received, {stats['events_stored']} stored, "
          f"{stats['duplicates']} duplicates, {stats['silently_dropped']} silently dropped", file=sys.stdout)
    return 0


def _sdk_key(args: argparse.Namespace) -> str | None:
    """The SDK key from --sdk-key-env (the variable's value), or from --sdk-key with a warning."""
    if args.sdk_key_env and args.sdk_key is not None:
        raise UserInputError("give --sdk-key-env NAME or --sdk-key, not both (prefer --sdk-key-env)")
    if args.sdk_key_env:
        key = os.environ.get(args.sdk_key_env)
        if not key:
            raise SecretError(f"--sdk-key-env {args.sdk_key_env}: the variable is not set; "
                              f"export {args.sdk_key_env}=<key>")
        return key
    if args.sdk_key is not None:
        log.warning("--sdk-key puts the key on the command line, where ps and the shell history show it; "
                    "prefer --sdk-key-env NAME (an environment variable holding it)")
    return args.sdk_key


def run_export(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..sandbox import SandboxError, Store, export_e3
    from ..sandbox.store import DB_NAME

    data = Path(args.data)
    if not (data / DB_NAME).is_file():
        raise SandboxError(f"--data {data}: no sandbox state here ({DB_NAME} missing); "
                           "pass the --data folder the sandbox ran with")
    store = Store(data)
    try:
        summary = export_e3(store, args.out)
    finally:
        store.close()
    print(f"E3 export: {summary['decisions']} decisions -> {summary['decisions_dir']}; "
          f"{summary['events']} events -> {summary['events_dir']}", file=sys.stdout)
    return 0
