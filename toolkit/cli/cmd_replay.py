"""``toolkit replay``: map an export (or take mapped events), build Event API bodies and deliver
them with retries, recording every event in a SQLite ledger; ``--resume`` continues a run.

An export is streamed: mapped ``--chunk-rows`` rows at a time, each chunk's bodies built and sent
while the next chunk is mapped, so memory does not grow with the export. ``--decisions bucket``
needs every event before bucketing, so it maps the whole export first."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ConfigError, LedgerError
from ..logs import Redactor
from .common import add_config_args, add_datafile_args, add_mapping_args, config_from_args, datafile_from_args

ORDER = 50

# Body-shaping options: a resumed run must rebuild the same bodies, so their values are kept in the
# ledger and reused when the flag is not given again. chunk_rows None: bodies built from all events.
_SHAPING = {"decisions": "export", "identity": "user_or_anonymous", "max_body_bytes": None, "chunk_rows": None}
_INTS = ("max_body_bytes", "chunk_rows")
CHUNK_ROWS = 200_000  # export rows mapped, built into bodies and sent at a time


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="deliver mapped events to the Event API with retries, a ledger and --resume",
        description="Maps the export (or reads --events from `toolkit map`), builds Event API bodies "
        "(<= 3.5 MB) and sends them concurrently with retries, recording every event in a SQLite "
        "ledger. Exit 0 all delivered, 1 some rejected or failed, 2 unusable input or config.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--export", metavar="PATH", help="Datafly export (JSONL, CSV or Parquet) to map and send")
    src.add_argument("--events", metavar="PATH", help="already mapped events (JSON Lines from `toolkit map`)")
    add_config_args(p, required=True)
    add_datafile_args(p)
    g = p.add_argument_group("delivery")
    g.add_argument("--endpoint", metavar="URL", help="Event API URL (default: the config's region endpoint; "
                   "the sandbox or a proxy also work)")
    g.add_argument("--ledger", metavar="PATH", help="ledger file of this run (default reports/ledgers/replay-<time>.sqlite)")
    g.add_argument("--resume", action="store_true", help="continue the run of --ledger: send only what is not done")
    g.add_argument("--dry-run", action="store_true", help="build and record everything, send nothing")
    g.add_argument("--strict", action="store_true", help="send X-Optimizely-Strict: true (errors instead of silent drops)")
    g.add_argument("--concurrency", type=_positive(int), default=8, metavar="N", help="requests in flight (default 8)")
    g.add_argument("--max-rps", type=_positive(float), metavar="N", help="at most N requests per second")
    g.add_argument("--max-attempts", type=_positive(int), default=8, metavar="N",
                   help="attempts per body before it counts as failed (default 8)")
    g.add_argument("--max-body-bytes", type=_positive(int), metavar="N",
                   help="body size cap in bytes (default 3.4 MB, under the Event API's 3.5 MB)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = p.add_argument_group("mapping (with --export)")
    add_mapping_args(m, defaults=False)
    m.add_argument("--chunk-rows", type=_positive(int), metavar="N",
                   help=f"export rows mapped at a time, in up to 4 pieces of 25,000 rows or more, each built "
                   f"into bodies and sent as soon as it is mapped (default {CHUNK_ROWS:,}; bodies depend on it, "
                   "so --resume reuses the run's value); --decisions bucket maps the whole export first")
    p.set_defaults(func=run)


def _check_endpoint(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"--endpoint {url!r} is not an http(s) URL; e.g. https://logx.optimizely.com/v1/events")
    return url


def _open_ledger(args: argparse.Namespace, cfg, df):
    from .. import __version__
    from ..ledger import Ledger

    if args.resume:
        if not args.ledger:
            raise LedgerError("--resume needs --ledger PATH: the ledger of the run to continue")
        book = Ledger.open(args.ledger)
        info = book.run_info()
        for field, mine in (("account_id", cfg.account_id), ("project_id", cfg.project_id)):
            if info.get(field) and info[field] != mine:
                book.close()
                raise LedgerError(f"ledger {args.ledger}: its run sent to {field} {info[field]}, the config says "
                                  f"{mine}; resume with the same config, or start a new run with another --ledger")
        for key, default in _SHAPING.items():
            if getattr(args, key) is None and info.get(key) not in (None, "None"):
                setattr(args, key, int(info[key]) if key in _INTS else info[key])
            elif getattr(args, key) is None:
                setattr(args, key, default)
        book.set_run({"resumed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                      "resumes": int(info.get("resumes", "0")) + 1})
        return book, info.get("revision") or df.revision
    for key, default in _SHAPING.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    streaming = bool(args.export) and args.decisions != "bucket"
    args.chunk_rows = (args.chunk_rows or CHUNK_ROWS) if streaming else None
    path = Path(args.ledger) if args.ledger else \
        Path("reports") / "ledgers" / f"replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.sqlite"
    source = args.datafile or cfg.datafile_url_masked
    book = Ledger.create(path, {
        "account_id": cfg.account_id, "project_id": cfg.project_id, "revision": df.revision,
        "datafile_source": cfg.datafile_url_masked if source == cfg.datafile_url_masked else str(source),
        "toolkit_version": __version__, "input": args.events or args.export,
        **{k: getattr(args, k) for k in _SHAPING},
    })
    return book, df.revision


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and not args.quiet and sys.stderr.isatty()


def _load_events(args: argparse.Namespace, df):
    """The events to send (a frame, or a generator of mapped chunks when the export is streamed) and
    a function giving the mapping note of the summary line once they have been consumed."""
    if args.events:
        from ..events_io import read_events_jsonl

        return read_events_jsonl(args.events), lambda: ""
    from ..blueprint import load_blueprint

    blueprint = load_blueprint(args.blueprint) if args.blueprint else None
    if args.chunk_rows is None or args.decisions == "bucket":  # the whole export first: bucketing needs it all
        from ..mapping import map_export

        out = map_export(args.export, df, blueprint=blueprint, identity=args.identity, decisions=args.decisions,
                         fmt=args.fmt, progress=_progress(args), workers=args.workers)
        s = out.summary
        return out.events, lambda: _note(s.rows_in, s.mapped, s.skipped, s.quarantined)
    from ..map_export import iter_mapped

    counts = [0, 0, 0, 0]  # rows in, mapped, skipped, quarantined
    mapped = iter_mapped(args.export, df, blueprint=blueprint or load_blueprint(), identity=args.identity,
                         decisions=args.decisions, fmt=args.fmt, progress=_progress(args),
                         chunk_rows=args.chunk_rows, workers=args.workers, whole=False, graph_parts=False,
                         body_order=True)
    # the first chunk now, before delivery starts its threads: the map workers can then be forked
    # (toolkit.map_pool), which spares each of them importing the toolkit
    first = next(mapped, None)

    def counted(mc):
        for i, n in enumerate((mc.rows_in, len(mc.events), sum(mc.skipped.values()), len(mc.quarantine))):
            counts[i] += n
        return mc.events

    def frames():
        nonlocal first
        if first is not None:
            yield counted(first)
            first = None  # not held while the rest is sent
        for mc in mapped:
            yield counted(mc)

    return frames(), lambda: _note(*counts)


def _note(rows_in: int, mapped: int, skipped: int, quarantined: int) -> str:
    return f"mapped {rows_in} rows ({mapped} mapped, {skipped} skipped, {quarantined} quarantined); "


def run(args: argparse.Namespace, redactor: Redactor) -> int:
    from ..replay import replay

    cfg = config_from_args(args, redactor)
    assert cfg is not None
    endpoint = _check_endpoint(args.endpoint or cfg.event_endpoint)
    df = datafile_from_args(args, cfg)
    book, revision = _open_ledger(args, cfg, df)
    try:
        events, note = _load_events(args, df)
        outcome = replay(events, config=cfg, datafile=df, ledger=book, endpoint=endpoint, revision=revision,
                         strict=args.strict, dry_run=args.dry_run, concurrency=args.concurrency,
                         max_rps=args.max_rps, timeout=args.timeout, max_attempts=args.max_attempts,
                         max_body_bytes=args.max_body_bytes, progress=_progress(args))
    finally:
        book.close()
    print(redactor.clean(f"replay: {note()}{outcome.summary_line()}"), file=sys.stdout)
    return outcome.exit_code
