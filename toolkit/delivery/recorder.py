"""The ledger's own thread: each body is committed (``in_flight``, or ``pending`` in a dry run) on
it, in the order given, and only then handed to the sending pool; the outcomes of sent bodies are
recorded on it too (:meth:`Recorder.call`), after their commit.

The thread that builds bodies (loading and mapping the export, packing bodies) never waits for
SQLite: it hands a body or an outcome over and goes on, while SQLite, which releases the GIL,
writes. (Recording outcomes from that thread made it wait for the ledger's lock, held by the
commit of the next body's event rows: up to ~1.5 s per 1M-row replay, much of it at the end when
nothing else was left to run; measured.) Crash safety is unchanged: no byte of a body is sent
before its commit, and a body whose outcome is not recorded yet reads as in flight, so a resumed
run sends it again, identically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..contracts import Body
from ..ledger import BatchResult, Ledger

__all__ = ["Recorder"]


class Recorder:
    """``submit(body, status)`` returns a future of the body's :class:`BatchResult`: ``pending`` once
    committed (dry run), else the outcome of sending it with ``send`` on ``pool``; ``in_flight`` if
    ``stop`` was set before it could be sent. A ledger failure is the future's exception."""

    def __init__(self, book: Ledger, pool: ThreadPoolExecutor | None, send: Callable[[Body], BatchResult] | None,
                 stop: threading.Event) -> None:
        self.book, self.pool, self.send, self.stop = book, pool, send, stop
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    def submit(self, body: Body, status: str) -> Future[BatchResult]:
        outer: Future[BatchResult] = Future()
        self._thread.submit(self._record, body, status, outer)
        return outer

    def _record(self, body: Body, status: str, outer: Future[BatchResult]) -> None:
        if not outer.set_running_or_notify_cancel():  # cancelled by an interruption before its turn
            return
        try:
            self.book.begin([body], status=status)
            if status == "pending":
                outer.set_result(BatchResult(body.batch_id, "pending", 0, None, None))
            elif self.stop.is_set() or self.pool is None or self.send is None:
                outer.set_result(BatchResult(body.batch_id, "in_flight", 0, None, None))
            else:
                self.pool.submit(self.send, body).add_done_callback(lambda f: _pass_on(f, outer))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            outer.set_exception(exc)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the ledger thread, after everything submitted before it."""
        return self._thread.submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread. Bodies whose future was cancelled (an
        interruption) are skipped at their turn: they stay unrecorded and unsent."""
        self._thread.shutdown(wait=True)


def _pass_on(inner: Future[BatchResult], outer: Future[BatchResult]) -> None:
    exc = inner.exception()
    if exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(inner.result())
