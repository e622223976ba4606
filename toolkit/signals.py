"""Hold Ctrl-C (and a Python SIGTERM handler) back while code that takes the standard library's
locks runs, and deliver it at a point of our choosing.

Why: Python runs a signal handler in the main thread between any two bytecodes. The default SIGINT
handler raises KeyboardInterrupt there, even inside ``with lock:`` of a ``concurrent.futures``
Future or executor, after the lock is taken and before the ``try`` that would release it. The lock
then stays held: the executor's manager thread blocks on it when shutting down and
``shutdown(wait=True)`` waits forever (seen: about 1 Ctrl-C in 30 hung ``toolkit map``).

While :class:`HeldSignals` is active, a signal whose handler is Python code is only recorded;
:meth:`HeldSignals.deliver` (call it where no lock is held) runs the recorded handler, which
raises as it would have. :meth:`HeldSignals.released` lets signals through as usual around code
that is not ours (a generator's ``yield``). Leaving the block puts the handlers back and delivers
what was recorded. Off the main thread nothing changes: signals never run there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["HeldSignals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], Any]


class HeldSignals:
    """``with HeldSignals() as held:`` ... ``held.deliver()`` at safe points ... (see the module)."""

    def __init__(self) -> None:
        self._saved: dict[int, Handler] = {}
        self._caught: list[int] = []

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._caught.append(signum)

    def _hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):  # SIG_DFL / SIG_IGN run no Python code: nothing to hold back
                self._saved[signum] = handler
                signal.signal(signum, self._record)

    def _restore(self) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def deliver(self) -> None:
        """Run the handlers of the signals recorded so far (KeyboardInterrupt is raised here)."""
        while self._caught:
            signum = self._caught.pop(0)
            handler = self._saved.get(signum, signal.getsignal(signum))
            if callable(handler):
                handler(signum, None)

    def wait(self, futures: Iterable[Future], return_when: str = FIRST_COMPLETED, step: float = 0.1) -> set[Future]:
        """``concurrent.futures.wait`` (no timeout) in waits of ``step`` seconds, the signals
        recorded meanwhile delivered between them, outside the futures' locks; the done ones."""
        futures = list(futures)
        while not (done := wait(futures, timeout=step, return_when=return_when)[0]):
            self.deliver()
        return done

    @contextmanager
    def released(self) -> Iterator[None]:
        """Signals go through as usual inside the block (recorded ones are delivered first)."""
        self._restore()
        self.deliver()
        try:
            yield
        finally:
            self._hold()

    def __enter__(self) -> HeldSignals:
        self._hold()
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()
        self.deliver()
