"""``deliver``: send Event API bodies concurrently, retrying what is transient, recording it all.

The coordinating thread owns the ledger: it commits bodies as ``in_flight`` before handing them to
the pool, and records each finished body (batch, events, requests) in one transaction. Worker
threads only talk HTTP through the transport. Bodies whose batch is already finished in the
ledger (a resumed run) are skipped; a body over the size cap is rejected without being sent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..contracts import Body
from ..errors import DeliveryError, TerminalDeliveryError
from ..ledger import BatchResult, Ledger, RequestRecord
from ..payload import EVENT_API_LIMIT
from ..secrets import mask_url
from ..signals import HeldSignals
from .ratelimit import TokenBucket
from .recorder import Recorder
from .retry import RetryPolicy, classify_response
from .transport import RequestsTransport, Transport

__all__ = ["deliver", "DeliveryReport", "MAX_BODY_BYTES", "STRICT_HEADER"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = EVENT_API_LIMIT  # the Event API's documented limit: 3.5 MB per JSON body
STRICT_HEADER = "X-Optimizely-Strict"


@dataclass(frozen=True)
class DeliveryReport:
    """What one ``deliver`` call did. Event counts cover every body given to it: ``skipped`` ones
    (finished in the ledger by an earlier run) count under their recorded status."""

    events_total: int
    delivered: int
    rejected: int
    failed: int
    pending: int  # dry run, or bodies left in flight by an interruption
    skipped: int  # events in batches an earlier run finished: not sent again
    batches: int
    retried_requests: int
    requests: int
    bytes: int  # bytes sent, every attempt included
    seconds: float
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if (self.rejected or self.failed or (self.pending and not self.dry_run)) else 0

    @property
    def events_per_second(self) -> float:
        return self.events_total / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        mode = "dry run: " if self.dry_run else ""
        parts = [f"{mode}{self.events_total} events in {self.batches} bodies",
                 f"{self.delivered} delivered", f"{self.rejected} rejected", f"{self.failed} failed"]
        if self.pending:
            parts.append(f"{self.pending} pending")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        parts.append(f"{self.requests} requests ({self.retried_requests} retried, {self.bytes / 1e6:.1f} MB)")
        parts.append(f"{self.seconds:.1f} s ({self.events_per_second:,.0f} events/s)")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}


@dataclass
class _Tally:
    events_total: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    batches: int = 0
    retried: int = 0
    requests: int = 0
    bytes: int = 0

    def add(self, status: str, n: int) -> None:
        field = {"delivered": "delivered", "rejected": "rejected", "failed": "failed"}.get(status, "pending")
        setattr(self, field, getattr(self, field) + n)


class _Sender:
    """Sends one body with retries (runs in worker threads; touches no shared mutable state but
    the transport and the rate limiter, both thread-safe)."""

    def __init__(self, transport: Transport, endpoint: str, headers: dict[str, str], timeout: float,
                 retry: RetryPolicy, limiter: TokenBucket | None, stop: threading.Event, seed: int | None) -> None:
        self.transport, self.endpoint, self.headers, self.timeout = transport, endpoint, headers, timeout
        self.retry, self.limiter, self.stop = retry, limiter, stop
        self._seed = seed

    def __call__(self, body: Body) -> BatchResult:
        rng = random.Random(None if self._seed is None else f"{self._seed}:{body.batch_id}")
        records: list[RequestRecord] = []
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire()
            started, t0 = datetime.now(UTC), time.perf_counter()
            error: DeliveryError | None
            try:
                resp = self.transport.send(self.endpoint, body.data, self.headers, self.timeout)
                status: int | None = resp.status
                error = classify_response(resp)
            except DeliveryError as exc:  # no response: the transport classified it
                status, error = exc.status, exc
            latency = (time.perf_counter() - t0) * 1000.0
            records.append(RequestRecord(body.batch_id, attempt, started, latency, body.size, status,
                                         None if error is None else str(error)))
            if error is None:
                return BatchResult(body.batch_id, "delivered", attempt, status, None, tuple(records))
            if error.terminal:
                return BatchResult(body.batch_id, "rejected", attempt, status, str(error), tuple(records))
            if attempt >= self.retry.max_attempts:
                msg = f"{error} (gave up after {attempt} attempts)"
                return BatchResult(body.batch_id, "failed", attempt, status, msg, tuple(records))
            if self.stop.wait(self.retry.delay(attempt, error, rng)):  # interrupted while backing off
                return BatchResult(body.batch_id, "in_flight", attempt, status, str(error), tuple(records))


def _too_big(body: Body, max_bytes: int) -> BatchResult:
    error = TerminalDeliveryError(
        f"body of {body.size} bytes is over the Event API cap of {max_bytes} bytes; not sent: "
        "rebuild the bodies with a smaller max_bytes")
    return BatchResult(body.batch_id, "rejected", 0, None, str(error), ())


def deliver(
    bodies: Iterable[Body],
    *,
    endpoint: str,
    ledger: Ledger | str | Path,
    strict: bool = False,
    concurrency: int = 8,
    max_rps: float | None = None,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    dry_run: bool = False,
    progress: bool = True,
    transport: Transport | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    total_events: int | None = None,
    seed: int | None = None,
) -> DeliveryReport:
    """Send ``bodies`` to ``endpoint``, recording everything in ``ledger`` (a Ledger, or a path
    for a new ledger file). Returns a :class:`DeliveryReport`; ``exit_code`` is 0 when every event
    was delivered, 1 otherwise.

    ``ledger`` opened with :meth:`Ledger.open` resumes its run: finished batches are skipped and
    everything else is (re)sent identically. ``dry_run`` records every body as pending and sends
    nothing. ``total_events`` (optional) sizes the progress bar.
    """
    from ..progress import Bar

    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    retry = retry or RetryPolicy()
    own_ledger = not isinstance(ledger, Ledger)
    book = Ledger.create(ledger) if own_ledger else ledger  # type: ignore[arg-type]
    own_transport = transport is None and not dry_run
    if own_transport:
        transport = RequestsTransport(pool_size=concurrency)
    headers = {"Content-Type": "application/json"}
    if strict:
        headers[STRICT_HEADER] = "true"
    book.set_run({"endpoint": mask_url(endpoint), "strict": strict, "dry_run": dry_run,
                  "concurrency": concurrency, "max_rps": max_rps})
    finished = {bid: st for st in ("delivered", "rejected") for bid in book.batch_ids((st,))}
    stop = threading.Event()
    limiter = TokenBucket(max_rps) if max_rps else None
    t = _Tally()
    t0 = time.perf_counter()
    bar = Bar(total=total_events, unit="ev", unit_scale=True, desc="replay", disable=not progress,
               dynamic_ncols=True, leave=False)

    writes: list[Future[None]] = []  # outcomes handed to the ledger thread, until checked

    def record(results: list[BatchResult]) -> None:
        """Outcomes to the ledger on its thread (this one builds bodies: it must not wait for SQLite)."""
        if results:
            writes.append(recorder.call(book.finish, results))

    def check_writes(*, wait_all: bool = False) -> None:
        """Raise the error of an outcome the ledger could not record (a LedgerError); with
        ``wait_all``, once everything handed to the ledger thread so far is written."""
        if wait_all:
            held.wait([recorder.call(lambda: None)])  # the thread runs what it is given in order
        for f in [f for f in writes if f.done()]:
            writes.remove(f)
            f.result()

    def settle(results: list[BatchResult], n_events: dict[str, int], record=record) -> None:
        record([r for r in results if r.status != "pending"])  # pending: recorded as such already
        for r in results:
            n = n_events.pop(r.batch_id)
            t.add(r.status, n)
            t.retried += max(0, len(r.requests) - 1)
            t.requests += len(r.requests)
            t.bytes += sum(q.bytes for q in r.requests)
            if r.status in ("rejected", "failed"):
                log.warning("batch %s (%d events) %s: %s", r.batch_id, n, r.status, r.last_error)
            bar.update(n)
        bar.set_postfix(delivered=t.delivered, retried=t.retried, failed=t.failed + t.rejected, refresh=False)

    def done_now() -> list[Future[BatchResult]]:
        return [f for f in pending if f.done()]

    def collect(futures, *, wait_first: bool) -> None:
        done = futures
        if wait_first:  # short waits: a held Ctrl-C is raised between them, outside the futures' locks
            done = held.wait(futures)
        if done:
            results = [f.result() for f in done]
            for f in done:
                del pending[f]
            settle(results, n_events)
        check_writes()

    window = concurrency * 2
    pending: dict[Future[BatchResult], Body] = {}
    n_events: dict[str, int] = {}
    it = iter(bodies)
    exhausted = False
    held = HeldSignals()  # Ctrl-C inside an executor's or a future's lock would hang the shutdown below
    with held:
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
        sender = None if dry_run else _Sender(transport, endpoint, headers, timeout, retry, limiter, stop, seed)  # type: ignore[arg-type]
        recorder = Recorder(book, pool, sender, stop)
        try:
            while True:
                # each body is handed over as soon as it is built (bodies come from a generator that may
                # be mapping the export): the ledger thread commits it, in_flight (pending in a dry run),
                # then the pool sends it, while this thread builds the next ones
                while not exhausted and len(pending) < window:
                    with held.released():  # building bodies maps the export: not the pool's locks
                        body = next(it, None)
                    if body is None:
                        exhausted = True
                        break
                    t.events_total += body.n_events
                    t.batches += 1
                    if body.batch_id in finished:
                        t.skipped += body.n_events
                        t.add(finished[body.batch_id], body.n_events)
                        bar.update(body.n_events)
                        continue
                    n_events[body.batch_id] = body.n_events
                    if body.size > max_bytes:
                        writes.append(recorder.call(book.begin, [body], status="pending"))
                        settle([_too_big(body, max_bytes)], n_events)
                    else:
                        pending[recorder.submit(body, "pending" if dry_run else "in_flight")] = body
                    collect(done_now(), wait_first=False)  # outcomes recorded while the next bodies are built
                if not pending:
                    if exhausted:
                        break
                    continue
                collect(pending, wait_first=True)
            check_writes(wait_all=True)
            book.set_run({"finished_at": datetime.now(UTC).isoformat(timespec="milliseconds")})
        except BaseException:
            # Interrupted (Ctrl-C, a ledger write failure, a bug): stop retrying, let running requests
            # end, record what finished (the outcomes queued for the ledger thread are written before
            # it stops); the rest stays in_flight in the ledger for --resume.
            stop.set()
            for f in pending:
                f.cancel()
            recorder.shutdown()
            pool.shutdown(wait=True)
            finished_now = [f.result() for f in pending if f.done() and not f.cancelled() and f.exception() is None]
            try:
                settle(finished_now, n_events, record=book.finish)
            except Exception:  # the ledger itself may be what failed; it is consistent either way
                log.debug("could not record the bodies that finished during the interruption", exc_info=True)
            raise
        finally:
            recorder.shutdown()
            pool.shutdown(wait=True)
            bar.close()
            if own_transport and transport is not None:
                transport.close()
            if own_ledger:
                book.close()
    t.pending += sum(n_events.values())
    seconds = time.perf_counter() - t0
    return DeliveryReport(
        events_total=t.events_total, delivered=t.delivered, rejected=t.rejected, failed=t.failed,
        pending=t.pending, skipped=t.skipped, batches=t.batches, retried_requests=t.retried,
        requests=t.requests, bytes=t.bytes, seconds=seconds, dry_run=dry_run,
    )
