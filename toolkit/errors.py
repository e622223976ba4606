"""The toolkit's exception tree.

Every error the toolkit raises on purpose derives from :class:`ToolkitError`. Each class says
whether it is *transient* (trying again later may succeed: the delivery worker retries it) or
*terminal* (it will fail the same way until someone changes the input), and which exit code the
CLI uses for it.

    ToolkitError
    ├── UserInputError                  terminal, exit 2: fix the input and run again
    │   ├── ConfigError                 integration / run config (one line per bad field)
    │   ├── SecretError                 a secret is missing or unreadable
    │   ├── BlueprintError              blueprint file unreadable or inconsistent
    │   ├── ExportError                 export file unreadable as a whole (bad rows are quarantined)
    │   ├── SuiteError                  expectation suite file broken or holds unknown types
    │   ├── ResultsError                results file / endpoint unreadable
    │   └── DatafileError               datafile unusable
    │       ├── DatafileRejectedError   the optimizely-sdk refuses it (schema, version)
    │       ├── DatafileMismatchError   accountId / projectId differ from the config
    │       ├── DatafileForbiddenError  CDN 403: invalid SDK key or wrong environment
    │       ├── DatafileNotFoundError   404 or missing file
    │       └── DatafileUnavailableError  transient: 5xx, timeout, network (no usable cache)
    ├── DeliveryError                   talking to the Event API
    │   ├── TransientDeliveryError      transient: network error, timeout, 429, 5xx -> retried
    │   └── TerminalDeliveryError       terminal: 4xx other than 429 -> never retried
    └── LedgerError                     the delivery ledger cannot be opened or written

Messages never contain secrets: callers build them from masked values only.
"""

from __future__ import annotations

__all__ = [
    "ToolkitError",
    "UserInputError",
    "ConfigError",
    "SecretError",
    "BlueprintError",
    "ExportError",
    "SuiteError",
    "ResultsError",
    "DatafileError",
    "DatafileRejectedError",
    "DatafileMismatchError",
    "DatafileForbiddenError",
    "DatafileNotFoundError",
    "DatafileUnavailableError",
    "DeliveryError",
    "TransientDeliveryError",
    "TerminalDeliveryError",
    "LedgerError",
]


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose."""

    transient: bool = False
    exit_code: int = 1

    @property
    def terminal(self) -> bool:
        return not self.transient


class UserInputError(ToolkitError):
    """Unusable input: the user must change a file, a flag or a variable. CLI exit code 2."""

    exit_code = 2


class ConfigError(UserInputError):
    """One or more invalid config fields. ``problems`` holds one line per field."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


class SecretError(UserInputError):
    pass


class BlueprintError(UserInputError):
    pass


class ExportError(UserInputError):
    pass


class SuiteError(UserInputError):
    pass


class ResultsError(UserInputError):
    pass


class DatafileError(UserInputError):
    pass


class DatafileRejectedError(DatafileError):
    pass


class DatafileMismatchError(DatafileError):
    pass


class DatafileForbiddenError(DatafileError):
    pass


class DatafileNotFoundError(DatafileError):
    pass


class DatafileUnavailableError(DatafileError):
    transient = True


class DeliveryError(ToolkitError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    transient = True


class TerminalDeliveryError(DeliveryError):
    transient = False


class LedgerError(ToolkitError):
    exit_code = 2
