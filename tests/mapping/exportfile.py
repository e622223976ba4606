"""Small Datafly JSON Lines exports written by the tests (canonical camelCase events)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def iso(ms: int) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    with open(path, "wb") as fh:
        for r in records:
            fh.write(r.encode() if isinstance(r, str) else orjson.dumps(r))
            fh.write(b"\n")
    return path


def synthetic(n_people: int, *, seed: int = 1) -> list[dict | str]:
    """People who view an experiment, browse anonymously, log in, buy; with some defects."""
    rnd = random.Random(seed)
    out: list[dict | str] = []
    ms = 0
    for p in range(n_people):
        user, anon = f"user-{p}", f"anon-{p}-{rnd.randrange(10**6)}"
        ms += rnd.randrange(1, 5000)

        def ev(kind: str, name: str | None, props: dict | None = None, *, uid: str | None = None,
               aid: str | None = anon, person: int = p) -> dict:
            nonlocal ms
            ms += rnd.randrange(1, 1000)
            rec = {"messageId": f"{person}-{len(out)}", "type": kind, "anonymousId": aid, "userId": uid,
                   "timestamp": iso(ms)}
            if name is not None:
                rec["event" if kind == "track" else "name"] = name
            if props is not None:
                rec["properties"] = props
            return rec

        out.append(ev("page", "Home"))
        out.append(ev("track", "Experiment Viewed", {"experiment_id": "50001",
                                                      "variation_key": rnd.choice(["checkout_control",
                                                                                   "checkout_new"])}))
        out.append(ev("track", rnd.choice(["Product Added", "add_to_cart", "product_added"]),
                      {"sku": f"sku-{rnd.randrange(50)}", "price": rnd.randrange(100, 9999) / 100}))
        out.append(ev("identify", None, None, uid=user))
        cur = rnd.choice(["GBP", "USD", "JPY", "KWD", None])
        amount = {"GBP": "89.99", "USD": 19.99, "JPY": 1200, "KWD": "12.345", None: "5.00"}[cur]
        out.append(ev("track", "Order Completed", {"total": amount, "currency": cur, "order_id": f"o-{p}",
                                                   "products": [{"sku": "a"}] * rnd.randrange(1, 4)}, uid=user))
        out.append(ev("track", "Checkout Started", {"value": "45.50", "currency": "EUR"}, aid=f"anon2-{p}"))
        if p % 3 == 0:  # a third of the people log in on that second device too
            out.append(ev("identify", None, None, uid=user, aid=f"anon2-{p}"))
        if p % 5 == 1:
            out.append(ev("track", "Purchase", {"revenue": 10, "currency": "USD"}, uid=user))
        if p % 7 == 2:
            out.append(ev("track", "signup", {}, aid=None))
        if p % 11 == 3:
            out.append("{not json")
        if p % 13 == 4:
            out.append(ev("track", "Order Completed", {"revenue": "12.999", "currency": "GBP"}, uid=user))
    return out
