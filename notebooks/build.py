"""Generate the notebooks of this folder (committed with no outputs), then execute them once and
record the outputs that nbval checks (cells holding ``# NBVAL_CHECK_OUTPUT``) beside the tests, in
tests/notebooks/expected_outputs/<name>.json, keyed by cell id; the test puts them back into a copy
of each notebook before running nbval.

    .venv/bin/python notebooks/build.py              # regenerate and refresh the checked outputs
    .venv/bin/python notebooks/build.py --no-execute # regenerate, no outputs at all

The logic lives in ``toolkit.pipeline`` (stages, views, walkthrough): cells only call it and show
the result. Cell ids are fixed so a regeneration gives a small diff.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT"
KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}

PARAMS = '''# Parameters (papermill injects a cell after this one). `toolkit run` passes the run folder and
# the settings file it wrote; with the defaults the notebook runs on the bundled sample against a
# local sandbox, with no account and no network. Secrets are never parameters: the settings name
# the environment variables that hold them.
run_dir = ""
settings_path = ""'''

SETUP = '''import pandas as pd
from IPython.display import display

from toolkit.pipeline import record_stage, stages, views

ctx = stages.open_run(settings_path, run_dir)
pd.Series(ctx.config.describe(), name="integration").to_frame()'''

MAP_COUNTS = CHECK + '''
pd.DataFrame({"rows": {"rows in": s.rows_in, "mapped": s.mapped, "skipped": s.skipped,
                       "quarantined": s.quarantined, "conversions": s.conversions,
                       "impressions": s.impressions}})'''

RECONCILE_STATUS = CHECK + '''
pd.DataFrame({"rows": summary["status"]}).T.assign(unexplained_conversions=summary["unexplained_conversions"])'''

DIAGNOSES = CHECK + '''
pd.DataFrame([{"diagnosis": d.code, "count": d.count, "unit": d.unit} for d in rec.diagnoses])'''

STAGES = {
"01_load_export": [
("md", """# 1. Load the export and map it to Optimizely events

Reads the Datafly export (JSON Lines, CSV or Parquet), maps each row by the blueprint to an Optimizely
event (key, tags, revenue in minor units, visitor id, stable uuid, decisions) and quarantines what
cannot be sent, with a reason. Every row ends up mapped, skipped by a rule, or quarantined."""),
("code", PARAMS, "parameters"),
("code", SETUP),
("code", '''mapped = stages.run_map(ctx, progress=False)
s = mapped.summary
print("\\n".join(s.lines()))
assert s.balanced, "rows_in != mapped + skipped + quarantined"'''),
("code", MAP_COUNTS),
("md", "## Volumes by event and day"),
("code", '''views.plot_volumes(mapped.profile);'''),
("code", '''mapped.profile.by_event_day.pivot_table(index="event", columns="day", values="rows", aggfunc="sum",
                                        fill_value=0, margins=True, margins_name="total")'''),
("md", """## Identity coverage

Which rows carry a user id, an anonymous id, both or neither. People seen with several anonymous
ids are what inflates Optimizely's visitor counts when ids are not stitched."""),
("code", '''display(mapped.profile.identity)
print(f"people with more than one anonymous id: {s.multi_anonymous} (identity policy: {s.identity})")'''),
("md", "## Quarantine by reason"),
("code", CHECK + '''
views.quarantine_by_reason(mapped.quarantine)'''),
("code", '''mapped.quarantine.groupby("reason").head(2)[["reason", "source_row", "source_event_id", "detail"]]'''),
("code", '''record_stage(ctx.run_dir, "01_load_export", exit_code=0 if s.balanced else 2,
             headline=f"{s.rows_in} rows: {s.mapped} mapped, {s.skipped} skipped, {s.quarantined} quarantined",
             rows_in=s.rows_in, mapped=s.mapped, skipped=s.skipped, quarantined=s.quarantined,
             by_reason=s.by_reason, conversions=s.conversions, impressions=s.impressions,
             multi_anonymous=s.multi_anonymous);'''),
],
"02_validate_rules": [
("md", """# 2. Check the rules before anything is sent

Runs the Great Expectations suites under `data/expectations/` (keys, revenue, identity and time)
over the mapped events and the quarantine. `error` expectations fail the stage; `warning`s are
reported only. The full result and the Data Docs HTML are in the run folder."""),
("code", PARAMS, "parameters"),
("code", SETUP),
("code", '''report = stages.run_validate(ctx)
print("\\n".join(report.lines()))'''),
("code", '''report.summary_frame()'''),
("md", "## Failing rows (a few per expectation)"),
("code", '''report.failing_rows'''),
("code", '''failed_errors = report.count("failed", "error")
failed_warnings = report.count("failed", "warning")
record_stage(ctx.run_dir, "02_validate_rules", exit_code=report.exit_code,
             headline=f"{failed_errors} error(s), {failed_warnings} warning(s)",
             failed_errors=failed_errors, failed_warnings=failed_warnings);'''),
("code", CHECK + '''
{"success": report.success, "failed errors": failed_errors, "failed warnings": failed_warnings}'''),
],
"03_replay": [
("md", """# 3. Replay to the Event API

Builds Event API bodies (grouped by visitor, at most 3.5 MB) and sends them with retries to the
target: the local sandbox by default, Optimizely by config, or nothing in a dry run. Every event is
recorded in the SQLite ledger of the run, so a killed run can be resumed with `toolkit replay --resume`."""),
("code", PARAMS, "parameters"),
("code", SETUP),
("code", '''replayed = stages.run_replay(ctx)
print(f"target: {replayed.endpoint}")
print(replayed.report.summary_line())'''),
("md", "## Ledger: events by status, requests by status and latency"),
("code", CHECK + '''
ledger = replayed.ledger
ledger.events.groupby(["kind", "status"]).size().rename("events").to_frame()'''),
("code", '''views.plot_requests(ledger.requests);'''),
("code", '''rep = replayed.report
record_stage(ctx.run_dir, "03_replay", exit_code=rep.exit_code,
             headline=rep.summary_line(), delivered=rep.delivered, rejected=rep.rejected,
             failed=rep.failed, pending=rep.pending, requests=rep.requests, dry_run=rep.dry_run,
             ledger=str(ctx.ledger_path));'''),
],
"04_reconcile": [
("md", """# 4. Reconcile with what Optimizely counted

Compares, per experiment x variation x event key: what was sent and delivered (the ledger), what
should count by Optimizely's attribution rules (the predictor), and what Optimizely counted (its
results). Every gap gets a diagnosis with a count and a fix; what none explains is reported as
unexplained. Results can take up to 10 minutes to update after events are received."""),
("code", PARAMS, "parameters"),
("code", SETUP),
("code", '''rec = stages.run_reconcile(ctx)
summary = rec.summary()'''),
("code", RECONCILE_STATUS),
("code", '''views.plot_reconciliation(rec.table);'''),
("md", "## Worst gaps first"),
("code", '''rec.table.head(25)'''),
("md", "## Diagnoses"),
("code", DIAGNOSES),
("code", '''pd.DataFrame([{"diagnosis": d.code, "count": d.count, "title": d.title, "fix": d.fix} for d in rec.diagnoses])'''),
("code", '''record_stage(ctx.run_dir, "04_reconcile", exit_code=0 if rec.ok else 1,
             headline=f"{summary['status']['ok']} ok, {summary['status']['explained']} explained, "
                      f"{summary['status']['gap']} gap; unexplained conversions {rec.unexplained}",
             rows_by_status=summary["status"], unexplained=rec.unexplained, diagnoses=summary["diagnoses"]);'''),
],
}

WALKTHROUGH = [
("md", """# 0. Onboarding walkthrough: how events reach Optimizely, and where they get lost

This notebook needs no Optimizely account and no network. It starts a **sandbox**: a local stand-in
for Optimizely (Event API, datafile CDN, Results API) on 127.0.0.1, loaded with the bundled sample's
datafile (experiments `checkout_redesign`, `free_shipping_rule`, `signup_form_copy`; events
`purchase`, `add_to_cart`, ...). Each section sends a few hand-made events to it and shows what the
Event API answered, what it stored and what its results count. Then it runs the four pipeline steps
on the bundled sample and reads the report.

The code lives in `toolkit.pipeline.walkthrough`; every table below is produced live."""),
("code", '''# Parameters: the folder this walkthrough writes to (default: reports/notebooks/walkthrough).
run_dir = ""''', "parameters"),
("code", '''import pandas as pd
from IPython.display import display

from toolkit.identity import stable_uuid
from toolkit.pipeline import stages, views
from toolkit.pipeline import walkthrough as wt

w = wt.start(run_dir)
print(f"sandbox running at {w.sandbox.url}, datafile revision {w.datafile.revision}")'''),
("md", """## 1. Event keys are case-sensitive, and an unknown key is dropped silently

Optimizely matches a conversion by its **event key**, exactly. `Purchase` is not `purchase`. The
Event API still answers **204** for an event it cannot use and drops it without a word; only a request
with the header `X-Optimizely-Strict: true` gets a failure status (400) instead. The sandbox's
`/admin/stats` shows what a real 204 hides: the silent drop."""),
("code", CHECK + '''
wt.keys_demo(w)'''),
("md", """The toolkit never sends such a key: its mapper quarantines it (`key_not_in_datafile`) and names
the datafile key it probably meant, so the fix goes into the blueprint."""),
("code", CHECK + '''
w.datafile.suggest_key("Purchase")'''),
("md", """## 2. Revenue is an integer in the currency's minor units

The Event API takes `revenue` as an integer number of the lowest currency unit: 19.99 GBP is `1999`
pence. The exponent depends on the currency (ISO 4217): JPY has none, KWD has three. `toolkit.money`
converts decimal-exact; a peer integration that computes `Math.floor(x * 100)` in floating point
loses a penny on 19.99 and is wrong for every currency without two decimals."""),
("code", CHECK + '''
wt.money_table()'''),
("md", """Live: three buyers of the same 19.99 GBP order, all bucketed in `checkout_redesign` / `control`.
The toolkit sends 1999; one peer sends the truncated 1998; another sends the decimal 19.99, which the
Event API drops silently (204 all the same). The results count two conversions and 3997, not 5997."""),
("code", CHECK + '''
sent, counted = wt.revenue_demo(w)
display(sent)
counted'''),
("md", """## 3. Decisions before conversions

A conversion counts for an experiment only if the same visitor has a **decision** (an impression,
`campaign_activated`) for it with an **earlier** timestamp. Three visitors convert: one was never
bucketed, one was bucketed a minute *after* converting, one a minute *before*. Only the last counts.
The toolkit's own predictor (`toolkit.attribution.predict`) says why the other two will not."""),
("code", CHECK + '''
sent, counted, why = wt.decisions_demo(w)
display(sent, counted)
why'''),
("md", """## 4. Stable uuids make a resend harmless

Optimizely stores events with the same `entity_id`, `uuid` and `timestamp` once. The toolkit derives
each event's uuid from the export's own id, so the same source event always gets the same uuid:"""),
("code", CHECK + '''
stable_uuid("order-1001"), stable_uuid("order-1001") == stable_uuid("order-1001")'''),
("md", """So a retry or a replay of the whole export cannot double count. A sender that makes a fresh uuid
for every attempt double counts each retried conversion:"""),
("code", CHECK + '''
wt.dedup_demo(w)'''),
("md", """## 5. What a 204 does not promise

`204 No Content` means *queued*. It does not mean the event was valid, that it was stored, that it
will be counted, or that the results show it yet (they can take up to 10 minutes). All three requests
below got 204; none is counted in the results right now. (The last one uses a second sandbox that
delays its results by 10 minutes, like Optimizely's processing.)"""),
("code", CHECK + '''
wt.no_promise_demo(w)'''),
("md", """## 6. The four steps on the bundled sample

The sample export (2,001 rows) holds known defects: miscased keys, decimal and string revenue,
unknown currencies, visitors with no decision, conversions before their decision, people with several
anonymous ids. The pipeline maps it, checks the rules, replays it to the sandbox and reconciles what
was sent with what the sandbox counted. Its files go to a run folder of its own."""),
("code", '''ctx = wt.pipeline_context(w)
pd.Series(ctx.config.describe(), name="integration").to_frame()'''),
("md", "**Step 1: load and map.** Every row is mapped, skipped by a rule (page, identify) or quarantined with a reason."),
("code", '''mapped = stages.run_map(ctx, progress=False)
s = mapped.summary'''),
("code", MAP_COUNTS),
("code", CHECK + '''
views.quarantine_by_reason(mapped.quarantine)'''),
("md", "**Step 2: check the rules** (Great Expectations suites) before anything is sent."),
("code", '''report = stages.run_validate(ctx)
report.summary_frame()'''),
("code", CHECK + '''
{"success": report.success, "failed errors": report.count("failed", "error"),
 "failed warnings": report.count("failed", "warning")}'''),
("md", "**Step 3: replay** to the sandbox, with a ledger of every event and request."),
("code", '''replayed = stages.run_replay(ctx, progress=False)
print(replayed.report.summary_line())'''),
("code", CHECK + '''
replayed.ledger.events.groupby(["kind", "status"]).size().rename("events").to_frame()'''),
("md", "**Step 4: reconcile** what was delivered with what the sandbox's Results API counted."),
("code", '''rec = stages.run_reconcile(ctx)
summary = rec.summary()'''),
("code", RECONCILE_STATUS),
("md", """## 7. Read the report

Each row of the reconciliation table is one experiment x variation x event key x metric: `sent`,
`delivered`, `expected` (what Optimizely's rules should count) and `counted` (its results). A row is
`ok` when counted matches delivered, `explained` when the gap is fully covered by diagnoses, `gap`
otherwise. The diagnoses carry a count and a fix: here they are exactly the sample's defects, which is
what you look for in your own data."""),
("code", '''views.plot_reconciliation(rec.table);'''),
("code", '''rec.table.head(15)'''),
("code", DIAGNOSES),
("code", '''pd.DataFrame([{"diagnosis": d.code, "count": d.count, "title": d.title, "fix": d.fix} for d in rec.diagnoses])'''),
("md", """`toolkit run --config RUN.toml` runs the same four steps as notebooks `01`-`04` with papermill and
writes an HTML report; `toolkit demo` does it on this sample against a sandbox. Last, stop the sandbox:"""),
("code", '''w.close()
w.sandbox.running'''),
]


def build(name: str, cells: list) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook(metadata=KERNEL)
    out = []
    for i, (kind, src, *tags) in enumerate(cells):
        c = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        c.id = f"{name[:2]}-{i:02d}"
        if tags:
            c.metadata["tags"] = tags
        out.append(c)
    nb.cells = out
    return nb


EXPECTED = HERE.parent / "tests" / "notebooks" / "expected_outputs"


def checked_outputs(nb: nbf.NotebookNode) -> dict:
    """The outputs nbval compares, by cell id (with their execution counts: nbval treats a cell with
    outputs and no count as unrun)."""
    return {c.id: {"execution_count": c.execution_count, "outputs": c.outputs}
            for c in nb.cells if c.cell_type == "code" and CHECK in c.source}


def stripped(nb: nbf.NotebookNode) -> nbf.NotebookNode:
    """What is committed: no outputs, no counts, no timing or widget metadata."""
    for c in nb.cells:
        c.metadata.pop("execution", None)
        if c.cell_type == "code":
            c.outputs = []
            c.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def with_outputs(nb: nbf.NotebookNode, expected: dict) -> nbf.NotebookNode:
    """A copy of ``nb`` carrying the recorded outputs of its checked cells (for nbval)."""
    nb = nbf.from_dict(nb)
    for c in nb.cells:
        if c.cell_type == "code" and c.id in expected:
            c.outputs = nbf.from_dict(expected[c.id]["outputs"])
            c.execution_count = expected[c.id]["execution_count"]
    return nb


def execute(nb: nbf.NotebookNode, run_dir: Path) -> nbf.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(run_dir)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-execute", action="store_true",
                    help="regenerate the notebooks only, keeping the recorded checked outputs as they are")
    args = ap.parse_args(argv)
    notebooks = {"00_onboarding_walkthrough": WALKTHROUGH, **STAGES}
    with tempfile.TemporaryDirectory(prefix="nbbuild-") as tmp:
        os.environ["TOOLKIT_NOTEBOOK_RUN_DIR"] = tmp  # kernels inherit it: nothing lands in reports/
        for name, cells in notebooks.items():  # in order: 02-04 read what 01 wrote
            nb = build(name, cells)
            if not args.no_execute:
                execute(nb, Path(tmp))
                EXPECTED.mkdir(parents=True, exist_ok=True)
                (EXPECTED / f"{name}.json").write_text(json.dumps(checked_outputs(nb), indent=1, sort_keys=True) + "\n")
            nbf.write(stripped(nb), HERE / f"{name}.ipynb")
            print(f"written {name}.ipynb", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
