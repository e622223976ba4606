"""Datafly Signal -> Optimizely Feature Experimentation: verify, replay and reconcile event delivery.

The public API is re-exported here; implementation modules are one concern each.
"""

from __future__ import annotations

from .config import IntegrationConfig, load_integration, parse_integration
from .datafile import Datafile, load_datafile, parse_datafile
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .secrets import Secret

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "IntegrationConfig",
    "load_integration",
    "parse_integration",
    "Datafile",
    "load_datafile",
    "parse_datafile",
    "Secret",
    *_errors_all,
]
