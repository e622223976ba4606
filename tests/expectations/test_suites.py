"""A broken suite file fails loudly, with one line naming the file and the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolkit.errors import SuiteError
from toolkit.expectations import default_suites_dir, load_suite, load_suites

GOOD = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "visitor_id"},
        "meta": {"severity": "error", "description": "a visitor id on every row"}}


def _write(tmp_path: Path, expectations, name="custom") -> Path:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return p


def test_shipped_suites_load_with_every_expectation():
    suites = load_suites()
    assert [s.name for s in suites] == ["identity_time", "keys", "revenue"]
    for s in suites:
        raw = json.loads(Path(s.path).read_text(encoding="utf-8"))
        assert len(s.expectations) == len(raw["expectations"])
        assert all(e.severity in ("error", "warning") and e.description for e in s.expectations)


def _one_line_error(path: Path, *needles: str) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for n in needles:
        assert n in msg
    return msg


def test_bad_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"name": "bad", "expectations": [', encoding="utf-8")
    _one_line_error(p, "not JSON", "line 1")


def test_unknown_expectation_type_is_an_error_not_a_smaller_suite(tmp_path):
    p = _write(tmp_path, [GOOD, dict(GOOD, type="expect_column_values_to_be_purple")])
    _one_line_error(p, "expectation 2", "expect_column_values_to_be_purple")


@pytest.mark.parametrize("meta, needle", [
    ({"description": "x"}, "no severity"),
    ({"severity": "fatal", "description": "x"}, "severity 'fatal'"),
    ({"severity": "error"}, "no description"),
    ({"severity": "error", "description": "x", "when": "sometimes"}, "unknown meta.when"),
])
def test_bad_meta(tmp_path, meta, needle):
    _one_line_error(_write(tmp_path, [dict(GOOD, meta=meta)]), needle)


def test_missing_meta(tmp_path):
    exp = {k: v for k, v in GOOD.items() if k != "meta"}
    _one_line_error(_write(tmp_path, [exp]), "no \"meta\"")


def test_unknown_column_and_parameter(tmp_path):
    _one_line_error(_write(tmp_path, [dict(GOOD, kwargs={"column": "visitorId"})]), "'visitorId'", "visitor_id")
    bad_param = dict(GOOD, type="expect_column_values_to_be_between",
                     kwargs={"column": "timestamp", "min_value": {"$PARAMETER": "yesterday"}})
    _one_line_error(_write(tmp_path, [bad_param]), "'yesterday'", "now_ms")


def test_bad_kwargs_named(tmp_path):
    exp = dict(GOOD, type="expect_column_values_to_be_between", kwargs={"column": "timestamp"})
    _one_line_error(_write(tmp_path, [exp]), "min_value and max_value cannot both be None")


def test_folder_problems(tmp_path):
    with pytest.raises(SuiteError, match="not a folder"):
        load_suites(tmp_path / "missing")
    with pytest.raises(SuiteError, match="no \\*.json"):
        load_suites(tmp_path)
    _write(tmp_path, [GOOD], name="a")
    (tmp_path / "b.json").write_text(json.dumps({"name": "a", "expectations": [GOOD]}), encoding="utf-8")
    with pytest.raises(SuiteError, match="also used by"):
        load_suites(tmp_path)


def test_a_copied_folder_with_one_edit_loads(tmp_path):
    d = tmp_path / "suites"
    shutil.copytree(default_suites_dir(), d)
    keys = json.loads((d / "keys.json").read_text(encoding="utf-8"))
    keys["expectations"][0]["meta"]["severity"] = "warning"
    (d / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
    by_name = {s.name: s for s in load_suites(d)}
    assert by_name["keys"].expectations[0].severity == "warning"


def test_data_docs_load_nothing_from_the_network():
    from toolkit.expectations.report import offline_html

    page = ('<link rel="stylesheet" href="https://cdn.example/b.css"><script src="https://cdn.example/v.js">'
            '</script><script>var local = 1</script><a href="https://greatexpectations.io">docs</a>')
    clean = offline_html(page)
    assert "cdn.example" not in clean
    assert "var local = 1" in clean and 'href="https://greatexpectations.io"' in clean
