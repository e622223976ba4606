"""Replay mapped events: build Event API bodies and deliver them with a ledger.

The library form of ``toolkit replay`` for notebooks and the pipeline: one call from an EVENTS
frame to a :class:`toolkit.delivery.DeliveryReport`, with the ledger's run info filled in (no
secrets: the endpoint and datafile source are masked).

Streaming: given an iterable of EVENTS frames instead (e.g. the chunks of
:func:`toolkit.map_export.iter_mapped`), bodies are built per frame and sent while the next frames
are produced, so an export is never held whole. Bodies then depend on where the frames are cut: a
resumed run must be given the same frames (the same ``chunk_rows``) to rebuild the same bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import IntegrationConfig
from .datafile import Datafile
from .secrets import mask_url

__all__ = ["ReplayOutcome", "replay"]


@dataclass(frozen=True)
class ReplayOutcome:
    report: Any  # toolkit.delivery.DeliveryReport
    ledger_path: Path
    unsendable: dict[str, int] = field(default_factory=dict)  # reason -> events no body could carry

    @property
    def exit_code(self) -> int:
        return 1 if self.unsendable else self.report.exit_code

    def summary_line(self) -> str:
        line = f"{self.report.summary_line()}; ledger {self.ledger_path}"
        if self.unsendable:
            line += "; not sendable: " + ", ".join(f"{n} {r}" for r, n in sorted(self.unsendable.items()))
        return line


def replay(
    events: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    config: IntegrationConfig,
    datafile: Datafile,
    ledger: str | Path | Any,
    endpoint: str | None = None,
    revision: str | None = None,
    strict: bool = False,
    dry_run: bool = False,
    concurrency: int = 8,
    max_rps: float | None = None,
    timeout: float = 10.0,
    max_attempts: int = 8,
    max_body_bytes: int | None = None,
    progress: bool = True,
    run_info: Mapping[str, Any] | None = None,
) -> ReplayOutcome:
    """Deliver ``events`` (EVENTS, or an iterable of EVENTS frames: bodies are built per frame)
    to ``endpoint`` (default: the config's region endpoint).

    ``ledger``: a path for a new ledger (its run info is filled in here), or a
    :class:`toolkit.ledger.Ledger` already created or opened with ``Ledger.open`` to resume a run
    (then ``revision`` should be the run's recorded revision, so bodies are rebuilt identically).
    """
    from . import __version__
    from .delivery import RetryPolicy, deliver
    from .ledger import Ledger
    from .payload import DEFAULT_MAX_BYTES, iter_bodies

    target = endpoint or config.event_endpoint
    unsendable: dict[str, int] = {}

    def on_reject(rows, reason, detail) -> None:
        unsendable[reason.value] = unsendable.get(reason.value, 0) + len(rows)

    if isinstance(ledger, Ledger):
        book, own = ledger, False
    else:
        info = {
            "account_id": config.account_id, "project_id": config.project_id, "revision": datafile.revision,
            "endpoint": mask_url(target, config.secrets),
            "datafile_source": datafile.fetch.source if datafile.fetch else "",
            "toolkit_version": __version__, "strict": strict, "dry_run": dry_run,
            "max_body_bytes": max_body_bytes, **(run_info or {}),
        }
        book, own = Ledger.create(Path(ledger), info), True
    try:
        frames = [events] if isinstance(events, pd.DataFrame) else events

        def bodies() -> Iterator:
            for frame in frames:
                yield from iter_bodies(frame, account_id=config.account_id, project_id=config.project_id,
                                       revision=revision or datafile.revision, anonymize_ip=datafile.anonymize_ip,
                                       bot_filtering=datafile.bot_filtering,
                                       max_bytes=max_body_bytes or DEFAULT_MAX_BYTES, on_reject=on_reject)

        total = len(events) if isinstance(events, pd.DataFrame) else None
        report = deliver(bodies(), endpoint=target, ledger=book, strict=strict, concurrency=concurrency,
                         max_rps=max_rps, timeout=timeout, retry=RetryPolicy(max_attempts=max_attempts),
                         dry_run=dry_run, progress=progress, total_events=total)
    finally:
        if own:
            book.close()
    return ReplayOutcome(report=report, ledger_path=Path(book.path), unsendable=unsendable)
