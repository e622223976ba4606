"""Each rule of the shipped suites: a clean frame passes it; a frame with its defect fails it, with the
right failing rows (source_row) and severity."""

from __future__ import annotations

import pytest

from toolkit.datafile import load_datafile
from toolkit.expectations import ValidationSettings, load_suites, run_suites

from .builders import NOW, WINDOW, T, clean_rows, events, patch, quarantine

BASE = dict(now_ms=NOW, window_start=WINDOW[0], window_end=WINDOW[1], examples=20)


@pytest.fixture(scope="module")
def suites():
    return {s.name: s for s in load_suites()}


@pytest.fixture(scope="module")
def datafile():
    from tests.conftest import FIXTURES

    return load_datafile(FIXTURES / "datafile.json")


def _run(suites, datafile, rows, q=None, suite=None, **settings):
    chosen = [suites[suite]] if suite else list(suites.values())
    return run_suites(events(rows), q if q is not None else quarantine(), datafile, suites=chosen,
                      settings=ValidationSettings(**{**BASE, **settings}))


def _outcome(report, suite, index):
    (o,) = [o for o in report.outcomes if o.suite == suite and o.index == index]
    return o


def test_clean_frame_passes_every_rule(suites, datafile):
    report = _run(suites, datafile, clean_rows(), quarantine((7, "malformed_row")))
    bad = [(o.label, o.status, o.examples) for o in report.outcomes if o.status != "passed"]
    assert bad == []
    assert report.success and report.exit_code == 0
    assert len(report.outcomes) == sum(len(s.expectations) for s in suites.values())
    summary = report.summary_frame()
    assert list(summary.columns) == ["suite", "expectation", "description", "severity", "status", "failing",
                                     "checked", "share"]
    assert len(summary) == len(report.outcomes) and set(summary["status"]) == {"passed"}
    assert report.failing_rows.empty and "PASSED" in report._repr_html_()


C = clean_rows()
# (suite, index, severity, rows, quarantine rows, settings, failing source rows)
CASES = {
    "visitor id missing": ("identity_time", 1, "error", patch(C, 4, visitor_id=None), (), {}, [4]),
    "uuid duplicated": ("identity_time", 2, "error", patch(C, 3, uuid="u2"), (), {}, [2, 3]),
    "timestamp missing": ("identity_time", 3, "error", patch(C, 14, timestamp=None), (), {}, [14]),
    "timestamp in the future": ("identity_time", 4, "error", patch(C, 3, timestamp=NOW + 60_000), (), {}, [3]),
    "timestamp in seconds": ("identity_time", 4, "error", patch(C, 14, timestamp=T // 1000), (), {}, [14]),
    "timestamp outside window": ("identity_time", 5, "error", patch(C, 3, timestamp=T + 7_200_000), (), {}, [3]),
    "conversion before decision": ("identity_time", 6, "warning", patch(C, 2, timestamp=T - 1), (), {}, [2]),
    "conversion at decision time": ("identity_time", 6, "warning", patch(C, 6, timestamp=T), (), {}, [6]),
    "visitor never decided": ("identity_time", 6, "warning", patch(C, 4, visitor_id="v9"), (), {}, [4]),
    "quarantined for visitor/time": ("identity_time", 7, "warning", C, ((8, "missing_visitor_id"),), {}, [8]),
    "key miscased": ("keys", 1, "error", patch(C, 4, key="Add_To_Cart"), (), {}, [4]),
    "key_not_in_datafile share": ("keys", 2, "error", C, ((8, "key_not_in_datafile"),), {}, [8]),
    "key_not_in_datafile listed": ("keys", 3, "warning", C, ((8, "key_not_in_datafile"),),
                                   {"key_not_in_datafile_max_share": 0.5}, [8]),
    "experiment unknown": ("keys", 4, "error", patch(C, 1, experiment_id="59999"), (), {}, [1]),
    "variation of another experiment": ("keys", 5, "error", patch(C, 5, variation_id="70001"), (), {}, [5]),
    "experiment paused": ("keys", 6, "warning", patch(C, 1, experiment_id="50003", variation_id="70005"),
                          (), {}, [1]),
    "revenue with decimals": ("revenue", 1, "error", patch(C, 2, revenue=19.99), (), {}, [2]),
    "revenue negative": ("revenue", 2, "error", patch(C, 2, revenue=-1999), (), {}, [2]),
    "purchase without revenue": ("revenue", 3, "error", patch(C, 3, revenue=None), (), {}, [3]),
    "currency lower case": ("revenue", 4, "error", patch(C, 2, tags='{"currency":"usd"}'), (), {}, [2]),
    "currency not ISO 4217": ("revenue", 4, "error", patch(C, 3, tags='{"currency":"BTC"}'), (), {}, [3]),
    "purchase without currency": ("revenue", 5, "warning", patch(C, 3, tags="{}"), (), {}, [3]),
    "revenue multiplied twice": ("revenue", 6, "warning", patch(C, 3, revenue=250_000), (), {}, [3]),
    "revenue not multiplied": ("revenue", 6, "warning", patch(C, 3, revenue=25), (), {}, [3]),
    "quarantined for revenue": ("revenue", 7, "warning", C, ((8, "unknown_currency"), (15, "invalid_revenue")),
                                {}, [8, 15]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_catches_its_defect(suites, datafile, case):
    suite, index, severity, rows, qrows, settings, failing = CASES[case]
    report = _run(suites, datafile, rows, quarantine(*qrows), suite=suite, **settings)
    o = _outcome(report, suite, index)
    assert o.status == "failed" and o.severity == severity
    assert o.unexpected_count == len(failing)
    assert sorted(ex["source_row"] for ex in o.examples) == failing
    assert all(ex["source_event_id"] == f"s{ex['source_row']}" for ex in o.examples)
    assert report.success is (severity == "warning" and not any(
        x.failed and x.severity == "error" for x in report.outcomes))
    assert o.share == pytest.approx(len(failing) / o.element_count)


def test_key_share_threshold_is_a_setting(suites, datafile):
    q = quarantine((8, "key_not_in_datafile"))  # 1 of 10 conversions + 1 quarantined row
    assert _outcome(_run(suites, datafile, C, q, suite="keys"), "keys", 2).status == "failed"
    assert _outcome(_run(suites, datafile, C, q, suite="keys", key_not_in_datafile_max_share=0.1),
                    "keys", 2).status == "passed"


def test_conditional_rules_are_skipped_not_passed(suites, datafile):
    rows = patch(patch(C, 2, revenue=-1999, timestamp=T - 1), 3, timestamp=T + 7_200_000)
    report = _run(suites, datafile, rows, allow_refunds=True, decisions_expected=False,
                  window_start=None, window_end=None)
    for suite, index in (("revenue", 2), ("identity_time", 5), ("identity_time", 6)):
        assert _outcome(report, suite, index).status == "skipped"
    assert report.count("skipped") == 3
    assert report.success


def test_gx_progress_bars_are_off(suites, datafile, capfd):
    _run(suites, datafile, C, suite="keys")
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
