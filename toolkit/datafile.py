"""The datafile: fetch (URL or file) with an on-disk cache and conditional requests, parse with the
official ``optimizely-sdk`` so that what it rejects is rejected here too, check it against the
integration config, and index it for the other stages.

Cache files are named by a hash of the URL (the URL holds the SDK key); their metadata stores the
masked URL only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import requests

from .config import IntegrationConfig
from .errors import (
    DatafileError,
    DatafileForbiddenError,
    DatafileMismatchError,
    DatafileNotFoundError,
    DatafileRejectedError,
    DatafileUnavailableError,
)
from .secrets import Secret, mask_url

__all__ = [
    "Datafile",
    "EventInfo",
    "ExperimentInfo",
    "VariationInfo",
    "FetchInfo",
    "load_datafile",
    "parse_datafile",
    "default_cache_dir",
    "normalize_key",
]

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 10.0


def default_cache_dir() -> Path:
    env = os.environ.get("TOOLKIT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datafly-optimizely-toolkit"


def normalize_key(key: str) -> str:
    """Case- and separator-insensitive form of an event key, for near-miss suggestions."""
    return re.sub(r"[\s_\-.]+", "", key).lower()


# --------------------------------------------------------------------------------------- index


@dataclass(frozen=True)
class EventInfo:
    id: str
    key: str
    experiment_ids: tuple[str, ...]


@dataclass(frozen=True)
class VariationInfo:
    id: str
    key: str
    feature_enabled: bool | None


@dataclass(frozen=True)
class ExperimentInfo:
    id: str
    key: str
    status: str
    layer_id: str
    variations: tuple[VariationInfo, ...]
    traffic_allocation: tuple[tuple[str, int], ...]  # (entityId, endOfRange)
    audience_ids: tuple[str, ...]
    group_id: str | None
    rule_type: str  # experiment | feature-test | rollout | holdout
    flag_key: str  # "" when the experiment is not a flag rule

    @property
    def campaign_id(self) -> str:
        """What the Event API calls the campaign: the layer id, else the experiment id."""
        return self.layer_id or self.id

    @property
    def is_running(self) -> bool:
        return self.status == "Running"

    def variation(self, id_or_key: str) -> VariationInfo | None:
        for v in self.variations:
            if v.id == id_or_key or v.key == id_or_key:
                return v
        return None


@dataclass(frozen=True)
class FetchInfo:
    """Where a datafile came from and how fresh it is (safe to show: URL masked)."""

    source: str  # masked URL or file path
    from_cache: bool = False
    stale: bool = False  # a cached copy used because the source failed
    age_seconds: float | None = None
    status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class Datafile:
    """A parsed, SDK-validated datafile with the index the other stages use."""

    raw: dict[str, Any] = field(repr=False)
    text: str = field(repr=False)
    version: str
    revision: str
    account_id: str
    project_id: str
    anonymize_ip: bool
    bot_filtering: bool | None
    events: dict[str, EventInfo] = field(repr=False)  # key -> event
    experiments: dict[str, ExperimentInfo] = field(repr=False)  # id -> experiment
    attributes: dict[str, str] = field(repr=False)  # key -> id
    fetch: FetchInfo | None = None

    # ---- lookups
    @property
    def events_by_id(self) -> dict[str, EventInfo]:
        return {e.id: e for e in self.events.values()}

    @property
    def experiments_by_key(self) -> dict[str, ExperimentInfo]:
        return {e.key: e for e in self.experiments.values()}

    def experiment(self, id_or_key: str) -> ExperimentInfo | None:
        return self.experiments.get(id_or_key) or self.experiments_by_key.get(id_or_key)

    def running_experiments(self) -> list[ExperimentInfo]:
        return [e for e in self.experiments.values() if e.is_running and e.rule_type != "rollout"]

    def suggest_key(self, key: str) -> str | None:
        """The datafile key a mis-spelt key most likely meant (case/separator-insensitive)."""
        if key in self.events:
            return None
        wanted = normalize_key(key)
        for k in self.events:
            if normalize_key(k) == wanted:
                return k
        return None

    def project_config(self):
        """A fresh ``optimizely.project_config.ProjectConfig`` for SDK calls (bucketing, events)."""
        return _sdk_project_config(self.text)

    def summary(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "account_id": self.account_id,
            "project_id": self.project_id,
            "events": sorted(self.events),
            "running_experiments": sorted(e.key for e in self.running_experiments()),
            "source": self.fetch.source if self.fetch else None,
        }


class _SdkLogger:
    """Routes the SDK's own log lines to our logger at debug level."""

    def log(self, level: int, message: str) -> None:
        log.debug("optimizely-sdk: %s", message)

    def debug(self, m: str) -> None: log.debug("optimizely-sdk: %s", m)  # noqa: E704
    def info(self, m: str) -> None: log.debug("optimizely-sdk: %s", m)  # noqa: E704
    def warning(self, m: str) -> None: log.debug("optimizely-sdk: %s", m)  # noqa: E704
    def error(self, m: str) -> None: log.debug("optimizely-sdk: %s", m)  # noqa: E704
    def exception(self, m: str) -> None: log.debug("optimizely-sdk: %s", m)  # noqa: E704


def _sdk_project_config(text: str):
    from optimizely import error_handler
    from optimizely.project_config import ProjectConfig

    return ProjectConfig(text, _SdkLogger(), error_handler.RaiseExceptionErrorHandler())


def _schema_reason(data: Any) -> str | None:
    """The SDK's schema check (jsonschema Draft 4 on its JSON_SCHEMA), with the first reason."""
    import jsonschema
    from optimizely.helpers import constants

    validator = jsonschema.Draft4Validator(constants.JSON_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
    return f"{where}: {e.message}"


def parse_datafile(text: str | bytes, *, fetch: FetchInfo | None = None, source: str = "datafile") -> Datafile:
    """Parse and index a datafile; raise :class:`DatafileRejectedError` with the SDK's reason."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatafileRejectedError(
            f"{source}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); is this a datafile?"
        ) from None
    if not isinstance(data, dict):
        raise DatafileRejectedError(f"{source}: a datafile is a JSON object, got {type(data).__name__}")
    reason = _schema_reason(data)
    if reason:
        raise DatafileRejectedError(f"{source}: rejected by optimizely-sdk's datafile schema at {reason}")
    try:
        pc = _sdk_project_config(text)
    except Exception as exc:  # the SDK raises its own exception types (unsupported version, ...)
        raise DatafileRejectedError(f"{source}: rejected by optimizely-sdk: {type(exc).__name__}: {exc}") from None

    flag_of: dict[str, str] = {}
    for flag in data.get("featureFlags", []) or []:
        for eid in flag.get("experimentIds", []) or []:
            flag_of[eid] = flag.get("key", "")
    rollout_exp: dict[str, str] = {}
    for flag in data.get("featureFlags", []) or []:
        rid = flag.get("rolloutId")
        for rollout in data.get("rollouts", []) or []:
            if rollout.get("id") == rid:
                for e in rollout.get("experiments", []) or []:
                    rollout_exp[e["id"]] = flag.get("key", "")

    experiments: dict[str, ExperimentInfo] = {}
    for exp in pc.experiment_id_map.values():
        if exp.id in rollout_exp:
            rule_type, flag_key = "rollout", rollout_exp[exp.id]
        elif exp.id in flag_of:
            rule_type, flag_key = "feature-test", flag_of[exp.id]
        else:
            rule_type, flag_key = "experiment", ""
        experiments[exp.id] = ExperimentInfo(
            id=str(exp.id),
            key=str(exp.key),
            status=str(exp.status),
            layer_id=str(exp.layerId or ""),
            variations=tuple(
                VariationInfo(str(v["id"]), str(v["key"]), v.get("featureEnabled")) for v in exp.variations
            ),
            traffic_allocation=tuple((str(t["entityId"]), int(t["endOfRange"])) for t in exp.trafficAllocation),
            audience_ids=tuple(str(a) for a in (exp.audienceIds or [])),
            group_id=str(exp.groupId) if exp.groupId else None,
            rule_type=rule_type,
            flag_key=flag_key,
        )
    events = {
        str(e["key"]): EventInfo(str(e["id"]), str(e["key"]), tuple(str(x) for x in e.get("experimentIds", [])))
        for e in data.get("events", [])
    }
    attributes = {str(a["key"]): str(a["id"]) for a in data.get("attributes", [])}
    return Datafile(
        raw=data,
        text=text,
        version=str(pc.version),
        revision=str(pc.revision),
        account_id=str(pc.account_id),
        project_id=str(pc.project_id),
        anonymize_ip=bool(pc.anonymize_ip),
        bot_filtering=pc.bot_filtering,
        events=events,
        experiments=experiments,
        attributes=attributes,
        fetch=fetch,
    )


def check_against_config(df: Datafile, config: IntegrationConfig) -> None:
    """accountId / projectId must be the configured ones: else the Event API answers 400."""
    problems = []
    if df.account_id != config.account_id:
        problems.append(f"accountId {df.account_id!r} != config account_id {config.account_id!r}")
    if df.project_id != config.project_id:
        problems.append(f"projectId {df.project_id!r} != config project_id {config.project_id!r}")
    if problems:
        raise DatafileMismatchError(
            "datafile does not belong to the configured project: " + "; ".join(problems)
            + ". Events sent with these ids get 400 from the Event API: check the ids in Optimizely "
            "Settings > Account / Projects, and that datafile_url is this project's environment"
        )


# --------------------------------------------------------------------------------------- fetch


def _cache_paths(cache_dir: Path, url: str) -> tuple[Path, Path]:
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    d = cache_dir / "datafiles"
    return d / f"{digest}.json", d / f"{digest}.meta.json"


def _read_cache(cache_dir: Path, url: str) -> tuple[str, dict[str, Any]] | None:
    body, meta = _cache_paths(cache_dir, url)
    try:
        return body.read_text(encoding="utf-8"), json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_cache(cache_dir: Path, url: str, text: str, meta: dict[str, Any]) -> None:
    body, meta_path = _cache_paths(cache_dir, url)
    try:
        body.parent.mkdir(parents=True, exist_ok=True)
        tmp = body.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, body)
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    except OSError as exc:
        log.warning("datafile cache not written (%s): %s", cache_dir, exc.strerror)


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def fetch_datafile_text(
    url: str,
    *,
    cache_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
    secrets: Iterable[Secret] = (),
    headers: dict[str, str] | None = None,
) -> tuple[str, FetchInfo]:
    """GET a datafile with the cache and conditional headers. See the module doc for failures."""
    cache_dir = cache_dir or default_cache_dir()
    safe = mask_url(url, secrets)
    cached = _read_cache(cache_dir, url)
    req_headers = dict(headers or {})
    if cached:
        if cached[1].get("etag"):
            req_headers["If-None-Match"] = cached[1]["etag"]
        if cached[1].get("last_modified"):
            req_headers["If-Modified-Since"] = cached[1]["last_modified"]
    http = session or requests.Session()

    def from_cache(reason: str, error: type[DatafileError]) -> tuple[str, FetchInfo]:
        if not cached:
            raise error(f"datafile {safe}: {reason}; no cached copy to fall back on")
        age = time.time() - float(cached[1].get("fetched_at", 0))
        warning = (
            f"datafile {safe}: {reason}; using the cached copy from {_age_text(age)} ago "
            f"(revision {cached[1].get('revision', '?')}); it may be stale"
        )
        log.warning("%s", warning)
        return cached[0], FetchInfo(
            source=safe, from_cache=True, stale=True, age_seconds=age, warning=warning,
            etag=cached[1].get("etag"), last_modified=cached[1].get("last_modified"),
        )

    try:
        resp = http.get(url, headers=req_headers, timeout=timeout)
    except requests.Timeout:
        return from_cache(f"timed out after {timeout:g} s", DatafileUnavailableError)
    except requests.RequestException as exc:
        return from_cache(f"network error ({type(exc).__name__})", DatafileUnavailableError)
    finally:
        if session is None:
            http.close()

    if resp.status_code == 304 and cached:
        meta = dict(cached[1], fetched_at=time.time())
        _write_cache(cache_dir, url, cached[0], meta)
        return cached[0], FetchInfo(
            source=safe, from_cache=True, stale=False, age_seconds=0.0, status=304,
            etag=meta.get("etag"), last_modified=meta.get("last_modified"),
        )
    if resp.status_code == 200:
        text = resp.text
        meta = {
            "url": safe,
            "etag": resp.headers.get("ETag"),
            "last_modified": resp.headers.get("Last-Modified"),
            "fetched_at": time.time(),
        }
        with contextlib.suppress(ValueError, AttributeError):
            meta["revision"] = str(json.loads(text).get("revision"))
        _write_cache(cache_dir, url, text, meta)
        return text, FetchInfo(
            source=safe, status=200, etag=meta["etag"], last_modified=meta["last_modified"], age_seconds=0.0
        )
    if resp.status_code == 403:
        raise DatafileForbiddenError(
            f"datafile {safe}: 403 Forbidden: the SDK key is invalid or belongs to another environment; "
            "copy the key of the right environment from Optimizely Settings > Environments (regenerate it if revoked)"
        )
    if resp.status_code == 404:
        return from_cache("404 Not Found (check datafile_url and the SDK key)", DatafileNotFoundError)
    return from_cache(f"HTTP {resp.status_code}", DatafileUnavailableError)


def load_datafile(
    source: str | os.PathLike[str] | None = None,
    *,
    config: IntegrationConfig | None = None,
    cache_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
    check_ids: bool = True,
) -> Datafile:
    """Load a datafile from a URL or a local file (default: the config's ``datafile_url``).

    With a config, the datafile's accountId/projectId are checked against it.
    """
    secrets: tuple[Secret, ...] = config.secrets if config else ()
    if source is None:
        if config is None:
            raise DatafileError("no datafile given: pass --datafile PATH_OR_URL or --config with a datafile_url")
        source = config.datafile_url
    src = os.fspath(source)
    if src.startswith(("http://", "https://")):
        text, info = fetch_datafile_text(src, cache_dir=cache_dir, timeout=timeout, session=session, secrets=secrets)
        label = info.source
    else:
        path = Path(src)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DatafileNotFoundError(f"datafile {path}: file not found; pass --datafile with a path or URL") from None
        except OSError as exc:
            raise DatafileNotFoundError(f"datafile {path}: cannot read it ({exc.strerror})") from None
        stat = path.stat()
        info = FetchInfo(
            source=str(path), age_seconds=max(0.0, time.time() - stat.st_mtime),
            last_modified=formatdate(stat.st_mtime, usegmt=True),
        )
        label = str(path)
    df = parse_datafile(text, fetch=info, source=f"datafile {label}")
    if config is not None and check_ids:
        check_against_config(df, config)
    return df
