"""Logging for the CLI and notebooks: to stderr, with secrets redacted from every record."""

from __future__ import annotations

import logging
import sys

from .secrets import RedactingFilter, Secret, mask_url, redact

__all__ = ["Redactor", "setup_logging"]


class Redactor:
    """Knows the secrets of this process; cleans text and log records of them."""

    def __init__(self) -> None:
        self.filter = RedactingFilter()
        self._secrets: list[Secret | str] = []

    def add(self, *secrets: Secret | str | None) -> None:
        for s in secrets:
            if s:
                self._secrets.append(s)
                self.filter.add(s)

    def clean(self, text: str) -> str:
        return mask_url(redact(text, self._secrets))


def setup_logging(verbosity: int = 0, stream=None) -> Redactor:
    """Configure the ``toolkit`` logger: -1 quiet, 0 info, 1 info, 2+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity < 2 else logging.DEBUG
    redactor = Redactor()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor.filter)
    logger = logging.getLogger("toolkit")
    for h in list(logger.handlers):
        if getattr(h, "_toolkit", False):
            logger.removeHandler(h)
    handler._toolkit = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return redactor
