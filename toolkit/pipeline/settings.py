"""Run settings for the papermill pipeline: a TOML run config plus ``-p NAME=VALUE`` overrides.

Only plain, non-secret values live here: they become papermill parameters and are written into
the executed notebooks. Secrets travel as the *names* of environment variables.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["RunSettings", "load_run_settings", "apply_overrides"]

_PATH_FIELDS = ("config", "export", "datafile", "blueprint", "results", "suites", "out", "secrets_file",
                "sandbox_data")


@dataclass(frozen=True)
class RunSettings:
    config: str  # the integration: install JSON, or the run TOML itself
    export: str
    datafile: str = ""  # default: the integration's datafile_url
    blueprint: str = ""
    identity: str = "user_or_anonymous"
    decisions: str = "export"
    format: str = ""
    endpoint: str = ""  # Event API override (the sandbox); default: the config's region endpoint
    strict: bool = True
    dry_run: bool = False
    concurrency: int = 8
    max_rps: float = 0.0
    results: str = ""  # results file / URL (may contain {experiment_id}); "" skips reconciliation
    results_format: str = ""
    tolerance: str = "0,0"
    suites: str = ""
    out: str = "reports"
    run_id: str = ""
    sdk_key_env: str = "OPTIMIZELY_SDK_KEY"
    token_env: str = "OPTIMIZELY_API_TOKEN"
    secrets_file: str = ""
    sandbox_data: str = ""  # a sandbox data dir the notebooks may open (demo / onboarding)

    def to_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_params(), indent=2, sort_keys=True)


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"run.{name}: {raw!r} is not true/false")
    if kind in (int, float):
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"run.{name}: {raw!r} is not a number") from None
    return "" if raw is None else str(raw)


_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _field_types() -> dict[str, type]:
    return {f.name: _TYPES[f.type] if isinstance(f.type, str) else f.type for f in fields(RunSettings)}


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` strings (``-p`` on the command line) over the TOML values."""
    types = _field_types()
    out = dict(values)
    for item in overrides:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in types:
            known = ", ".join(sorted(types))
            raise ConfigError(f"-p {item!r}: expected NAME=VALUE with NAME one of: {known}")
        out[name] = value
    return out


def load_run_settings(path: str | Path, overrides: list[str] | None = None) -> RunSettings:
    """Read a run TOML; relative paths are resolved against the TOML file's folder."""
    p = Path(path).resolve()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("run config not found; pass --config RUN.toml", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML ({exc})", str(p)) from None
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise ConfigError("[run] must be a table", str(p))
    values: dict[str, Any] = dict(run)
    if "integration" in data and "config" not in values:
        values["config"] = str(p)  # the run TOML itself holds (or points to) the integration
    values = apply_overrides(values, overrides or [])
    types = _field_types()
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"[run]: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(types))}", str(p))
    missing = [n for n in ("config", "export") if not values.get(n)]
    if missing:
        raise ConfigError(f"[run]: missing {', '.join(missing)} (the integration config and the export to replay)", str(p))
    clean: dict[str, Any] = {}
    for name, raw in values.items():
        v = _coerce(name, raw, types[name])
        if name in _PATH_FIELDS and v and "://" not in v and v != "sandbox":
            v = str((p.parent / v).resolve()) if not Path(v).is_absolute() else v
        clean[name] = v
    if clean.get("decisions", "export") not in ("export", "bucket", "none"):
        raise ConfigError(f"run.decisions: {clean['decisions']!r} is not export, bucket or none", str(p))
    return RunSettings(**clean)
