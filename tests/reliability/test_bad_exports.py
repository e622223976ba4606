"""Bad input, property-based: exports with wrong types, nulls, huge and unicode strings, broken JSON
lines, CSV with odd quoting, truncated gzip and mixed formats. ``map_export`` never crashes (a file
unreadable as a whole is one ExportError), every row is mapped, skipped or quarantined with a
known reason, and the counts add up, also in the files it writes."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.helpers import FIXTURE_DATAFILE, REPO
from toolkit.blueprint import load_blueprint
from toolkit.contracts import Reason
from toolkit.datafile import load_datafile
from toolkit.errors import ExportError
from toolkit.mapping import DECISIONS, map_export

DATAFILE = load_datafile(str(FIXTURE_DATAFILE))
BLUEPRINT = load_blueprint()
REASONS = {r.value for r in Reason}


def fuzz(case, examples: int, soak_examples: int, **strategies):
    """``case`` as a property test at ``examples`` (seeded: make test is repeatable) plus a twin for
    ``make soak`` at ``soak_examples`` (random)."""
    def make(n: int, seeded: bool):
        return settings(max_examples=n, deadline=None, derandomize=seeded, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(
            given(**strategies)(case))
    return make(examples, True), pytest.mark.timeout(1800)(pytest.mark.soak(make(soak_examples, False)))

SAMPLE_LINES = (REPO / "data" / "sample" / "export.jsonl").read_bytes().splitlines()[:80]

# ---------------------------------------------------------------------------- strategies
no_newline = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))
text = st.text(no_newline, max_size=30)
huge = st.integers(10_000, 300_000).flatmap(lambda n: st.sampled_from(["é" * n, "x" * n, "🙂" * (n // 4)]))
scalars = st.one_of(st.none(), text, huge, st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                        max_leaves=6)
times = st.one_of(st.sampled_from(["2026-11-02T00:08:41.504Z", "2026-11-02 00:08:41", "2026-11-02", "not a time", "",
                                   "9999-99-99T00:00:00Z", "2026-11-02T00:08:41+05:30"]),
                  st.datetimes().map(lambda d: d.isoformat()), scalars)
money = st.one_of(scalars, st.sampled_from(["12.50", "1,234.56", "€5", "1e400", "-0", "NaN", "0.001", "99999999999999999999"]))
props = st.one_of(anything, st.fixed_dictionaries({}, optional={
    "revenue": money, "total": money, "value": money, "quantity": money,
    "currency": st.one_of(st.sampled_from(["USD", "EUR", "JPY", "KWD", "XXX", "usd", ""]), scalars),
    "experiment_id": st.one_of(st.sampled_from(["50001", "51001", "59999"]), scalars),
    "variation_id": st.one_of(st.sampled_from(["70001", "71002", "79999"]), scalars),
    "experiment_key": st.one_of(st.sampled_from(["checkout_flow", "pricing_page", "nope"]), scalars),
    "variation_key": st.one_of(st.sampled_from(["control", "treatment", "off"]), scalars),
    "nested": anything,
}))
event_obj = st.fixed_dictionaries({}, optional={
    "messageId": st.one_of(st.uuids().map(str), scalars),
    "type": st.one_of(st.sampled_from(["track", "page", "identify", "screen", "TRACK"]), scalars),
    "event": st.one_of(st.sampled_from(["purchase", "Purchase", "add_to_cart", "Order Completed", "Checkout Started",
                                        "Experiment Viewed", "signup", "Form Submitted"]), scalars),
    "userId": scalars, "anonymousId": st.one_of(st.uuids().map(str), scalars),
    "timestamp": times, "properties": props, "context": anything,
})


def _dump(obj: dict, ascii_only: bool) -> str:
    return json.dumps(obj, ensure_ascii=ascii_only)


json_line = st.builds(_dump, event_obj, st.booleans())
broken_line = st.one_of(
    st.tuples(json_line, st.integers(1, 200)).map(lambda t: t[0][: max(1, len(t[0]) - t[1])]),  # cut short
    text.filter(lambda s: s.strip()),
    st.sampled_from(["[1, 2]", "42", '"a string"', "null", "{", "}", '{"type": "track",}', "\x00\x01",
                     '{"type": NaN}', "{'single': 'quotes'}"]),
)
lines = st.lists(st.one_of(json_line, json_line, broken_line), min_size=1, max_size=25)


# ---------------------------------------------------------------------------- checks
def _map(path: Path, decisions: str, fmt: str | None = None, chunk_rows: int = 7):
    out_dir = path.parent  # small chunks, so chunk boundaries fall inside the fuzzed files
    return map_export(path, DATAFILE, blueprint=BLUEPRINT, decisions=decisions, fmt=fmt, progress=False,
                      chunk_rows=chunk_rows, events_out=out_dir / "events.jsonl", quarantine_out=out_dir / "q.jsonl")


def _check(out, rows: int | None = None) -> None:
    s = out.summary
    assert s.balanced, s
    if rows is not None:
        assert s.rows_in == rows
    q = out.quarantine
    assert len(q) == s.quarantined
    assert q["reason"].notna().all() and set(q["reason"]) <= REASONS
    assert sum(s.by_reason.values()) == s.quarantined and sum(s.by_skip.values()) == s.skipped
    assert len(out.events) == s.mapped + s.synthesized
    assert out.events["uuid"].notna().all() and out.events["visitor_id"].notna().all()
    # the files say the same as the summary (unicode and huge strings included)
    written = Path(s.events_out).read_bytes().splitlines()
    assert len(written) == s.mapped + s.synthesized
    assert all(isinstance(orjson.loads(x), dict) for x in written)
    assert len(Path(s.quarantine_out).read_bytes().splitlines()) == s.quarantined


def _jsonl_case(rows, decisions, gz):
    data = ("\n".join(rows) + "\n").encode("utf-8")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("export.jsonl.gz" if gz else "export.jsonl")
        path.write_bytes(gzip.compress(data) if gz else data)
        out = _map(path, decisions)
        _check(out, rows=len(rows))


test_fuzzed_jsonl_exports_are_mapped_skipped_or_quarantined, test_fuzzed_jsonl_soak = fuzz(
    _jsonl_case, 25, 600, rows=lines, decisions=st.sampled_from(DECISIONS), gz=st.booleans())


cell = st.one_of(text, st.sampled_from(['"', '""', 'a"b', ",", "\n", "a\nb", '{"revenue": "1,5"}', "\\", "'"]), huge)
HEADER = ["event_id", "type", "event", "anonymous_id", "user_id", "timestamp", "received_at", "sent_at", "context",
          "properties", "traits", "source_id"]


@st.composite
def csv_rows(draw):
    n = draw(st.integers(1, 15))
    rows = []
    for _ in range(n):
        row = [draw(st.one_of(st.uuids().map(str), cell)), draw(st.sampled_from(["track", "page", "", "x"])),
               draw(st.sampled_from(["purchase", "add_to_cart", "Experiment Viewed", "", "nope"]) | cell),
               draw(st.uuids().map(str) | cell), draw(cell), draw(times.map(lambda v: "" if v is None else str(v))),
               "", "", draw(cell), draw(props.map(lambda p: json.dumps(p)) | cell), "", "web"]
        extra = draw(st.integers(-3, 2))  # ragged rows: missing or extra fields
        rows.append(row[:extra] if extra < 0 else row + ["extra"] * extra)
    return rows


def _csv_case(rows, quoting, decisions):
    if quoting == "raw":  # no quoting at all: embedded commas, quotes and newlines break the rows
        data = "\n".join(",".join(r) for r in [HEADER, *rows]) + "\n"
    else:
        buf = io.StringIO()
        w = csv.writer(buf, quoting=quoting, lineterminator="\n")
        w.writerows([HEADER, *rows])
        data = buf.getvalue()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "export.csv"
        path.write_text(data, encoding="utf-8")
        try:
            out = _map(path, decisions)
        except ExportError as exc:  # unreadable as a whole: one clear message, not a crash
            assert str(exc) and "\n" not in str(exc)
            return
        # well-quoted rows of the right width are each one row; ragged or raw ones still add up
        regular = quoting != "raw" and all(len(r) == len(HEADER) for r in rows)
        _check(out, rows=len(rows) if regular else None)


test_fuzzed_csv_exports_with_odd_quoting_never_crash, test_fuzzed_csv_soak = fuzz(
    _csv_case, 15, 400, rows=csv_rows(), quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, "raw"]),
    decisions=st.sampled_from(DECISIONS))


def _gzip_case(cut, decisions):
    whole = gzip.compress(b"\n".join(SAMPLE_LINES) + b"\n")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "export.jsonl.gz"
        path.write_bytes(whole[: 10 + int((len(whole) - 11) * cut)])  # the 10-byte gzip header, then a cut
        try:
            out = _map(path, decisions, chunk_rows=25)
        except ExportError as exc:  # cut inside the gzip header: nothing usable, one clear message
            assert "gzip" in str(exc) and "\n" not in str(exc)
            return
        _check(out)
        assert out.summary.by_reason.get("truncated_file") == 1
        assert out.summary.rows_in <= len(SAMPLE_LINES) + 1


test_truncated_gzip_keeps_what_was_read_and_says_so, test_truncated_gzip_soak = fuzz(
    _gzip_case, 12, 300, cut=st.floats(0.0, 0.999), decisions=st.sampled_from(DECISIONS))


def _parquet_bytes() -> bytes:
    return (REPO / "data" / "sample" / "export.parquet").read_bytes()


def _csv_text() -> bytes:
    return (REPO / "data" / "sample" / "export.csv").read_bytes()


MIXED = {
    "jsonl then csv lines": (lambda: b"\n".join(SAMPLE_LINES[:20]) + b"\n" + _csv_text()[:3000], "export.jsonl"),
    "csv then jsonl lines": (lambda: _csv_text()[:3000] + b"\n".join(SAMPLE_LINES[:20]), "export.csv"),
    "parquet named jsonl": (_parquet_bytes, "export.jsonl"),
    "jsonl named parquet": (lambda: b"\n".join(SAMPLE_LINES), "export.parquet"),
    "parquet cut short": (lambda: _parquet_bytes()[:5000], "export.parquet"),
    "gzip of parquet named csv.gz": (lambda: gzip.compress(_parquet_bytes()), "export.csv.gz"),
    "gzip inside gzip": (lambda: gzip.compress(gzip.compress(b"\n".join(SAMPLE_LINES))), "export.jsonl.gz"),
    "empty file": (lambda: b"", "export.jsonl"),
    "binary noise": (lambda: bytes(range(256)) * 40, "export.jsonl"),
}


@pytest.mark.parametrize("name", list(MIXED))
@pytest.mark.parametrize("fmt", [None, "jsonl", "csv"])
def test_mixed_formats_never_crash(tmp_path, name, fmt):
    make, filename = MIXED[name]
    path = tmp_path / filename
    path.write_bytes(make())
    try:
        out = _map(path, "export", fmt=fmt, chunk_rows=1000)
    except ExportError as exc:
        assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)
        return
    _check(out)
