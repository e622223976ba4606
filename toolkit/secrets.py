"""Secrets: a wrapper that never prints its value, URL masking, and a redacting log filter.

The SDK key and API tokens come from environment variables or a secrets file. Anything that
turns a value into text (repr, str, f-strings, logging, JSON) sees only a mask; code that needs
the real value calls :meth:`Secret.reveal` at the I/O edge.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import SecretError

__all__ = ["MASK", "Secret", "mask_url", "redact", "RedactingFilter", "read_secrets_file", "resolve_secret"]

MASK = "****"
# The SDK key appears in datafile URLs as /datafiles/<key>.json or /datafiles/auth/<key>.json.
_DATAFILE_KEY = re.compile(r"(/datafiles/(?:auth/)?)([^/?#]+?)(\.json)", re.IGNORECASE)



class Secret:
    """A string that keeps itself out of reprs, logs and files."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        self.source = source  # where it came from, e.g. "env OPTIMIZELY_SDK_KEY" (never the value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK}{', from ' + self.source if self.source else ''})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling would write the value to disk
        raise TypeError("Secret values cannot be pickled")


def mask_url(url: str, secrets: Iterable[Secret | str] = ()) -> str:
    """Mask the SDK key inside a datafile URL, and any known secret anywhere in it."""
    masked = _DATAFILE_KEY.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", url)
    return redact(masked, secrets)


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that replaces known secret values (and datafile URL keys) in records."""

    def __init__(self, secrets: Iterable[Secret | str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: Secret | str) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4 and value not in self._secrets:
            self._secrets.append(value)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own handling
            return True
        clean = mask_url(redact(message, self._secrets))
        if clean != message:
            record.msg, record.args = clean, None
        return True


def read_secrets_file(path: str | Path) -> dict[str, str]:
    """Read ``NAME=value`` lines (dotenv style; ``#`` comments, optional quotes)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"secrets file {p}: cannot read it ({exc.strerror}); check the path") from None
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SecretError(f"secrets file {p}:{lineno}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def resolve_secret(
    env_var: str,
    *,
    env: Mapping[str, str] | None = None,
    secrets_file: str | Path | None = None,
) -> Secret | None:
    """Find a secret by variable name: the environment first, then the secrets file."""
    environ = os.environ if env is None else env
    value = environ.get(env_var)
    if value:
        return Secret(value, source=f"env {env_var}")
    if secrets_file is not None:
        values = read_secrets_file(secrets_file)
        if values.get(env_var):
            return Secret(values[env_var], source=f"secrets file {Path(secrets_file).name}:{env_var}")
    return None
