"""Hand-built NORMALIZED rows for the mapping tests (no dependency on the export loader)."""

from __future__ import annotations

import itertools

import orjson
import pandas as pd

from toolkit.contracts import NORMALIZED, conform

_counter = itertools.count(1)


def row(event: str | None = "Order Completed", *, type: str = "track", props: dict | None = None,
        **fields) -> dict:
    """One normalized row; ``props`` become the properties JSON and, like the loader does, the
    revenue (revenue > total > value), currency and value columns."""
    n = next(_counter)
    props = dict(props or {})
    out: dict = {"event_id": f"msg-{n}", "type": type, "event": event, "user_id": None,
                 "anonymous_id": f"anon-{n}", "timestamp": 1_700_000_000_000 + n,
                 "properties": orjson.dumps(props).decode(), "source_row": n}
    for k in ("revenue", "total", "value"):
        if props.get(k) is not None:
            v = props[k]
            out["revenue_raw"] = v if isinstance(v, str) else orjson.dumps(v).decode()
            out["revenue_source"] = k
            break
    if props.get("value") is not None:
        v = props["value"]
        out["value_raw"] = v if isinstance(v, str) else orjson.dumps(v).decode()
    if props.get("currency") is not None:
        out["currency"] = str(props["currency"])
    out.update(fields)
    return out


def frame(rows: list[dict]) -> pd.DataFrame:
    return conform(pd.DataFrame(rows, columns=list(NORMALIZED)), NORMALIZED) if not rows else \
        conform(pd.DataFrame.from_records(rows), NORMALIZED)
