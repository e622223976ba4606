"""Event API bodies built by hand for the sandbox tests (the SDK-built ones are in test_sdk_bodies)."""

from __future__ import annotations

import itertools
from typing import Any

import requests

ACCOUNT, PROJECT = "12345678", "98765432"
T0 = 1_700_000_000_000  # ms; offsets below are in ms from here
EXP, CAMPAIGN, CONTROL, TREATMENT = "50001", "60001", "70001", "70002"  # checkout_flow
EVENT_IDS = {"purchase": "40001", "add_to_cart": "40002", "begin_checkout": "40003",
             "form_submit": "40004", "signup": "40005"}

_counter = itertools.count()


def _uuid(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def decision(t: int, *, variation: str = CONTROL, experiment: str = EXP, campaign: str = CAMPAIGN,
             uuid: str | None = None, entity_id: str | None = None) -> dict[str, Any]:
    """An impression snapshot: one decision and its campaign_activated event."""
    return {
        "decisions": [{"campaign_id": campaign, "experiment_id": experiment, "variation_id": variation,
                       "metadata": {"flag_key": "", "rule_key": "", "rule_type": "experiment",
                                    "variation_key": "", "enabled": True}}],
        "events": [{"entity_id": entity_id or campaign, "key": "campaign_activated", "timestamp": T0 + t,
                    "uuid": uuid or _uuid("imp")}],
    }


def conversion(key: str, t: int, *, revenue: Any = None, value: Any = None, uuid: str | None = None,
               entity_id: str | None = None, tags: dict | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"entity_id": entity_id or EVENT_IDS.get(key, "49999"), "key": key,
                          "timestamp": T0 + t, "uuid": uuid or _uuid("conv")}
    all_tags = dict(tags or {})
    if revenue is not None:
        ev["revenue"] = revenue
        all_tags["revenue"] = revenue
    if value is not None:
        ev["value"] = value
        all_tags["value"] = value
    if all_tags:
        ev["tags"] = all_tags
    return {"events": [ev]}


def visitor(visitor_id: str, *snapshots: dict[str, Any], attributes: list | None = None) -> dict[str, Any]:
    return {"visitor_id": visitor_id, "attributes": attributes or [], "snapshots": list(snapshots)}


def body(*visitors: dict[str, Any], account_id: str = ACCOUNT, project_id: str = PROJECT) -> dict[str, Any]:
    return {"account_id": account_id, "project_id": project_id, "revision": "42",
            "client_name": "sandbox-tests", "client_version": "0", "anonymize_ip": True,
            "enrich_decisions": True, "visitors": list(visitors)}


def post(url: str, data: dict | bytes, *, strict: bool = False, content_type: str = "application/json",
         timeout: float = 30.0) -> requests.Response:
    import json

    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {"Content-Type": content_type}
    if strict:
        headers["X-Optimizely-Strict"] = "true"
    return requests.post(url, data=raw, headers=headers, timeout=timeout)


def scenario() -> dict[str, Any]:
    """One body exercising every attribution rule; expected counts in ``EXPECTED`` (by hand)."""
    return body(
        # v1: control; two purchases and an add_to_cart after the decision
        visitor("v1", decision(1000), conversion("purchase", 2000, revenue=1000),
                conversion("purchase", 3000, revenue=500), conversion("add_to_cart", 2500)),
        # v2: treatment; a purchase before and one at the same ms as the decision do not count
        visitor("v2", decision(1000, variation=TREATMENT), conversion("purchase", 500, revenue=7),
                conversion("purchase", 1000, revenue=11), conversion("purchase", 1500, revenue=200)),
        # v3: treatment first, control later: stays in treatment
        visitor("v3", decision(1000, variation=TREATMENT), decision(2000, variation=CONTROL),
                conversion("purchase", 3000, revenue=300)),
        # v4: control; events not attached to checkout_flow
        visitor("v4", decision(1000), conversion("form_submit", 2000), conversion("signup", 2000)),
        # v5: no decision at all
        visitor("v5", conversion("purchase", 2000, revenue=999)),
        # v6: decision for the paused experiment old_banner
        visitor("v6", decision(1000, experiment="50003", campaign="60003", variation="70005"),
                conversion("purchase", 2000, revenue=5)),
        # v7: control; the same purchase twice (deduplicated)
        visitor("v7", decision(1000), conversion("purchase", 2000, uuid="dup-1"),
                conversion("purchase", 2000, uuid="dup-1")),
        # v8: pricing_page, variation pricing_a; signup and purchase
        visitor("v8", decision(1000, experiment="50002", campaign="60002", variation="70003"),
                conversion("signup", 2000), conversion("purchase", 3000, revenue=50)),
    )


# (variation, event key) -> (unique, total, revenue) for checkout_flow, computed by hand above
EXPECTED_VISITORS = {CONTROL: 3, TREATMENT: 2}  # v1 v4 v7 | v2 v3
EXPECTED = {
    (CONTROL, "purchase"): (2, 3, 1500),  # v1 x2 (1000+500), v7 x1 (no revenue)
    (TREATMENT, "purchase"): (2, 2, 500),  # v2 (200), v3 (300)
    (CONTROL, "add_to_cart"): (1, 1, 0),
    (TREATMENT, "add_to_cart"): (0, 0, 0),
    (CONTROL, "begin_checkout"): (0, 0, 0),
    (TREATMENT, "begin_checkout"): (0, 0, 0),
}
SCENARIO_EVENTS = 23  # events in scenario(): 1 duplicate, 22 stored, none dropped


def metric_table(results: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(variation, event key) -> (unique, total, revenue) from a Results API body."""
    out: dict[tuple[str, str], list[int]] = {}
    slot = {"unique": 0, "count": 1, "sum": 2}
    for m in results["metrics"]:
        for vid, r in m["results"].items():
            out.setdefault((vid, m["name"]), [0, 0, 0])[slot[m["aggregator"]]] = r["value"]
    return {k: tuple(v) for k, v in out.items()}
