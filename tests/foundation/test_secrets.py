import io
import json
import logging
import pickle

import pytest

from tests.foundation.cdn import Cdn
from toolkit.cli import main
from toolkit.config import parse_integration
from toolkit.logs import setup_logging
from toolkit.secrets import RedactingFilter, Secret, mask_url

CANARY = "CanarySdkKey7f3a9c"


def test_secret_never_prints_itself():
    s = Secret(CANARY, source="env X")
    for text in (repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, "{}".format(s)):  # noqa: UP031, UP032
        assert CANARY not in text
    assert s.reveal() == CANARY
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_config_repr_and_describe_are_masked():
    cfg = parse_integration({"config": {"account_id": "1", "project_id": "2"}}, env={"OPTIMIZELY_SDK_KEY": CANARY})
    assert CANARY not in repr(cfg)
    assert CANARY not in json.dumps(cfg.describe())
    assert CANARY in cfg.datafile_url  # only the HTTP client sees the real URL
    assert cfg.datafile_url_masked.endswith("/datafiles/****.json")


@pytest.mark.parametrize("url, expected", [
    (f"https://cdn.optimizely.com/datafiles/{CANARY}.json", "https://cdn.optimizely.com/datafiles/****.json"),
    (f"https://config.optimizely.com/datafiles/auth/{CANARY}.json", "https://config.optimizely.com/datafiles/auth/****.json"),
    (f"http://127.0.0.1:8080/datafiles/{CANARY}.json?x=1", "http://127.0.0.1:8080/datafiles/****.json?x=1"),
])
def test_mask_url(url, expected):
    assert mask_url(url) == expected


def test_log_records_are_redacted():
    stream = io.StringIO()
    redactor = setup_logging(0, stream=stream)
    redactor.add(Secret(CANARY))
    log = logging.getLogger("toolkit.test")
    log.warning("key is %s", CANARY)
    log.warning("url https://cdn.optimizely.com/datafiles/%s.json", "OtherKey123")
    out = stream.getvalue()
    assert CANARY not in out and "OtherKey123" not in out and "****" in out
    assert RedactingFilter([CANARY]).filter(logging.makeLogRecord({"msg": CANARY}))


def test_canary_key_never_reaches_output_or_disk(tmp_path, monkeypatch, capsys, fixture_datafile_path):
    """doctor against a local CDN, healthy then failing: the key appears nowhere."""
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", CANARY)
    cache = tmp_path / "cache"
    with Cdn() as cdn:
        cdn.state.datafiles[CANARY] = fixture_datafile_path.read_bytes()
        cfg = tmp_path / "install.json"
        cfg.write_text(json.dumps({"config": {"account_id": "12345678", "project_id": "98765432",
                                              "datafile_url": cdn.base + f"/datafiles/{CANARY}.json"}}))
        rc_ok = main(["doctor", "--config", str(cfg), "--cache-dir", str(cache)])
        cdn.state.status = 500
        rc_stale = main(["-v", "doctor", "--config", str(cfg), "--cache-dir", str(cache)])
        cdn.state.status = 403
        rc_forbidden = main(["--debug", "doctor", "--config", str(cfg), "--cache-dir", str(cache)])
    out = capsys.readouterr()
    assert (rc_ok, rc_stale, rc_forbidden) == (0, 1, 1)
    assert CANARY not in out.out and CANARY not in out.err
    assert "403" in out.out and "stale" in out.out
    for f in tmp_path.rglob("*"):
        assert CANARY not in f.name
        if f.is_file() and f != cfg:
            assert CANARY.encode() not in f.read_bytes(), f
