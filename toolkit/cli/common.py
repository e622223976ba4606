"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import IntegrationConfig, load_integration
from ..logs import Redactor

__all__ = ["add_config_args", "config_from_args", "add_datafile_args", "datafile_from_args", "add_mapping_args"]


def add_config_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    g = p.add_argument_group("integration config")
    g.add_argument("--config", metavar="PATH", required=required,
                   help="Datafly install JSON or TOML run config")
    g.add_argument("--secrets-file", metavar="PATH", help="NAME=value file holding the SDK key variable")
    g.add_argument("--sdk-key-env", metavar="NAME", help="environment variable holding the SDK key "
                   "(default OPTIMIZELY_SDK_KEY)")


def config_from_args(args: argparse.Namespace, redactor: Redactor) -> IntegrationConfig | None:
    if not getattr(args, "config", None):
        return None
    cfg = load_integration(Path(args.config), secrets_file=args.secrets_file, sdk_key_env=args.sdk_key_env)
    redactor.add(cfg.sdk_key)
    return cfg


def add_datafile_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--datafile", metavar="PATH_OR_URL", required=required,
                   help="datafile file or URL (default: the config's datafile_url)")
    p.add_argument("--cache-dir", metavar="DIR", help="datafile cache folder (default ~/.cache/datafly-optimizely-toolkit)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="HTTP timeout in seconds (default 10)")


def datafile_from_args(args: argparse.Namespace, config: IntegrationConfig | None):
    from ..datafile import load_datafile

    return load_datafile(
        args.datafile, config=config,
        cache_dir=Path(args.cache_dir) if getattr(args, "cache_dir", None) else None,
        timeout=getattr(args, "timeout", 10.0),
    )


def add_mapping_args(g, *, defaults: bool = True) -> None:
    """The mapping options shared by map, validate and replay. ``defaults=False`` leaves them None, so
    a resumed replay can tell "not given" from a value and reuse the run's recorded one."""
    from ..identity import POLICIES

    g.add_argument("--format", dest="fmt", choices=("jsonl", "csv", "parquet"),
                   help="force the export format (default: detected from the name and content)")
    g.add_argument("--blueprint", metavar="PATH", help="a blueprint TOML read on top of the default data/blueprint.toml")
    g.add_argument("--identity", choices=tuple(POLICIES), default="user_or_anonymous" if defaults else None,
                   help="visitor id policy (default user_or_anonymous)")
    g.add_argument("--decisions", choices=("export", "bucket", "none"), default="export" if defaults else None,
                   help="impressions from the export's activation events (default export), plus offline "
                   "bucketing (bucket), or none")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that map the export's chunks while this one reads it (0: map here; "
                   "default: one per CPU but one, when the export has several chunks). The output is the "
                   "same whatever N")
