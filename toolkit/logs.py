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


class _OneLine(logging.Formatter):
    """A record on one line: an exception's type and message appended, never its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" ({type(exc).__name__}: {exc})".replace("\n", " ")
        return line


def _quiet_others(redactor: Redactor, stream, verbosity: int) -> None:
    """Warnings of other libraries (e.g. the Jupyter kernel client's zmq/tornado loggers when a
    notebook fails) on one line each, instead of Python's last-resort handler printing whole
    tracebacks; with -vv they keep their tracebacks. Left alone when the root logger already has
    handlers (an application or a test harness configured logging)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_toolkit", False):
            root.removeHandler(h)
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if verbosity >= 2 else _OneLine(fmt))
    handler.addFilter(redactor.filter)
    handler.setLevel(logging.WARNING)
    handler._toolkit = True  # type: ignore[attr-defined]
    root.addHandler(handler)


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
    _quiet_others(redactor, stream, verbosity)
    return redactor
