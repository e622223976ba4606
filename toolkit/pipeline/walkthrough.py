"""The onboarding walkthrough's logic (``notebooks/00_onboarding_walkthrough.ipynb`` stays thin).

A new analyst sees each rule of the Event API live against a local sandbox, with small hand-made
events, then runs the four pipeline steps on the bundled sample against the same sandbox:

- keys are case-sensitive: an unknown key gets 204 and is dropped silently, unless the request
  says ``X-Optimizely-Strict: true`` (the sandbox's ``/admin/stats`` shows the silent drop);
- revenue is an integer in the currency's minor units (``toolkit.money``);
- a conversion counts only after a decision of the same visitor;
- stable uuids make a resend harmless (``entity_id, uuid, timestamp`` dedup);
- what a 204 does not promise (valid, stored, counted, visible now).

Every concept function resets the sandbox first, so each table shows that concept alone. The
tables hold no ports, paths or times: the notebook checks them with nbval.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid as _uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from ..contracts import CAMPAIGN_ACTIVATED, EVENTS, conform
from ..datafile import Datafile, load_datafile
from .settings import RunSettings
from .stages import SAMPLE, StageContext, default_run_dir, notebook_logging

__all__ = ["Walkthrough", "start", "money_table", "keys_demo", "revenue_demo", "decisions_demo", "dedup_demo",
           "no_promise_demo", "pipeline_context", "T0"]

T0 = 1_793_620_800_000  # 2026-11-02T10:00:00Z, inside the sample's week
MINUTE = 60_000
SDK_KEY_ENV = "TOOLKIT_SANDBOX_SDK_KEY"  # never the real OPTIMIZELY_SDK_KEY of the analyst
_TIMEOUT = 10.0


@dataclass
class Sent:
    """One request to the sandbox's Event API and what the sandbox made of it."""

    status: int
    stored: int  # events stored (counted towards results if attribution allows)
    dropped: int  # events dropped silently (204 without strict mode)
    rejected: int  # events refused with a failure status (strict mode)
    reason: str  # the drop / rejection reason(s), "" when everything was stored
    duplicates: int = 0


@dataclass
class Walkthrough:
    """A running sandbox with the sample's datafile, and helpers to send hand-made events to it."""

    run_dir: Path
    sandbox: Any  # toolkit.sandbox.Sandbox
    datafile: Datafile

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.sandbox.stop()

    def __enter__(self) -> Walkthrough:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the sandbox over HTTP

    def stats(self) -> dict[str, Any]:
        """The sandbox's ``GET /admin/stats`` (what Optimizely would never tell you)."""
        r = requests.get(self.sandbox.url + "/admin/stats", timeout=_TIMEOUT)
        r.raise_for_status()
        return r.json()

    def reset(self) -> None:
        requests.post(self.sandbox.url + "/admin/reset", timeout=_TIMEOUT).raise_for_status()

    def post(self, body: bytes | dict, *, strict: bool = False) -> Sent:
        """POST one Event API body; the stats before and after say what happened to its events."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if strict:
            headers["X-Optimizely-Strict"] = "true"
        before = self.stats()
        r = requests.post(self.sandbox.events_url, data=data, headers=headers, timeout=_TIMEOUT)
        after = self.stats()
        reasons = _diff(after["silently_dropped_by_reason"], before["silently_dropped_by_reason"])
        if r.status_code >= 400:
            reasons = {k: int(v) for k, v in r.json().get("by_reason", {r.json().get("code", "?"): 1}).items()}
        return Sent(status=r.status_code,
                    stored=after["events_stored"] - before["events_stored"],
                    dropped=after["silently_dropped"] - before["silently_dropped"],
                    rejected=after["rejected_events"] - before["rejected_events"],
                    reason=", ".join(f"{k} ({v})" for k, v in sorted(reasons.items()) if v),
                    duplicates=after["duplicates"] - before["duplicates"])

    def send(self, events: pd.DataFrame, *, strict: bool = False, **peer_changes: Any) -> Sent:
        """Build the body the toolkit would send for ``events`` and POST it. ``peer_changes`` set
        fields of every event in the body first: what a peer integration sends instead."""
        data = body_for(events, self.datafile)
        if peer_changes:
            doc = json.loads(data)
            for visitor in doc["visitors"]:
                for snap in visitor["snapshots"]:
                    for ev in snap["events"]:
                        if ev["key"] != CAMPAIGN_ACTIVATED:
                            ev.update(peer_changes)
            data = json.dumps(doc).encode()
        return self.post(data, strict=strict)

    def results(self, experiment_key: str) -> pd.DataFrame:
        """What the sandbox's Results API counts for one experiment, read by ``toolkit.results``."""
        from ..results import load_results

        exp = self.datafile.experiment(experiment_key)
        frame = load_results(self.sandbox.url + "/v2/experiments/{experiment_id}/results", fmt="api",
                             experiment_ids=[exp.id], datafile=self.datafile)
        frame = frame.assign(variation=frame["variation_name"])
        return frame[["variation", "event_key", "visitors", "unique_conversions", "total_conversions", "revenue"]]

    # ------------------------------------------------------------------ hand-made events

    def decision(self, visitor_id: str, experiment_key: str, variation_key: str, timestamp: int) -> dict:
        """An impression (decision) row of the EVENTS contract."""
        exp = self.datafile.experiment(experiment_key)
        var = exp.variation(variation_key)
        return {"kind": "impression", "uuid": _uuid5("decision", visitor_id, exp.id, timestamp),
                "visitor_id": visitor_id, "timestamp": timestamp, "key": CAMPAIGN_ACTIVATED,
                "entity_id": exp.campaign_id, "campaign_id": exp.campaign_id, "experiment_id": exp.id,
                "variation_id": var.id, "flag_key": exp.flag_key, "rule_key": exp.key, "rule_type": exp.rule_type,
                "variation_key": var.key, "enabled": bool(var.feature_enabled), "tags": "{}"}

    def conversion(self, visitor_id: str, key: str, timestamp: int, *, revenue: int | None = None,
                   source_id: str | None = None) -> dict:
        """A conversion row; its uuid is the toolkit's stable uuid of ``source_id``."""
        from ..identity import stable_uuid

        info = self.datafile.events.get(key) or self.datafile.events.get(key.lower())
        tags = {"revenue": revenue} if revenue is not None else {}
        return {"kind": "conversion", "uuid": stable_uuid(source_id or f"{visitor_id}/{key}/{timestamp}"),
                "visitor_id": visitor_id, "timestamp": timestamp, "key": key,
                "entity_id": info.id if info else None, "revenue": revenue, "tags": json.dumps(tags)}


def _uuid5(*parts: object) -> str:
    from ..identity import content_uuid

    return content_uuid("walkthrough", *parts)


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def frame(rows: list[dict]) -> pd.DataFrame:
    return conform(pd.DataFrame(rows), EVENTS)


def body_for(events: list[dict] | pd.DataFrame, datafile: Datafile) -> bytes:
    """The one Event API body ``toolkit.payload`` builds for these events."""
    from ..payload import iter_bodies

    ev = events if isinstance(events, pd.DataFrame) else frame(events)
    bodies = list(iter_bodies(ev, account_id=datafile.account_id, project_id=datafile.project_id,
                              revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                              bot_filtering=datafile.bot_filtering))
    if len(bodies) != 1:
        raise ValueError(f"expected one body for {len(ev)} hand-made event(s), got {len(bodies)}")
    return bodies[0].data


def start(run_dir: str | Path = "", *, datafile: str | Path | None = None) -> Walkthrough:
    """Start a fresh sandbox on ``<run_dir>/sandbox`` (default: reports/notebooks/walkthrough)."""
    from ..sandbox import Sandbox

    notebook_logging()
    rd = Path(run_dir).resolve() if run_dir else default_run_dir() / "walkthrough"
    rd.mkdir(parents=True, exist_ok=True)
    data = rd / "sandbox"
    if data.exists():
        shutil.rmtree(data)  # a fresh sandbox: what the tables show depends on nothing earlier
    sample_key = json.loads((SAMPLE / "config.json").read_text())["config"]["sdk_key"]
    df = load_datafile(datafile or SAMPLE / "datafile.json")
    sandbox = Sandbox(data, datafile=df, sdk_key=sample_key).start()
    return Walkthrough(run_dir=rd, sandbox=sandbox, datafile=df)


# ---------------------------------------------------------------------------------- concepts


def keys_demo(w: Walkthrough) -> pd.DataFrame:
    """The datafile key, then the same event with a capital letter, without and with strict mode."""
    w.reset()
    rows = []
    for n, (key, strict) in enumerate((("purchase", False), ("Purchase", False), ("Purchase", True))):
        # entity_id stays the purchase event's id: only the key's case differs.
        ev = w.conversion(f"visitor-keys-{n}", "purchase", T0 + n * MINUTE)
        ev["key"] = key
        sent = w.send(frame([ev]), strict=strict)
        rows.append({"key sent": key, "X-Optimizely-Strict": strict, "HTTP status": sent.status,
                     "stored": sent.stored, "dropped silently": sent.dropped, "rejected": sent.rejected,
                     "reason": sent.reason})
    return pd.DataFrame(rows)


PEER_FLOOR = "Math.floor(x * 100)"


def money_table(cases: tuple[tuple[str, str], ...] = (("19.99", "GBP"), ("1200", "JPY"), ("12.345", "KWD"))
                ) -> pd.DataFrame:
    """Amounts in minor units by ``toolkit.money`` next to what a float-truncating peer sends."""
    from ..money import currency_exponent, to_minor_units

    return pd.DataFrame([{"amount": raw, "currency": cur, "exponent": currency_exponent(cur),
                          "toolkit (minor units)": to_minor_units(raw, cur),
                          f"peer {PEER_FLOOR}": math.floor(float(raw) * 100)} for raw, cur in cases])


def revenue_demo(w: Walkthrough) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three buyers of a 19.99 GBP order in one variation: the toolkit's 1999, a truncating
    peer's 1998, and a peer sending the decimal amount 19.99 (dropped silently)."""
    w.reset()
    sends = (("toolkit", {"revenue": 1999}), ("peer: floor", {"revenue": 1998}), ("peer: decimal", {"revenue": 19.99}))
    rows = []
    for n, (who, change) in enumerate(sends):
        vid = f"visitor-revenue-{n}"
        events = frame([w.decision(vid, "checkout_redesign", "control", T0),
                        w.conversion(vid, "purchase", T0 + MINUTE, revenue=1999)])
        sent = w.send(events, **(change if who != "toolkit" else {}))
        rows.append({"sender": who, "revenue sent": json.dumps(change["revenue"]), "HTTP status": sent.status,
                     "stored": sent.stored, "dropped silently": sent.dropped, "reason": sent.reason})
    res = w.results("checkout_redesign")
    return pd.DataFrame(rows), res[(res["variation"] == "control") & (res["event_key"] == "purchase")]


def decisions_demo(w: Walkthrough) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A conversion with no decision, one before its decision, one after: only the last counts.
    Returns what was sent, the sandbox's results and the toolkit's own prediction of why not."""
    from ..attribution import predict

    w.reset()
    cases = (("no decision", None), ("decision after the conversion", +MINUTE),
             ("decision before the conversion", -MINUTE))
    rows, all_events = [], []
    for n, (case, offset) in enumerate(cases):
        vid = f"visitor-decision-{n}"
        conv_at = T0 + 10 * MINUTE
        events = [w.conversion(vid, "purchase", conv_at)]
        if offset is not None:
            events.insert(0, w.decision(vid, "checkout_redesign", "redesign", conv_at + offset))
        sent = w.send(frame(events))
        all_events += events
        rows.append({"visitor": vid, "case": case, "HTTP status": sent.status, "stored": sent.stored})
    res = w.results("checkout_redesign")
    res = res[(res["variation"] == "redesign") & (res["event_key"] == "purchase")]
    exp_id = w.datafile.experiment("checkout_redesign").id
    nc = predict(frame(all_events), w.datafile).not_counted
    why = nc[nc["experiment_id"] == exp_id].sort_values("visitor_id")[["visitor_id", "key", "reason"]]
    return pd.DataFrame(rows), res, why.reset_index(drop=True)


def dedup_demo(w: Walkthrough) -> pd.DataFrame:
    """One order sent twice by the toolkit (stable uuid) and twice by a peer (new uuid per send)."""
    rows = []
    for who in ("toolkit: stable uuid", "peer: new uuid per send"):
        w.reset()
        vid = "visitor-dedup"
        events = frame([w.decision(vid, "checkout_redesign", "control", T0),
                        w.conversion(vid, "purchase", T0 + MINUTE, source_id="order-1001")])
        statuses, dups = [], 0
        for _attempt in range(2):
            change = {"uuid": str(_uuid.uuid4())} if who.startswith("peer") else {}
            sent = w.send(events, **change)
            statuses.append(sent.status)
            dups += sent.duplicates
        res = w.results("checkout_redesign")
        counted = res[(res["variation"] == "control") & (res["event_key"] == "purchase")]["total_conversions"]
        rows.append({"sender": who, "sends": len(statuses), "HTTP statuses": " ".join(map(str, statuses)),
                     "duplicates dropped": dups, "conversions counted": int(counted.sum())})
    return pd.DataFrame(rows)


def no_promise_demo(w: Walkthrough) -> pd.DataFrame:
    """Three requests that all get 204: dropped, stored but never counted, counted only later."""
    from ..sandbox import Sandbox

    w.reset()
    rows = []
    miscased = w.conversion("visitor-204-0", "purchase", T0)
    miscased["key"] = "Purchase"
    sent = w.send(frame([miscased]))
    rows.append({"sent": "a conversion with key 'Purchase'", "HTTP status": sent.status, "stored": sent.stored > 0,
                 "counted now": False, "why": "key not in the datafile: dropped silently"})
    sent = w.send(frame([w.conversion("visitor-204-1", "purchase", T0)]))
    counted = int(w.results("checkout_redesign")["total_conversions"].sum())
    rows.append({"sent": "a conversion with no decision", "HTTP status": sent.status, "stored": sent.stored > 0,
                 "counted now": counted > 0, "why": "visitor never bucketed: stored, never attributed"})
    # Optimizely's results lag up to 10 minutes behind the 204: a second sandbox shows it.
    lagging = Sandbox(w.run_dir / "sandbox-lag", datafile=w.datafile, sdk_key=w.sandbox.sdk_key, lag_seconds=600)
    shutil.rmtree(lagging.data_dir, ignore_errors=True)
    with lagging:
        other = Walkthrough(run_dir=w.run_dir, sandbox=lagging, datafile=w.datafile)
        vid = "visitor-204-2"
        sent = other.send(frame([other.decision(vid, "checkout_redesign", "control", T0),
                                 other.conversion(vid, "purchase", T0 + MINUTE)]))
        counted = int(other.results("checkout_redesign")["total_conversions"].sum())
    rows.append({"sent": "a decision, then a conversion", "HTTP status": sent.status, "stored": sent.stored > 0,
                 "counted now": counted > 0, "why": "processing lag: results catch up within ~10 minutes"})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- the four steps


def pipeline_context(w: Walkthrough, *, export: str | Path | None = None) -> StageContext:
    """A run folder of its own (``<run_dir>/pipeline``) whose stages replay the sample to this
    sandbox (reset first) and read its results. The sandbox's key reaches the config through a
    secrets file, as a real key should, never through the settings."""
    w.reset()
    rd = w.run_dir / "pipeline"
    if rd.exists():
        shutil.rmtree(rd)
    rd.mkdir(parents=True)
    secrets = rd / "sandbox.env"
    secrets.write_text(f"{SDK_KEY_ENV}={w.sandbox.sdk_key}\n")
    config = rd / "optimizely.json"
    config.write_text(json.dumps({
        "name": "Optimizely", "variant": "default", "delivery_mode": "server_side",
        "config": {"account_id": w.datafile.account_id, "project_id": w.datafile.project_id,
                   "datafile_url": w.sandbox.url + "/datafiles/{sdk_key}.json",
                   "event_endpoint": w.sandbox.events_url}}, indent=2))
    settings = RunSettings(config=str(config), export=str(export or SAMPLE / "export.jsonl"),
                           results=w.sandbox.url + "/v2/experiments/{experiment_id}/results",
                           sdk_key_env=SDK_KEY_ENV, secrets_file=str(secrets), out=str(w.run_dir),
                           run_id=rd.name)
    return StageContext(settings=settings, run_dir=rd)
