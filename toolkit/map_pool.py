"""Load and map export chunks in worker processes, results in export order.

The calling process cuts the export into parts (:func:`toolkit.exports.iter_export_parts`: JSON
Lines parts are their lines, unparsed; CSV and Parquet parts are loaded there, their readers being
columnar) and runs the stitched first pass; each part is sent to a worker that loads it and runs
:func:`toolkit.map_export.map_chunk`, and sends the :class:`~toolkit.map_export.MappedChunk` back. What every chunk needs (datafile,
blueprint, identity links, options) goes to each worker once, through the pool's initializer.

- Order: results come back in the order the chunks were read, whatever the workers' speed.
- Memory: at most ``in_flight`` chunks are sent and not yet handed back (default twice the
  workers plus one: the one more lets this process read a third chunk while a new worker starts,
  ~1 s of imports, instead of waiting), so memory stays flat however long the export.
- Priority: workers run at ``WORKER_NICE`` (lower priority than this process, whose work on their
  results is the critical path when the cores are all busy).
- Start method: ``fork`` when this process runs no other thread (a CLI command, a script): the
  workers start with everything imported and set up, at no cost. Otherwise (Jupyter kernels, a
  progress monitor or a ledger thread running) ``forkserver``, as forking a threaded process can
  leave a lock held forever in the child: each worker then imports the toolkit once, ~0.8 CPU-s
  (2 workers: ~15% of mapping 1M rows, measured) and that long before the first chunk starts. The
  fork server preloads nothing: preloading saved no time for one pool per process (the server
  imports at the first pool just as a worker would) and its ~110 MB of modules then counted twice
  in the process tree's memory (measured).
- Errors: an exception in a worker is raised here with the same type and message (the worker's
  traceback is its ``__cause__``). A worker that dies (killed, out of memory) is a
  :class:`~toolkit.errors.ToolkitError` saying so; nothing hangs.
- Shutdown: closing the generator, an exception, or Ctrl-C (workers ignore SIGINT; this process
  gets it; the CLI turns SIGTERM into the same path) cancels the queued chunks and joins the
  workers: no process is left behind. Ctrl-C and the CLI's SIGTERM are held back while this process
  is inside the pool's code (:class:`toolkit.signals.HeldSignals`) and raised between short waits:
  raised inside a future's lock they left it held, and the shutdown hung (~1 Ctrl-C in 30). If this process is killed outright (SIGKILL), each worker
  notices within a second that it is gone and exits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import spawn
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any, TypeVar

from .errors import ToolkitError
from .identity import Identity
from .runtime import tune_process
from .signals import HeldSignals
from .spool import Spool, put, take

__all__ = ["auto_workers", "ordered_map", "map_chunks", "start_method"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

def _mappingproxy(d: dict) -> MappingProxyType:
    return MappingProxyType(d)


def _reduce_mappingproxy(m: MappingProxyType) -> tuple:
    return _mappingproxy, (dict(m),)


# the blueprint and the identity links hold read-only mappings; only the pool's pickler needs them
ForkingPickler.register(MappingProxyType, _reduce_mappingproxy)

_state: dict[str, Any] = {}  # in a worker: what every chunk is mapped with (set once by _init_mapper)
# Workers run at a lower CPU priority than the process that uses their results: when every core is
# busy, that process (cutting the export, building bodies, the ledger, HTTP) is the critical path
# and the workers, which run ahead (in_flight), take the CPU it leaves. Replay of 1M rows on 2
# cores: 4.01 -> 3.91 s wall, 7.17 -> 6.91 CPU-s (medians of 6 interleaved runs).
WORKER_NICE = 10


def auto_workers() -> int:
    """How many processes map by default: one per CPU this process may run on (this process only
    cuts the export into parts and uses the results: the loading and mapping are the workers'),
    0 on a single CPU (map here)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


_WORKER_NAME = "toolkit-map-worker"
_stdlib_preparation_data = spawn.get_preparation_data


def _preparation_data(name: str) -> dict:
    """What a new process is told about this one, less the main module for our workers: they only
    run toolkit functions, and re-running a caller's script there (what ``spawn`` and
    ``forkserver`` do) would break every script without an ``if __name__ == "__main__"`` guard."""
    data = _stdlib_preparation_data(name)
    if name.startswith(_WORKER_NAME):
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
    return data


_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"  # spawn: Windows
_BASE = mp.get_context(_METHOD)


class _Worker(_BASE.Process):  # type: ignore[name-defined,misc]
    """A pool process, named so that :func:`_preparation_data` knows it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{_WORKER_NAME}-{self.name}"


class _Context(type(_BASE)):  # type: ignore[misc]
    Process = _Worker


def start_method() -> str:
    """``fork`` when it is safe (this process runs one thread only), else ``forkserver``."""
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return _METHOD


def _context(method: str) -> mp.context.BaseContext:
    if method == "fork":
        return mp.get_context("fork")
    spawn.get_preparation_data = _preparation_data  # unchanged for every process that is not our worker
    return _Context()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A killed process whose parent has not reaped it yet is
    a zombie: ``kill(pid, 0)`` still succeeds on it, so Linux's /proc state is read first."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # pragma: no cover - no /proc (not Linux)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _watch_parent(pid: int, interval: float = 1.0) -> None:
    """In a worker: end this process when the process that made the pool is gone (killed with
    SIGKILL, or crashed): nobody would ever collect our results, and the fork server that started
    us does not stop its children."""
    while _alive(pid):
        time.sleep(interval)
    os._exit(1)


def _worker_init(parent: int, init: Callable[..., None] | None, args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which shuts us down
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits the CLI's handler
    tune_process()  # a forked worker has it from its parent; one from the fork server sets it here
    if hasattr(os, "nice"):
        os.nice(WORKER_NICE)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()
    if init is not None:
        init(*args)


def _call(fn: Callable[[Any], Any], path: str, folder: str) -> str:
    """In a worker: the item at ``path`` -> ``fn(item)`` written to a new file in ``folder``."""
    return put(fn(take(path)), folder)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int,
                initializer: Callable[..., None] | None = None, initargs: tuple = (),
                in_flight: int | None = None, method: str | None = None) -> Iterator[R]:
    """``map(fn, items)`` in ``workers`` processes, lazily and in order, with at most ``in_flight``
    items sent and not yet yielded. ``fn`` and ``initializer`` must be importable functions.
    Items and results go through files (:mod:`toolkit.spool`), only their paths through the pool.

    An error raised while reading ``items`` comes after the results of the items read before it,
    as it would in a plain loop. ``method``: the start method (default :func:`start_method`)."""
    limit = max(1, in_flight or 2 * workers + 1)
    method = method or start_method()
    log.debug("%d worker processes (%s)", workers, method)
    spool = Spool()
    held = HeldSignals()  # Ctrl-C inside the pool's locks would leave one held: shutdown would hang
    with held:
        pool = ProcessPoolExecutor(workers, mp_context=_context(method), initializer=_worker_init,
                                   initargs=(os.getpid(), initializer, initargs))
        pending: deque[Future[str]] = deque()
        try:
            source = iter(items)
            while True:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception:
                    while pending:  # hand back what was read before the error, then raise it
                        result = take(_first_result(pending, held))
                        with held.released():
                            yield result
                        del result
                    raise
                pending.append(pool.submit(_call, fn, put(item, spool.folder), spool.folder))
                del item  # written: do not hold it while waiting
                held.deliver()
                while pending and (len(pending) >= limit or pending[0].done()):
                    result = take(_first_result(pending, held))
                    with held.released():
                        yield result
                    del result  # the caller is done with it: do not hold it while waiting
            while pending:
                result = take(_first_result(pending, held))
                with held.released():
                    yield result
                del result
        except BrokenProcessPool as exc:
            raise ToolkitError(f"a worker process ended abruptly (killed, or out of memory?): {exc}; run with "
                               "fewer workers or smaller chunks") from exc
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            spool.close()


def _first_result(pending: deque[Future[str]], held: HeldSignals) -> str:
    """The result of the first pending future, then taken off ``pending``; signals held back
    meanwhile are delivered between short waits, outside the future's lock."""
    held.wait([pending[0]])
    return pending.popleft().result()


# ---- the mapping itself


def _init_mapper(datafile, blueprint, ident: Identity, decisions: str, max_bytes: int, graph_parts: bool,
                 body_order: bool) -> None:
    _state.update(datafile=datafile, blueprint=blueprint, ident=ident, decisions=decisions, max_bytes=max_bytes,
                  graph_parts=graph_parts, body_order=body_order)


def _map_one(part):
    """In a worker: load one export part (JSON Lines: parse its lines) and map it."""
    from .map_export import map_chunk

    s = _state
    return map_chunk(part.load(), s["datafile"], s["blueprint"], s["ident"], decisions=s["decisions"],
                     max_bytes=s["max_bytes"], graph_part=s["graph_parts"], body_order=s["body_order"])


def map_chunks(parts: Iterable, datafile, blueprint, ident: Identity, *, decisions: str, max_bytes: int,
               workers: int, in_flight: int | None = None, graph_parts: bool = True,
               body_order: bool = False) -> Iterator:
    """Load and :func:`toolkit.map_export.map_chunk` each export part (:class:`toolkit.exports.ExportPart`)
    in ``workers`` processes, in order."""
    args = (datafile, blueprint, ident, decisions, max_bytes, graph_parts, body_order)
    return ordered_map(_map_one, parts, workers=workers, initializer=_init_mapper, initargs=args,
                       in_flight=in_flight)
