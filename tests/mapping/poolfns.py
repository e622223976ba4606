"""Functions the pool tests run in worker processes (importable by name, as the pool requires)."""

from __future__ import annotations

import time

from toolkit.errors import ExportError

_state: dict[str, int] = {}


def setup(factor: int) -> None:
    _state["factor"] = factor


def scaled(x: int) -> int:
    """x times the factor the initializer set; even items are slower, so they finish out of order."""
    if x % 2 == 0:
        time.sleep(0.02)
    return x * _state.get("factor", 1)


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ExportError("item 3: bad input in a worker")
    return x


def slow(x: int) -> int:
    time.sleep(0.5)
    return x


def die_on_two(x: int) -> int:
    """A worker killed mid-chunk (out of memory, kill -9)."""
    if x == 2:
        import os

        os._exit(9)
    return x


def settings(_: int) -> tuple[int, int]:
    """This worker's niceness and young-collection threshold."""
    import gc
    import os

    return os.nice(0), gc.get_threshold()[0]
