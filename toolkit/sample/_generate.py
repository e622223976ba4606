"""Synthetic visitors and their events (internal): sessions, SDK-bucketed activations, defects.

Events are dicts in the canonical Datafly form plus private keys (``t`` epoch ms, ``_tags`` and
other ``_`` markers) that the writers drop and the manifest counts.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = ["build_events", "WINDOW_START", "WINDOW_END", "NOTES", "SPELLINGS", "ACTIVATION", "UNKNOWN_CURRENCY"]

WINDOW_START = datetime(2026, 11, 2, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 9, tzinfo=UTC)  # exclusive: events fall on 2026-11-02 .. 2026-11-08
_START_MS = int(WINDOW_START.timestamp() * 1000)
_SPAN_MS = int((WINDOW_END - WINDOW_START).total_seconds() * 1000) - 2 * 86_400_000  # room for later visits

SPELLINGS = {  # blueprint spellings of one event: Datafly name, snake_case id, GA4 name
    "order": ("Order Completed", "order_completed", "purchase"),
    "add": ("Product Added", "product_added", "add_to_cart"),
    "checkout": ("Checkout Started", "checkout_started", "begin_checkout"),
    "form": ("Form Submitted", "form_submitted", "form_submit"),
}
ACTIVATION = ("Experiment Viewed", "experiment_viewed")
CURRENCIES = (("USD", 2, 55), ("GBP", 2, 15), ("EUR", 2, 15), ("JPY", 0, 8), ("KWD", 3, 7))
UNKNOWN_CURRENCY = "BTC"
NOTES = {
    "miscased_keys": "custom track names differing from a datafile key only by case (\"Signup\", \"Purchase\")",
    "decimal_revenue": "orders whose money property is a JSON number with decimals (89.99)",
    "string_revenue": "orders whose money property is a string (\"19.99\")",
    "integer_revenue": "orders whose money property is a JSON integer (JPY amounts, whole amounts)",
    "jpy_orders": "orders in JPY (exponent 0)", "kwd_orders": "orders in KWD (exponent 3)",
    "unknown_currency": f"orders in {UNKNOWN_CURRENCY}, not an ISO 4217 code",
    "negative_revenue": "orders with a negative money value",
    "missing_ids": "events with neither userId nor anonymousId",
    "multi_anonymous_persons": "users whose identify events link two or more anonymous ids",
    "extra_anonymous_ids": "anonymous ids beyond the first of those users (visitor inflation without stitching)",
    "unbucketed_visitors": "visitors with conversions and no Experiment Viewed at all",
    "unbucketed_conversions": "track conversions (not Experiment Viewed) of those visitors",
    "conversion_before_decision": "conversions earlier than the same visitor's first Experiment Viewed",
    "unparseable_timestamp": "rows whose timestamp does not parse (Parquet: null, its column is a timestamp)",
    "malformed_json_line": "lines that are not a JSON object (JSONL only)",
}


class _Gen:
    def __init__(self, seed: int, datafile_text: str) -> None:
        from ..datafile import parse_datafile

        self.rng = random.Random(seed)
        self.df = parse_datafile(datafile_text, source="sample datafile")
        self.pc = self.df.project_config()
        from optimizely.bucketer import Bucketer

        self.bucketer = Bucketer()
        self.events: list[dict[str, Any]] = []
        self.n_users = 0

    # ---- ids and time
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def step(self, t: int) -> int:
        return t + self.rng.randint(4_000, 180_000)

    def emit(self, kind: str, t: int, anon: str | None, user: str | None, **fields: Any) -> dict[str, Any]:
        ev = {"messageId": self.uid(), "type": kind, **fields, "t": t, "anonymousId": anon, "userId": user,
              "_tags": set()}
        self.events.append(ev)
        return ev

    # ---- decisions through the SDK bucketer
    def activate(self, t: int, anon: str, user: str | None, exp_key: str) -> dict | None:
        exp = self.pc.get_experiment_from_key(exp_key)
        visitor = user or anon
        variation, _ = self.bucketer.bucket(self.pc, exp, visitor, visitor)
        if variation is None:
            return None
        form = self.rng.random()
        if form < 0.5:
            props = {"experiment_id": exp.id, "variation_id": variation.id}
        elif form < 0.8:
            props = {"experiment_key": exp.key, "variation_key": variation.key}
        else:
            props = {"experiment_id": exp.id, "variation_key": variation.key}
        name = ACTIVATION[0] if self.rng.random() < 0.8 else ACTIVATION[1]
        return self.emit("track", t, anon, user, event=name, properties=props, _activation=True)

    # ---- money
    def money(self, amount: Decimal, exponent: int) -> tuple[Any, str]:
        """(JSON value, form): mostly numbers as written (89.99), sometimes strings ("19.99")."""
        text = f"{amount:.{exponent}f}"
        if self.rng.random() < 0.12:
            return text, "string"
        if exponent == 0 or amount == amount.to_integral_value():
            return int(amount), "integer"
        return float(text), "decimal"

    def order(self, t: int, anon: str | None, user: str | None, name: str | None = None) -> dict:
        rng = self.rng
        code, exponent, _ = rng.choices(CURRENCIES, weights=[c[2] for c in CURRENCIES])[0]
        products, total = [], Decimal(0)
        for _ in range(rng.randint(1, 3)):
            price = Decimal(rng.randint(5, 150) * 100) if exponent == 0 else \
                Decimal(rng.randint(5 * 10**exponent, 150 * 10**exponent)).scaleb(-exponent)
            qty = rng.randint(1, 3)
            total += price * qty
            products.append({"product_id": f"sku_{rng.randint(1, 400):04d}",
                             "price": int(price) if exponent == 0 else float(price), "quantity": qty})
        value, form = self.money(total, exponent)
        key = rng.choices(("total", "revenue", "value"), weights=(5, 4, 1))[0]
        props = {"order_id": f"ord_{rng.getrandbits(40):010x}", key: value, "currency": code, "products": products}
        name = name or rng.choices(SPELLINGS["order"], weights=(6, 2, 2))[0]
        ev = self.emit("track", t, anon, user, event=name, properties=props)
        ev.update(_order=True, _money_key=key, _tags={f"revenue_{form}"})
        return ev

    # ---- one visit
    def session(self, anon: str, user: str | None, identify: bool, t: int, *, decide: bool = True,
                late_decision: bool = False) -> int:
        rng = self.rng
        self.emit("page", t, anon, None if identify else user, name="Home",
                  properties={"path": "/", "title": "Home"})
        if identify:
            t = self.step(t)
            self.emit("identify", t, anon, user, traits={"plan": rng.choice(("free", "pro", "team"))})
        if late_decision:
            t = self.step(t)
            self.order(t, anon, user)
            t = self.step(t)
            self.activate(t, anon, user, "checkout_redesign")
            return t
        if decide:
            for key, chance in (("checkout_redesign", 1.0), ("free_shipping_rule", 0.6), ("signup_form_copy", 0.4)):
                if rng.random() < chance:
                    self.activate(t, anon, user, key)
        if rng.random() < 0.55:
            t = self.step(t)
            self.emit("track", t, anon, user, event=rng.choices(SPELLINGS["add"], weights=(6, 2, 2))[0],
                      properties={"product_id": f"sku_{rng.randint(1, 400):04d}", "price": 24.99, "quantity": 1,
                                  "currency": "USD"})
            if rng.random() < 0.65:
                t = self.step(t)
                value, _ = self.money(Decimal(rng.randint(1000, 30000)).scaleb(-2), 2)
                self.emit("track", t, anon, user, event=rng.choices(SPELLINGS["checkout"], weights=(6, 2, 2))[0],
                          properties={"value": value, "currency": "USD"})
                if rng.random() < 0.7:
                    t = self.step(t)
                    self.order(t, anon, user)
        if rng.random() < 0.15:
            t = self.step(t)
            self.emit("track", t, anon, user, event=rng.choices(SPELLINGS["form"], weights=(6, 2, 2))[0],
                      properties={"form_id": "newsletter", "form_name": "Newsletter"})
        if rng.random() < 0.12:
            t = self.step(t)
            self.emit("track", t, anon, user, event="signup", properties={"method": rng.choice(("email", "google"))})
        return t

    def person(self, kind: str) -> None:
        t = _START_MS + self.rng.randrange(_SPAN_MS)
        first = len(self.events)
        if kind in ("unbucketed", "late"):
            anon = self.uid()
            t = self.session(anon, None, False, t, decide=False, late_decision=kind == "late")
            if kind == "unbucketed":
                self.order(self.step(t), anon, None)
            for e in self.events[first:]:
                e["_person_defect"] = kind
            return
        if kind == "known":
            self.n_users += 1
            user = f"user_{self.n_users:05d}"
            devices = self.rng.choice((1, 1, 2, 3)) if self.rng.random() < 0.35 else 1
            for _ in range(devices):
                t = self.session(self.uid(), user, True, t) + self.rng.randint(600_000, 36_000_000)
            return
        self.session(self.uid(), None, False, t)


def _inject(gen: _Gen, n: int) -> None:
    """Event-level defects, each on events of ordinary visitors, one defect per event at most."""
    rng = gen.rng
    plain = [e for e in gen.events if not e.get("_person_defect") and not e["_tags"] - {
        "revenue_decimal", "revenue_string", "revenue_integer"}]
    orders = [e for e in plain if e.get("_order") and e["properties"]["currency"] in ("USD", "GBP", "EUR")]
    rng.shuffle(orders)
    k = max(1, n // 800)
    for e in orders[:k]:
        e["event"] = "Purchase"
        e["_tags"].add("miscased")
    for e in orders[k: k + max(1, n // 1000)]:
        e["properties"]["currency"] = UNKNOWN_CURRENCY
        e["_tags"].add("unknown_currency")
    for e in orders[k + max(1, n // 1000): k + 2 * max(1, n // 1000)]:
        v = e["properties"][e["_money_key"]]
        e["properties"][e["_money_key"]] = f"-{v}" if isinstance(v, str) else -v
        e["_tags"].add("negative_revenue")
    signups = [e for e in plain if e.get("event") == "signup"]
    for e in rng.sample(signups, min(len(signups), max(1, n // 1000))):
        e["event"] = "Signup"
        e["_tags"].add("miscased")
    untagged = [e for e in plain if e["type"] == "track" and not e.get("_activation") and not e.get("_order")
                and not e["_tags"]]
    picked = rng.sample(untagged, max(2, n // 400) + 1)
    for e in picked[:-1]:
        e["anonymousId"] = e["userId"] = None
        e["_tags"].add("missing_ids")
    picked[-1]["_tags"].add("unparseable_timestamp")


def build_events(n: int, seed: int, datafile_text: str) -> list[dict[str, Any]]:
    """Exactly ``n`` events in time order (ties by creation), defects injected."""
    gen = _Gen(seed, datafile_text)
    for kind, count in (("unbucketed", max(2, n // 400)), ("late", max(1, n // 1000))):
        for _ in range(count):
            gen.person(kind)
    while len(gen.events) < n:
        gen.person("known" if gen.rng.random() < 0.3 else "anonymous")
    del gen.events[n:]  # the last visit may stop early, as a real export's edge does
    _inject(gen, n)
    order = sorted(range(len(gen.events)), key=lambda i: (gen.events[i]["t"], i))
    return [gen.events[i] for i in order]
