"""The ``toolkit`` command line. One module per sub-command under ``toolkit.cli``; each exposes
``register(subparsers)`` which adds its parser and sets ``func`` to a handler returning an exit
code. Heavy libraries are imported inside handlers so ``toolkit --help`` stays fast.

Exit codes everywhere: 0 ok, 1 a problem was found (failed checks, undelivered events, gaps),
2 unusable input or config. User errors print one line (no traceback); ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from ..errors import ToolkitError
from ..logs import setup_logging
from ..runtime import freeze_imports, tune_process

__all__ = ["entry", "main", "build_parser"]

# Sub-command modules are discovered: every ``cmd_<name>.py`` in this package. Each sets ``ORDER``
# (an int) for its place in --help, so adding a command touches no shared file.
def _command_modules() -> list:
    import pkgutil

    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_"))
    modules = [importlib.import_module(f".{n}", __name__) for n in names]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


log = logging.getLogger("toolkit")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="toolkit",
        description="Verify, replay and reconcile Datafly Signal -> Optimizely event delivery.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        module.register(sub)
    return parser


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that cleanup runs as for Ctrl-C (worker processes
    shut down, the ledger records what finished) before the command exits 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _on_sigterm() -> object:
    """Install the SIGTERM handler when this is the main thread (else leave signals alone)."""
    try:
        return signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding application): its signals, its rules
        return None


def entry() -> int:
    """The ``toolkit`` program (console script, ``python -m toolkit``): :func:`main` in a process
    set up for bulk work (:mod:`toolkit.runtime`) before numpy and pyarrow load."""
    tune_process()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    previous = _on_sigterm()
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    redactor = setup_logging(verbosity=-1 if args.quiet else args.verbose)
    freeze_imports()
    try:
        return int(args.func(args, redactor) or 0)
    except ToolkitError as exc:
        if args.debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"toolkit {args.command}: error: {redactor.clean(line)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"toolkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"toolkit {args.command}: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 1
    except OSError as exc:  # a path the command cannot read or write (permissions, read-only, full disk)
        if args.debug or not exc.filename:
            raise
        print(redactor.clean(f"toolkit {args.command}: error: {exc.filename}: {exc.strerror or exc}; "
                             "choose a path you can write to (check permissions and free space)"), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
