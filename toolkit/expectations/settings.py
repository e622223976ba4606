"""Run settings of the expectation suites (frozen) and the suite parameters derived from them.

Suite files refer to run-dependent values as ``{"$PARAMETER": "name"}`` (Great Expectations'
suite parameters); :func:`suite_parameters` is the one place those names get their values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..datafile import Datafile
from ..errors import ConfigError

__all__ = ["ValidationSettings", "suite_parameters", "to_epoch_ms", "PARAMETERS", "CONDITIONS"]

# Earliest plausible event time (2000-01-01 UTC, ms): anything older is a unit mix-up (seconds
# read as ms) or a placeholder date.
MIN_PLAUSIBLE_MS = 946_684_800_000

# Names a suite file may use in {"$PARAMETER": ...} and what they hold (printed by `--help`-style docs).
PARAMETERS: dict[str, str] = {
    "now_ms": "the time of the run, epoch ms (nothing may be later)",
    "min_plausible_ms": "2000-01-01 UTC in epoch ms (anything older is a unit mix-up)",
    "window_start_ms": "start of the run window, epoch ms (settings.window_start)",
    "window_end_ms": "end of the run window, epoch ms (settings.window_end)",
    "key_not_in_datafile_mostly": "1 - settings.key_not_in_datafile_max_share",
    "datafile_event_keys": "the event keys of the datafile",
    "datafile_experiment_ids": "the experiment ids of the datafile",
    "datafile_variations": "'experiment_id:variation_id' of every variation of the datafile",
    "magnitude_factor": "settings.magnitude_factor (revenue more than this x or 1/x the median is suspect)",
}

# Values of an expectation's meta "when": the expectation runs only if the condition holds.
CONDITIONS: dict[str, str] = {
    "decisions_expected": "settings.decisions_expected is true",
    "not allow_refunds": "settings.allow_refunds is false",
    "run_window": "settings.window_start or settings.window_end is set",
}


def to_epoch_ms(value: Any, what: str) -> int | None:
    """None, epoch ms (int), a datetime or an ISO 8601 text -> epoch ms (naive = UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a time; give ISO 8601 (2024-05-01T00:00:00Z) or epoch ms")
    if isinstance(value, int):
        return value
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: {value!r} is not a time; give ISO 8601 (2024-05-01T00:00:00Z) or epoch ms") from None
    if ts is pd.NaT:
        raise ConfigError(f"{what}: empty time; give ISO 8601 (2024-05-01T00:00:00Z) or epoch ms")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


@dataclass(frozen=True)
class ValidationSettings:
    """What the rules need to know about the run.

    ``window_start`` / ``window_end``: the run's window (ISO text, datetime or epoch ms); events
    outside it are flagged. ``key_not_in_datafile_max_share``: the share of quarantined
    ``key_not_in_datafile`` rows (of conversions + quarantined rows) still accepted.
    ``magnitude_factor``: a revenue more than this many times (or this fraction of) the median of
    its currency looks multiplied twice / not at all. ``now_ms`` fixes "now" (tests); default
    the clock. ``examples``: failing rows kept per expectation.
    """

    allow_refunds: bool = False
    decisions_expected: bool = True
    window_start: datetime | str | int | None = None
    window_end: datetime | str | int | None = None
    key_not_in_datafile_max_share: float = 0.01
    magnitude_factor: float = 30.0
    now_ms: int | None = None
    examples: int = 5
    extra: dict[str, Any] = field(default_factory=dict)  # more suite parameters for custom suites

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.key_not_in_datafile_max_share <= 1.0:
            problems.append(f"key_not_in_datafile_max_share {self.key_not_in_datafile_max_share!r}: "
                            "give a share between 0 and 1 (0.01 = 1%)")
        if not self.magnitude_factor > 1.0:
            problems.append(f"magnitude_factor {self.magnitude_factor!r}: give a factor above 1 (30 = 30x)")
        if self.examples < 0:
            problems.append(f"examples {self.examples!r}: give 0 or more")
        start = to_epoch_ms(self.window_start, "window_start")
        end = to_epoch_ms(self.window_end, "window_end")
        if start is not None and end is not None and start > end:
            problems.append(f"run window starts after it ends ({self.window_start} > {self.window_end}); swap them")
        if problems:
            raise ConfigError(problems, source="validation settings")

    @property
    def has_window(self) -> bool:
        return self.window_start not in (None, "") or self.window_end not in (None, "")

    def condition(self, name: str) -> bool:
        """Whether an expectation with meta ``when: name`` applies to this run."""
        if name == "decisions_expected":
            return self.decisions_expected
        if name == "not allow_refunds":
            return not self.allow_refunds
        if name == "run_window":
            return self.has_window
        raise KeyError(name)


def suite_parameters(datafile: Datafile, settings: ValidationSettings) -> dict[str, Any]:
    """Values for every name in :data:`PARAMETERS` (plus ``settings.extra``)."""
    now = settings.now_ms if settings.now_ms is not None else int(time.time() * 1000)
    start = to_epoch_ms(settings.window_start, "window_start")
    end = to_epoch_ms(settings.window_end, "window_end")
    params: dict[str, Any] = {
        "now_ms": now,
        "min_plausible_ms": MIN_PLAUSIBLE_MS,
        "window_start_ms": start if start is not None else MIN_PLAUSIBLE_MS,
        "window_end_ms": end if end is not None else now,
        "key_not_in_datafile_mostly": 1.0 - settings.key_not_in_datafile_max_share,
        "datafile_event_keys": sorted(datafile.events),
        "datafile_experiment_ids": sorted(datafile.experiments),
        "datafile_variations": sorted(f"{e.id}:{v.id}" for e in datafile.experiments.values() for v in e.variations),
        "magnitude_factor": float(settings.magnitude_factor),
    }
    params.update(settings.extra)
    return params
