import json
import logging

import pytest

from toolkit.config import EVENT_ENDPOINTS, load_integration, parse_integration
from toolkit.errors import ConfigError

KEY = "AbCdEf123456"


def install(**config):
    base = {"account_id": "12345678", "project_id": "98765432", "sdk_key": "your_sdk_key",
            "datafile_url": "https://cdn.optimizely.com/datafiles/your_sdk_key.json"}
    base.update(config)
    return {"name": "Optimizely", "variant": "default", "config": base, "delivery_mode": "server_side"}


def test_install_json_with_key_from_env():
    cfg = parse_integration(install(), env={"OPTIMIZELY_SDK_KEY": KEY})
    assert cfg.account_id == "12345678" and cfg.project_id == "98765432"
    assert cfg.sdk_key.reveal() == KEY
    assert cfg.datafile_url == f"https://cdn.optimizely.com/datafiles/{KEY}.json"
    assert cfg.datafile_url_masked == "https://cdn.optimizely.com/datafiles/****.json"
    assert cfg.event_endpoint == EVENT_ENDPOINTS["US"]
    assert cfg.warnings == ()


def test_integer_ids_are_normalised_to_digit_strings():
    cfg = parse_integration(install(account_id=12345678, project_id=98765432), env={"OPTIMIZELY_SDK_KEY": KEY})
    assert (cfg.account_id, cfg.project_id) == ("12345678", "98765432")


def test_eu_region_selects_the_eu_endpoint():
    cfg = parse_integration(install(region="eu"), env={"OPTIMIZELY_SDK_KEY": KEY})
    assert cfg.event_endpoint == "https://eu.logx.optimizely.com/v1/events"


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"account_id": "12ab"}, "account_id", "Settings > Account"),
        ({"account_id": None}, "account_id", "missing"),
        ({"project_id": "proj-1"}, "project_id", "Settings > Projects"),
        ({"project_id": True}, "project_id", "missing"),
        ({"datafile_url": "ftp://example.com/x.json"}, "datafile_url", "not an http(s) URL"),
        ({"datafile_url": "not a url"}, "datafile_url", "not an http(s) URL"),
        ({"datafile_url": 12}, "datafile_url", "must be a string"),
        ({"datafile_url": "https://cdn.optimizely.com/datafiles/OtherKey999.json"}, "datafile_url",
         "not the configured sdk_key"),
        ({"region": "APAC"}, "region", "US or EU"),
        ({"event_endpoint": "logx"}, "event_endpoint", "not an http(s) URL"),
    ],
)
def test_each_invalid_field_gets_one_line_naming_it(change, field, words):
    with pytest.raises(ConfigError) as err:
        parse_integration(install(**change), env={"OPTIMIZELY_SDK_KEY": KEY}, source="cfg.json")
    lines = str(err.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"cfg.json: {field}:")
    assert words in lines[0]


def test_missing_sdk_key_says_where_to_set_and_find_it():
    with pytest.raises(ConfigError) as err:
        parse_integration(install(), env={})
    (line,) = str(err.value).splitlines()
    assert "sdk_key" in line and "OPTIMIZELY_SDK_KEY" in line and "Settings > Environments" in line
    assert "placeholder" in line


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_integration(install(account_id="x", project_id="", region="MARS", datafile_url="nope"), env={})
    fields = [line.split(":")[0] for line in str(err.value).splitlines()]
    assert fields == ["account_id", "project_id", "sdk_key", "datafile_url", "region"]


def test_key_in_the_file_works_but_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="toolkit"):
        cfg = parse_integration(install(sdk_key=KEY, datafile_url=f"https://cdn.optimizely.com/datafiles/{KEY}.json"), env={})
    assert cfg.sdk_key.reveal() == KEY and cfg.sdk_key.source == "config file"
    assert any("OPTIMIZELY_SDK_KEY" in w for w in cfg.warnings)
    assert "prefer the environment variable" in caplog.text
    assert KEY not in caplog.text


def test_named_variable_and_secrets_file(tmp_path):
    cfg = parse_integration(install(), env={"MY_KEY": KEY}, sdk_key_env="MY_KEY")
    assert cfg.sdk_key.reveal() == KEY and cfg.sdk_key.source == "env MY_KEY"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"# comment\nexport OPTIMIZELY_SDK_KEY='{KEY}'\n")
    cfg = parse_integration(install(), env={}, secrets_file=secrets)
    assert cfg.sdk_key.reveal() == KEY and "secrets file" in cfg.sdk_key.source


def test_datafile_url_defaults_to_the_cdn_form():
    data = install()
    del data["config"]["datafile_url"]
    cfg = parse_integration(data, env={"OPTIMIZELY_SDK_KEY": KEY})
    assert cfg.datafile_url == f"https://cdn.optimizely.com/datafiles/{KEY}.json"


def test_toml_run_config_inline_and_by_reference(tmp_path):
    (tmp_path / "install.json").write_text(json.dumps(install()))
    (tmp_path / "run.toml").write_text('integration = "install.json"\n')
    cfg = load_integration(tmp_path / "run.toml", env={"OPTIMIZELY_SDK_KEY": KEY})
    assert cfg.project_id == "98765432"
    (tmp_path / "inline.toml").write_text(
        '[integration]\naccount_id = "1"\nproject_id = "2"\nregion = "EU"\n'
        'datafile_url = "http://127.0.0.1:9/datafiles/{sdk_key}.json"\n'
    )
    cfg = load_integration(tmp_path / "inline.toml", env={"OPTIMIZELY_SDK_KEY": KEY})
    assert (cfg.account_id, cfg.region) == ("1", "EU")
    assert cfg.datafile_url == f"http://127.0.0.1:9/datafiles/{KEY}.json"


@pytest.mark.parametrize("name, text, words", [
    ("bad.json", "{not json", "not valid JSON at line 1"),
    ("bad.toml", "a = ", "not valid TOML"),
    ("missing.json", None, "file not found"),
    ("noint.toml", "x = 1\n", "no [integration] table"),
])
def test_unreadable_config_files(tmp_path, name, text, words):
    p = tmp_path / name
    if text is not None:
        p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_integration(p, env={"OPTIMIZELY_SDK_KEY": KEY})
    assert words in str(err.value) and name in str(err.value)
