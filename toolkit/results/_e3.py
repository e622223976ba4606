"""Enriched Events Export (E3): Parquet folders of decisions and conversion events, per-event truth.

Layout (facts section 7), under a local root folder::

    type=decisions/date=YYYY-MM-DD/experiment=<id>/*.parquet
    type=events/date=YYYY-MM-DD/event=<name>/*.parquet

(``decisions/`` and ``events/`` are accepted too.) Timestamps become epoch milliseconds. The
events' ``experiments`` list (the experiments Optimizely attributed each conversion to) is
flattened into ``attributions`` (one row per conversion x experiment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..contracts import conform, empty
from ..errors import ResultsError
from ._schema import conform_results, empty_results

__all__ = ["E3Frames", "E3_DECISIONS", "E3_EVENTS", "E3_ATTRIBUTIONS", "load_e3", "e3_to_results", "is_e3_root"]

log = logging.getLogger(__name__)

E3_DECISIONS: dict[str, str] = {
    "uuid": "string", "timestamp": "Int64", "process_timestamp": "Int64", "visitor_id": "string",
    "account_id": "string", "campaign_id": "string", "experiment_id": "string", "variation_id": "string",
    "is_holdback": "boolean", "revision": "string",
}
E3_EVENTS: dict[str, str] = {
    "uuid": "string", "timestamp": "Int64", "process_timestamp": "Int64", "visitor_id": "string",
    "account_id": "string", "entity_id": "string", "event_type": "string", "event_name": "string",
    "revenue": "Int64", "value": "Float64", "quantity": "Int64", "revision": "string",
}
E3_ATTRIBUTIONS: dict[str, str] = {
    "uuid": "string", "campaign_id": "string", "experiment_id": "string", "variation_id": "string",
    "is_holdback": "boolean",
}


@dataclass(frozen=True)
class E3Frames:
    decisions: pd.DataFrame
    events: pd.DataFrame
    attributions: pd.DataFrame = field(default_factory=lambda: empty(E3_ATTRIBUTIONS))

    def __repr__(self) -> str:
        return (f"E3Frames({len(self.decisions)} decisions, {len(self.events)} events, "
                f"{len(self.attributions)} attributions)")


def _part_dir(root: Path, kind: str) -> Path | None:
    for name in (f"type={kind}", kind):
        if (root / name).is_dir():
            return root / name
    return None


def is_e3_root(path: Path) -> bool:
    return path.is_dir() and (_part_dir(path, "decisions") is not None or _part_dir(path, "events") is not None)


def _read_folder(folder: Path | None, where: str):
    """All Parquet files below a folder as one Arrow table (file columns only), or None."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if folder is None:
        return None
    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not files:
        return None
    try:
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        table = dataset.to_table()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(f"E3 {where}: unreadable Parquet ({str(exc).splitlines()[0][:160]}); "
                           "download the export again") from None
    return table


def _ms(col) -> pd.Series:
    """Arrow timestamp (any unit), integer ms or ISO text -> Int64 epoch ms."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type):
        col = pc.cast(pc.cast(col, pa.timestamp("ms", tz=col.type.tz)), pa.int64())
    if pa.types.is_integer(col.type):
        return pd.Series(col.to_pandas(), dtype="Int64")
    parsed = pd.to_datetime(pd.Series(col.to_pandas()), utc=True, errors="coerce", format="mixed")
    ms = parsed.astype("datetime64[ms, UTC]").astype("int64")
    return pd.Series(ms, dtype="Int64").mask(parsed.isna())


def _frame(table, schema: dict[str, str], where: str, required: tuple[str, ...]) -> pd.DataFrame:
    if table is None:
        return empty(schema)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ResultsError(f"E3 {where}: missing column(s) {', '.join(missing)}; is this an Enriched Events Export?")
    cols: dict[str, pd.Series] = {}
    for name in schema:
        if name not in table.column_names:
            continue
        col = table.column(name)
        if name.endswith("timestamp"):
            cols[name] = _ms(col)
        else:
            cols[name] = col.to_pandas()
    return conform(pd.DataFrame(cols), schema)


def _attributions(table) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc

    if table is None or "experiments" not in table.column_names:
        return empty(E3_ATTRIBUTIONS)
    col = table.column("experiments").combine_chunks()
    if not pa.types.is_list(col.type) or not pa.types.is_struct(col.type.value_type):
        return empty(E3_ATTRIBUTIONS)
    parents = pc.list_parent_indices(col)
    flat = pc.list_flatten(col)
    uuids = pc.take(table.column("uuid"), parents)
    out = {"uuid": uuids.to_pandas()}
    for f in flat.type:
        out[f.name] = flat.field(f.name).to_pandas()
    return conform(pd.DataFrame(out), E3_ATTRIBUTIONS)


def load_e3(path: str | Path) -> E3Frames:
    """Read an E3 export folder (local path). A folder without decisions/events -> ResultsError."""
    root = Path(path)
    if not root.is_dir():
        raise ResultsError(f"E3 {root}: not a folder; pass the export root holding type=decisions/ and type=events/")
    dec_dir, ev_dir = _part_dir(root, "decisions"), _part_dir(root, "events")
    if dec_dir is None and ev_dir is None:
        raise ResultsError(f"E3 {root}: no type=decisions/ or type=events/ folder inside; pass the export root")
    dec_t = _read_folder(dec_dir, f"{root} decisions")
    ev_t = _read_folder(ev_dir, f"{root} events")
    decisions = _frame(dec_t, E3_DECISIONS, f"{root} decisions",
                       ("uuid", "timestamp", "visitor_id", "experiment_id", "variation_id"))
    events = _frame(ev_t, E3_EVENTS, f"{root} events", ("uuid", "timestamp", "visitor_id", "event_name"))
    return E3Frames(decisions, events, _attributions(ev_t))


def _first_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Each visitor's first (earliest) non-holdback decision per experiment."""
    d = decisions[~decisions["is_holdback"].fillna(False).astype(bool)]
    d = d.sort_values(["timestamp", "uuid"], kind="stable")
    return d.drop_duplicates(["visitor_id", "experiment_id"], keep="first")


def e3_to_results(e3: E3Frames, datafile=None) -> pd.DataFrame:
    """Aggregate E3 into the RESULTS frame: visitors from first decisions, conversions attributed by
    the events' ``experiments`` list, or (when the export lacks it) to a decision made before the event.

    E3 attributes every event of a bucketed visitor to their experiments; the Results API shows only
    the experiment's metrics. With a ``datafile``, only events attached to the experiment (its
    ``experimentIds``) are kept, as the results page would."""
    first = _first_decisions(e3.decisions)
    if first.empty:
        return empty_results()
    reach = first.groupby(["experiment_id", "variation_id"]).size().rename("visitors").reset_index()
    ev = e3.events
    if len(e3.attributions):
        att = e3.attributions[~e3.attributions["is_holdback"].fillna(False).astype(bool)]
        conv = ev.merge(att[["uuid", "experiment_id", "variation_id"]], on="uuid")
    else:
        conv = ev.merge(first[["visitor_id", "experiment_id", "variation_id", "timestamp"]],
                        on="visitor_id", suffixes=("", "_decision"))
        conv = conv[conv["timestamp_decision"] < conv["timestamp"]]
    if datafile is not None:
        attached = pd.DataFrame([(x, k) for k, e in datafile.events.items() for x in e.experiment_ids],
                                columns=["experiment_id", "event_name"]).astype("string")
        conv = conv.merge(attached, on=["experiment_id", "event_name"], how="inner")
    metrics = (
        conv.groupby(["experiment_id", "variation_id", "event_name"], dropna=False)
        .agg(event_id=("entity_id", "first"), unique_conversions=("visitor_id", "nunique"),
             total_conversions=("uuid", "size"), revenue=("revenue", "sum"))
        .reset_index().rename(columns={"event_name": "event_key"})
    )
    out = reach.merge(metrics, on=["experiment_id", "variation_id"], how="left")
    return conform_results(out)
