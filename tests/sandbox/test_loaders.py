"""The toolkit's own results loaders read what the sandbox serves (JSON, CSV, E3) to the same numbers."""

from __future__ import annotations

from toolkit.results import load_results

from .bodies import EXPECTED, EXPECTED_VISITORS, post, scenario


def _table(frame) -> dict:
    frame = frame[frame["experiment_id"] == "50001"]
    return {(r.variation_id, r.event_key): (int(r.unique_conversions), int(r.total_conversions), int(r.revenue))
            for r in frame.itertuples() if r.event_key in {"purchase", "add_to_cart", "begin_checkout"}}


def _visitors(frame) -> dict:
    frame = frame[frame["experiment_id"] == "50001"]
    return {vid: int(n) for vid, n in frame.groupby("variation_id")["visitors"].first().items()}


def test_results_api_and_csv_export_parse_with_the_toolkit_loaders(sandbox, tmp_path):
    post(sandbox.events_url, scenario())
    api = load_results(sandbox.results_url("50001"))
    assert _table(api) == EXPECTED and _visitors(api) == EXPECTED_VISITORS
    csv = load_results(sandbox.results_csv_url("50001"))
    assert _table(csv) == EXPECTED and _visitors(csv) == EXPECTED_VISITORS
    sandbox.export_e3(tmp_path / "e3")
    e3 = load_results(tmp_path / "e3")
    got = _table(e3)
    assert {k: v for k, v in got.items() if v != (0, 0, 0)} == {k: v for k, v in EXPECTED.items() if v != (0, 0, 0)}
    assert _visitors(e3) == EXPECTED_VISITORS
