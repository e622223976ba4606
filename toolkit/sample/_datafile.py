"""The sample's v4 datafile and its Datafly install config (pointing at the same account/project)."""

from __future__ import annotations

from typing import Any

from ..config import cdn_datafile_url

__all__ = ["ACCOUNT_ID", "PROJECT_ID", "SDK_KEY", "REVISION", "build_datafile", "install_config"]

ACCOUNT_ID = "10203040"
PROJECT_ID = "50607080"
SDK_KEY = "SandboxSdkKey"  # the sandbox's default key: the sample works against it unchanged
REVISION = "7"


def _variations(*items: tuple[str, str, bool | None]) -> list[dict[str, Any]]:
    out = []
    for vid, key, enabled in items:
        v: dict[str, Any] = {"id": vid, "key": key, "variables": []}
        if enabled is not None:
            v["featureEnabled"] = enabled
        out.append(v)
    return out


def _experiment(eid: str, key: str, status: str, layer: str, variations: list[dict], ends: list[int]) -> dict:
    return {
        "id": eid, "key": key, "status": status, "layerId": layer,
        "audienceIds": [], "audienceConditions": [], "forcedVariations": {},
        "variations": variations,
        "trafficAllocation": [{"entityId": v["id"], "endOfRange": end}
                              for v, end in zip(variations, ends, strict=True)],
    }


def build_datafile() -> dict[str, Any]:
    """Three running experiments (one a feature-flag rule, one with 80% traffic), one paused."""
    experiments = [
        _experiment("51001", "checkout_redesign", "Running", "61001",
                    _variations(("71001", "control", None), ("71002", "redesign", None)), [5000, 10000]),
        _experiment("51002", "free_shipping_rule", "Running", "61002",
                    _variations(("71003", "off", False), ("71004", "on", True)), [5000, 10000]),
        _experiment("51003", "signup_form_copy", "Running", "61003",
                    _variations(("71005", "short", None), ("71006", "long", None), ("71007", "social", None)),
                    [2700, 5400, 8000]),  # 20% of visitors are in no variation
        _experiment("51004", "holiday_banner", "Paused", "61004",
                    _variations(("71008", "banner_off", None), ("71009", "banner_on", None)), [5000, 10000]),
    ]
    return {
        "version": "4",
        "accountId": ACCOUNT_ID,
        "projectId": PROJECT_ID,
        "revision": REVISION,
        "sdkKey": SDK_KEY,
        "environmentKey": "production",
        "anonymizeIP": True,
        "botFiltering": False,
        "sendFlagDecisions": True,
        "attributes": [{"id": "21001", "key": "plan"}],
        "audiences": [],
        "typedAudiences": [],
        "events": [
            {"id": "41001", "key": "purchase", "experimentIds": ["51001", "51002"]},
            {"id": "41002", "key": "add_to_cart", "experimentIds": ["51001"]},
            {"id": "41003", "key": "begin_checkout", "experimentIds": ["51001", "51002"]},
            {"id": "41004", "key": "form_submit", "experimentIds": ["51003"]},
            {"id": "41005", "key": "signup", "experimentIds": ["51003"]},
            {"id": "41006", "key": "newsletter_subscribe", "experimentIds": []},
        ],
        "experiments": experiments,
        "groups": [],
        "featureFlags": [
            {"id": "81001", "key": "free_shipping", "experimentIds": ["51002"], "rolloutId": "91001", "variables": []},
        ],
        "rollouts": [{
            "id": "91001",
            "experiments": [{
                "id": "92001", "key": "default-rollout-81001", "status": "Running", "layerId": "91001",
                "audienceIds": [], "forcedVariations": {},
                "variations": [{"id": "93001", "key": "off", "featureEnabled": False, "variables": []}],
                "trafficAllocation": [{"entityId": "93001", "endOfRange": 10000}],
            }],
        }],
        "integrations": [],
    }


def install_config() -> dict[str, Any]:
    """The Datafly install JSON for the sample project (the sample key is not a real secret)."""
    return {
        "name": "Optimizely",
        "variant": "default",
        "config": {
            "account_id": ACCOUNT_ID,
            "project_id": PROJECT_ID,
            "sdk_key": SDK_KEY,
            "datafile_url": cdn_datafile_url(SDK_KEY),
        },
        "delivery_mode": "server_side",
    }
