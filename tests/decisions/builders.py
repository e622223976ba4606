"""Hand-built EVENTS rows for the decisions tests (ids from tests/fixtures/datafile.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from toolkit.contracts import CAMPAIGN_ACTIVATED, EVENTS, conform, empty
from toolkit.datafile import Datafile, load_datafile, parse_datafile

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datafile.json"

# fixture ids
CHECKOUT, PRICING, OLD_BANNER, GROUP1, GROUP2, ROLLOUT = "50001", "50002", "50003", "50011", "50012", "92001"
CONTROL, NEW, PRICING_A, PRICING_B, BANNER_OFF, G1_A, G1_B, G2_A, ROLLOUT_ON = (
    "70001", "70002", "70003", "70004", "70005", "70011", "70012", "70013", "93001"
)


def fixture_datafile() -> Datafile:
    return load_datafile(FIXTURE)


def datafile_with(edit) -> Datafile:
    """The fixture datafile after ``edit(raw_dict)`` (returns nothing, edits in place)."""
    raw = json.loads(FIXTURE.read_text())
    edit(raw)
    return parse_datafile(json.dumps(raw))


_CAMPAIGN = {CHECKOUT: "60001", PRICING: "60002", OLD_BANNER: "60003", GROUP1: "60011", GROUP2: "60012",
             ROLLOUT: "91001"}
_EVENT_ID = {"purchase": "40001", "add_to_cart": "40002", "begin_checkout": "40003", "form_submit": "40004",
             "signup": "40005"}


def imp(visitor: str, experiment: str, variation: str, ts: int, *, uuid: str | None = None) -> dict:
    return {"kind": "impression", "uuid": uuid or f"imp-{visitor}-{experiment}-{variation}-{ts}",
            "visitor_id": visitor, "timestamp": ts, "key": CAMPAIGN_ACTIVATED,
            "entity_id": _CAMPAIGN.get(experiment, experiment), "campaign_id": _CAMPAIGN.get(experiment, experiment),
            "experiment_id": experiment, "variation_id": variation, "tags": "{}"}


def conv(visitor: str, key: str, ts: int, revenue: int | None = None, *, uuid: str | None = None) -> dict:
    return {"kind": "conversion", "uuid": uuid or f"conv-{visitor}-{key}-{ts}", "visitor_id": visitor,
            "timestamp": ts, "key": key, "entity_id": _EVENT_ID.get(key), "revenue": revenue, "tags": "{}"}


def frame(*rows: dict) -> pd.DataFrame:
    if not rows:
        return empty(EVENTS)
    return conform(pd.DataFrame.from_records(list(rows)), EVENTS)
