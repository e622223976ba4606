"""Integration config (the Datafly install JSON or a TOML run config), validated with every
problem reported at once, one line per field, each saying where in Optimizely to find the value.

Secrets: ``sdk_key`` is read from an environment variable (``OPTIMIZELY_SDK_KEY`` by default,
or the name given by ``sdk_key_env``), then a secrets file, and only then from the config file
itself (which works, with a warning). ``datafile_url`` may contain ``{sdk_key}``; if it is absent
it is the CDN URL for the key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from .errors import ConfigError
from .secrets import Secret, mask_url, read_secrets_file

__all__ = [
    "IntegrationConfig",
    "load_integration",
    "parse_integration",
    "EVENT_ENDPOINTS",
    "DEFAULT_SDK_KEY_ENV",
    "DEFAULT_TOKEN_ENV",
    "cdn_datafile_url",
]

log = logging.getLogger(__name__)

DEFAULT_SDK_KEY_ENV = "OPTIMIZELY_SDK_KEY"
DEFAULT_TOKEN_ENV = "OPTIMIZELY_API_TOKEN"
EVENT_ENDPOINTS = {
    "US": "https://logx.optimizely.com/v1/events",
    "EU": "https://eu.logx.optimizely.com/v1/events",
}
CDN_DATAFILE = "https://cdn.optimizely.com/datafiles/{sdk_key}.json"
_PLACEHOLDER_KEYS = {"your_sdk_key", "<sdk_key>", "sdk_key", "changeme"}

# Where the user finds each value (the integration's own config table).
WHERE = {
    "account_id": "Optimizely Settings > Account",
    "project_id": "Optimizely Settings > Projects, or the project URL",
    "sdk_key": "Optimizely Settings > Environments (use the Production key for live traffic)",
    "datafile_url": "Optimizely Settings > Environments (form https://cdn.optimizely.com/datafiles/{sdk_key}.json)",
    "region": "the data region of your Optimizely account: US (default) or EU",
}
_CDN_KEY = re.compile(r"/datafiles/(?:auth/)?([^/?#]+)\.json$")


def cdn_datafile_url(sdk_key: str) -> str:
    return CDN_DATAFILE.format(sdk_key=sdk_key)


@dataclass(frozen=True)
class IntegrationConfig:
    """The validated Optimizely integration. Secrets are :class:`Secret`; reprs are masked."""

    account_id: str
    project_id: str
    sdk_key: Secret
    datafile_url_template: str = field(repr=False)  # may hold "{sdk_key}"; never printed raw
    region: Literal["US", "EU"] = "US"
    event_endpoint_override: str | None = None
    name: str = "Optimizely"
    variant: str = "default"
    delivery_mode: str = "server_side"
    source: str | None = None
    sdk_key_env: str = DEFAULT_SDK_KEY_ENV
    token_env: str = DEFAULT_TOKEN_ENV
    warnings: tuple[str, ...] = ()

    @property
    def datafile_url(self) -> str:
        """The real URL, with the key: for the HTTP client only."""
        return self.datafile_url_template.replace("{sdk_key}", self.sdk_key.reveal())

    @property
    def datafile_url_masked(self) -> str:
        return mask_url(self.datafile_url, [self.sdk_key])

    @property
    def event_endpoint(self) -> str:
        return self.event_endpoint_override or EVENT_ENDPOINTS[self.region]

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return (self.sdk_key,)

    def __repr__(self) -> str:
        return (
            f"IntegrationConfig(account_id={self.account_id!r}, project_id={self.project_id!r}, "
            f"sdk_key={self.sdk_key!r}, datafile_url={self.datafile_url_masked!r}, region={self.region!r}, "
            f"event_endpoint={self.event_endpoint!r})"
        )

    def describe(self) -> dict[str, str]:
        """A safe summary for reports and notebooks."""
        return {
            "account_id": self.account_id,
            "project_id": self.project_id,
            "sdk_key": f"**** ({self.sdk_key.source})" if self.sdk_key.source else "****",
            "datafile_url": self.datafile_url_masked,
            "region": self.region,
            "event_endpoint": self.event_endpoint,
        }


def _digits(raw: Any, name: str, problems: list[str]) -> str:
    if isinstance(raw, bool) or raw is None or raw == "":
        problems.append(f"{name}: missing; it is a string of digits found in {WHERE[name]}")
        return ""
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip().isdigit():
        shown = raw if isinstance(raw, str | int | float) else type(raw).__name__
        problems.append(f"{name}: {shown!r} is not a string of digits; find it in {WHERE[name]}")
        return ""
    return raw.strip()


def parse_integration(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    env: Mapping[str, str] | None = None,
    secrets_file: str | Path | None = None,
    sdk_key_env: str | None = None,
) -> IntegrationConfig:
    """Validate a config mapping (install-JSON form or flat) and resolve its secrets.

    Raises :class:`ConfigError` listing every problem, one line per field.
    """
    environ = os.environ if env is None else env
    problems: list[str] = []
    warnings: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a JSON object / TOML table", source)
    body: Mapping[str, Any] = data.get("config", data) if isinstance(data.get("config", data), Mapping) else {}
    if "config" in data and not isinstance(data["config"], Mapping):
        raise ConfigError('"config" must be an object with account_id, project_id, sdk_key, datafile_url', source)

    account_id = _digits(body.get("account_id"), "account_id", problems)
    project_id = _digits(body.get("project_id"), "project_id", problems)

    # --- sdk_key: env var -> secrets file -> the file itself (with a warning)
    key_env = sdk_key_env or body.get("sdk_key_env") or data.get("sdk_key_env") or DEFAULT_SDK_KEY_ENV
    token_env = body.get("token_env") or data.get("token_env") or DEFAULT_TOKEN_ENV
    secrets_path = secrets_file or body.get("secrets_file") or data.get("secrets_file")
    if secrets_path and source and not Path(secrets_path).is_absolute():
        secrets_path = Path(source).parent / secrets_path
    sdk_key: Secret | None = None
    if environ.get(key_env):
        sdk_key = Secret(environ[key_env], source=f"env {key_env}")
    elif secrets_path:
        try:
            values = read_secrets_file(secrets_path)
        except Exception as exc:  # SecretError: already one clean line
            problems.append(f"sdk_key: {exc}")
            values = {}
        if values.get(key_env):
            sdk_key = Secret(values[key_env], source=f"secrets file {Path(secrets_path).name}")
    file_key = body.get("sdk_key")
    if sdk_key is None and isinstance(file_key, str) and file_key.strip() and file_key not in _PLACEHOLDER_KEYS:
        sdk_key = Secret(file_key.strip(), source="config file")
        warnings.append(
            f"sdk_key is written in the config file; prefer the environment variable {key_env} "
            "(the file may be shared or committed)"
        )
    if sdk_key is None:
        hint = " (the file holds a placeholder)" if file_key in _PLACEHOLDER_KEYS else ""
        problems.append(
            f"sdk_key: not set{hint}; export {key_env}=<key> or put {key_env}=<key> in a secrets file; "
            f"find it in {WHERE['sdk_key']}"
        )
    elif any(c.isspace() for c in sdk_key.reveal()) or "/" in sdk_key.reveal():
        problems.append(f"sdk_key ({sdk_key.source}): contains spaces or '/'; copy it again from {WHERE['sdk_key']}")

    # --- datafile_url
    raw_url = body.get("datafile_url")
    template = ""
    if raw_url in (None, ""):
        template = CDN_DATAFILE
    elif not isinstance(raw_url, str):
        problems.append(f"datafile_url: must be a string URL; find it in {WHERE['datafile_url']}")
    else:
        template = raw_url.strip()
        real_key = sdk_key.reveal() if sdk_key else ""
        if real_key and real_key in template:
            template = template.replace(real_key, "{sdk_key}")
        safe = mask_url(template, [real_key] if real_key else [])
        parsed = urlparse(template.replace("{sdk_key}", "KEY"))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"datafile_url: {safe!r} is not an http(s) URL; find it in {WHERE['datafile_url']}")
        else:
            m = _CDN_KEY.search(parsed.path)
            if m and m.group(1) != "KEY" and sdk_key is not None and m.group(1) not in _PLACEHOLDER_KEYS:
                problems.append(
                    f"datafile_url: the SDK key inside {safe!r} is not the configured sdk_key ({sdk_key.source}); "
                    f"use the URL of the same environment, from {WHERE['datafile_url']}"
                )
            elif m and m.group(1) in _PLACEHOLDER_KEYS:
                # the install JSON's placeholder URL: use the configured key
                template = template.replace(f"/{m.group(1)}.json", "/{sdk_key}.json")

    # --- region and endpoint
    region = str(body.get("region") or data.get("region") or "US").upper()
    if region not in EVENT_ENDPOINTS:
        problems.append(f"region: {region!r} is not US or EU; it is {WHERE['region']}")
        region = "US"
    endpoint = body.get("event_endpoint") or data.get("event_endpoint")
    if endpoint is not None:
        ep = urlparse(str(endpoint))
        if ep.scheme not in ("http", "https") or not ep.netloc:
            problems.append(f"event_endpoint: {endpoint!r} is not an http(s) URL")

    if problems:
        raise ConfigError(problems, source)
    assert sdk_key is not None
    for w in warnings:
        log.warning("%s: %s", source or "config", w)
    return IntegrationConfig(
        account_id=account_id,
        project_id=project_id,
        sdk_key=sdk_key,
        datafile_url_template=template,
        region=region,  # type: ignore[arg-type]
        event_endpoint_override=str(endpoint) if endpoint else None,
        name=str(data.get("name", "Optimizely")),
        variant=str(data.get("variant", "default")),
        delivery_mode=str(data.get("delivery_mode", "server_side")),
        source=source,
        sdk_key_env=key_env,
        token_env=token_env,
        warnings=tuple(warnings),
    )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read an install JSON or a TOML file into a dict (the integration table for TOML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found; pass --config with the path of the install JSON or run TOML", str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror})", str(p)) from None
    if p.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML ({exc})", str(p)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})", str(p)) from None


def load_integration(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    secrets_file: str | Path | None = None,
    sdk_key_env: str | None = None,
) -> IntegrationConfig:
    """Load the integration from the Datafly install JSON or from a TOML run config.

    A TOML run config holds the integration inline as an ``[integration]`` table, or points to an
    install JSON with ``integration = "config.json"`` (relative to the TOML file).
    """
    p = Path(path)
    data = read_config_file(p)
    if p.suffix.lower() == ".toml":
        integ = data.get("integration")
        if isinstance(integ, str):
            target = (p.parent / integ) if not Path(integ).is_absolute() else Path(integ)
            return load_integration(target, env=env, secrets_file=secrets_file, sdk_key_env=sdk_key_env)
        if not isinstance(integ, Mapping):
            raise ConfigError("no [integration] table (or integration = \"install.json\") in the run config", str(p))
        data = dict(integ)
    return parse_integration(data, source=str(p), env=env, secrets_file=secrets_file, sdk_key_env=sdk_key_env)
