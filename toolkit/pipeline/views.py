"""What the notebooks show: small aggregations and matplotlib figures (render offline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["ExportProfile", "profile_export", "plot_volumes", "plot_requests", "plot_reconciliation",
           "quarantine_by_reason"]


@dataclass(frozen=True)
class ExportProfile:
    by_event_day: pd.DataFrame  # day, event (type for non-track rows), rows
    identity: pd.DataFrame  # coverage: rows with user id and anonymous id, one of them, none
    rows_in: int


def profile_export(path, *, fmt: str | None = None, chunk_rows: int = 200_000) -> ExportProfile:
    """Volumes by event and day and identity coverage, aggregated chunk by chunk."""
    from ..exports import iter_export

    parts: list[pd.DataFrame] = []
    ident = {"user id and anonymous id": 0, "user id only": 0, "anonymous id only": 0, "no id": 0}
    rows_in = 0
    for chunk in iter_export(path, fmt=fmt, chunk_rows=chunk_rows):
        rows_in += chunk.rows_in
        ev = chunk.events
        if ev.empty:
            continue
        name = ev["event"].where(ev["type"] == "track", "(" + ev["type"].fillna("?") + ")")
        day = pd.to_datetime(ev["timestamp"].astype("float64"), unit="ms", utc=True).dt.strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"day": day, "event": name.fillna("(none)")}).value_counts().rename("rows")
                     .reset_index())
        has_u, has_a = ev["user_id"].notna(), ev["anonymous_id"].notna()
        ident["user id and anonymous id"] += int((has_u & has_a).sum())
        ident["user id only"] += int((has_u & ~has_a).sum())
        ident["anonymous id only"] += int((~has_u & has_a).sum())
        ident["no id"] += int((~has_u & ~has_a).sum())
    by = (pd.concat(parts).groupby(["day", "event"], as_index=False)["rows"].sum()
          if parts else pd.DataFrame(columns=["day", "event", "rows"]))
    total = sum(ident.values()) or 1
    identity = pd.DataFrame({"rows": ident}).assign(share=lambda d: (d["rows"] / total).round(3))
    return ExportProfile(by_event_day=by, identity=identity, rows_in=rows_in)


def quarantine_by_reason(quarantine: pd.DataFrame) -> pd.DataFrame:
    if quarantine.empty:
        return pd.DataFrame({"rows": []})
    return quarantine["reason"].value_counts().rename("rows").to_frame()


def plot_volumes(profile: ExportProfile, top: int = 12) -> Any:
    import matplotlib.pyplot as plt

    pivot = profile.by_event_day.pivot_table(index="day", columns="event", values="rows", aggfunc="sum", fill_value=0)
    keep = pivot.sum().sort_values(ascending=False).index[:top]
    fig, ax = plt.subplots(figsize=(10, 4))
    pivot[keep].plot(kind="bar", stacked=True, ax=ax, width=0.8)
    ax.set_title("Export rows by day and event")
    ax.set_xlabel("")
    ax.set_ylabel("rows")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.tight_layout()
    return fig


def plot_requests(requests: pd.DataFrame) -> Any:
    """Status codes and latency of the replay's requests (from the ledger)."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if requests.empty:
        a1.text(0.5, 0.5, "no requests (dry run)", ha="center")
        return fig
    status = requests["status"].astype("string").fillna("error")
    status.value_counts().sort_index().plot(kind="bar", ax=a1, color="#4c72b0")
    a1.set_title("Responses by status")
    a1.set_xlabel("")
    requests["latency_ms"].astype("float64").plot(kind="hist", bins=30, ax=a2, color="#55a868")
    a2.set_title("Request latency (ms)")
    fig.tight_layout()
    return fig


def plot_reconciliation(table: pd.DataFrame) -> Any:
    """Sent vs expected vs counted total conversions per experiment x variation x key."""
    import matplotlib.pyplot as plt

    t = table[table["metric"] == "total_conversions"].copy() if "metric" in table else table.copy()
    if t.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "nothing to reconcile", ha="center")
        return fig
    t["label"] = (t["experiment_key"].fillna("-").astype(str) + " / " + t["variation_key"].fillna("-").astype(str)
                  + " / " + t["event_key"].fillna("-").astype(str))
    cols = [c for c in ("sent", "delivered", "expected", "counted") if c in t]
    t = t.set_index("label")[cols].astype("float64").sort_index()
    fig, ax = plt.subplots(figsize=(10, max(3, 0.35 * len(t))))
    t.plot(kind="barh", ax=ax, width=0.8)
    ax.set_title("Total conversions: sent, delivered, expected to count, counted by Optimizely")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
