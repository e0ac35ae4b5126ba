"""How every command line of the project fails: one line on stderr and a documented exit code.

Exit codes (docs/cli.md):

    0  success
    1  unexpected internal error (a bug: rerun with --debug for the traceback)
    2  bad input: a flag, config field, variant item or input file has an invalid value
    3  a missing optional dependency (the message names the extra to install)
    4  data not found or corrupt (elm_jax.data's DataNotFoundError / DataCorruptError)
    130  interrupted (Ctrl-C)

`run(main, argv, prog=...)` calls `main(argv)` and turns exceptions into that line and code;
`--debug` anywhere on the command line (removed before `main` sees it; it sets ELM_DEBUG=1) or
`ELM_DEBUG=1` lets the traceback through instead: a handler inside `main` that prints its own
message re-raises when `debug_requested()`. `ArgumentParser` is argparse's with a one-line usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MISSING_DEPENDENCY = 3
EXIT_DATA = 4
EXIT_INTERRUPTED = 130
DATA_ERRORS = ("elm_jax.data.common.DataNotFoundError", "elm_jax.data.common.DataCorruptError")
DEBUG_ENV = "ELM_DEBUG"
DEBUG_FLAG = "--debug"


class UsageError(ValueError):
    """Bad input at the command line: the message names the flag or file, the value, what is valid."""


class MissingDependencyError(ImportError):
    """An optional dependency is not installed (the message says which extra provides it)."""


def exit_code(err: BaseException) -> int:
    """The documented exit code for an exception that reached the command line."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    # By name, so that reporting an error never imports the data layer (h5py, ...).
    if any(f"{c.__module__}.{c.__name__}" in DATA_ERRORS for c in type(err).__mro__):
        return EXIT_DATA
    if isinstance(err, ImportError):
        return EXIT_MISSING_DEPENDENCY
    if isinstance(err, (ValueError, OSError)):
        return EXIT_USAGE
    return EXIT_INTERNAL


def one_line(err: BaseException) -> str:
    """The exception's message on one line (with the file name of an OSError)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return text


def debug_requested(argv: Sequence[str] = ()) -> bool:
    """True when `--debug` is among the arguments or ELM_DEBUG is set to a true value."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return DEBUG_FLAG in argv or env not in ("", "0", "false", "no")


def run(
    main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, prog: str
) -> int:
    """`main(argv)` (argv without `--debug`; default sys.argv[1:]) with the project's failures.

    Returns the exit code: main's return value (None: 0), or the code of the exception it raised
    after printing `prog: error: MESSAGE` as one line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    args = [a for a in args if a != DEBUG_FLAG]
    if debug:  # handlers inside `main` (and worker processes) see it through the environment
        os.environ[DEBUG_ENV] = "1"
    try:
        return int(main(args) or 0)
    except SystemExit:
        raise
    except BaseException as err:
        if debug:
            raise
        code = exit_code(err)
        text = one_line(err)
        if code == EXIT_INTERNAL:
            text = f"internal error {type(err).__name__}: {text} (rerun with {DEBUG_FLAG})"
        print(f"{prog}: error: {text}", file=sys.stderr)
        return code


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors as one line (`prog: error: MESSAGE (see --help)`), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (must be >= 1)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (must be > 0)") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value:g} must be a finite number > 0")
    return value


__all__ = [
    "EXIT_DATA",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING_DEPENDENCY",
    "EXIT_OK",
    "EXIT_USAGE",
    "ArgumentParser",
    "MissingDependencyError",
    "UsageError",
    "debug_requested",
    "exit_code",
    "one_line",
    "positive_int",
    "positive_float",
    "run",
]
