"""Progress bars: tqdm's, drawn in a terminal or as a notebook widget (``tqdm.auto``).

tqdm starts a monitor thread with its first bar (it redraws bars whose updates stall). The
toolkit's bars are updated per chunk or per body and need none of it, and a process that runs no
other thread may start its map workers with ``fork`` (see :mod:`toolkit.map_pool`): so these bars
do not start that thread.
"""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["Bar"]


class Bar(tqdm):  # type: ignore[misc,valid-type]
    """``tqdm.auto.tqdm`` without the monitor thread."""

    monitor_interval = 0
