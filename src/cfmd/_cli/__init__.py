"""The ``cfmd`` command line: ``cfmd demo``, ``cfmd impute``, ``cfmd benchmark``, ``cfmd prioritize`` and ``cfmd rescue``.

Made for pipelines: results go to files (and a short summary to stdout), progress and warnings to stderr, and every
failure ends with one line ``cfmd: error: <message>`` on stderr and a documented exit code (:data:`EXIT_CODES`);
a traceback is printed only with ``--debug``. Output paths are checked before any work is done.

The package splits the command line into one module per concern: :mod:`._parser` (arguments),
:mod:`._console` (exit codes, messages, logging), :mod:`._io` (path checks, reading, atomic writing) and one
module per command (:mod:`._demo`, :mod:`._impute`, :mod:`._benchmark`, :mod:`._prioritize`,
:mod:`._rescue`). The console script is ``cfmd._cli:main``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._validation import InvalidInputError
from ._console import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_EXISTS,
    EXIT_USAGE,
    CommandError,
    Console,
    exit_status,
    fail,
)
from ._parser import build_parser

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_EXISTS",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cfmd`` console script.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    The exit code (:data:`EXIT_CODES`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            args.parser.error("--quiet and --verbose exclude each other")
    except SystemExit as stop:  # --help, --version and usage errors
        return exit_status(stop.code)
    args.argv = argv
    verbosity = "verbose" if args.verbose else "quiet" if args.quiet else "normal"
    with Console(verbosity) as console:
        args.console = console
        try:
            return args.run(args)
        except SystemExit as stop:  # usage errors found by a command
            return exit_status(stop.code)
        except CommandError as error:
            return fail(error, error.exit_code, debug=args.debug)
        except InvalidInputError as error:
            return fail(error, EXIT_INPUT, debug=args.debug)
        except KeyboardInterrupt:
            return fail("interrupted", EXIT_INTERRUPTED, debug=args.debug)
        except Exception as error:  # noqa: BLE001 - the one place that turns any failure into an exit code
            hint = "" if args.debug else " (rerun with --debug for the traceback)"
            return fail(f"unexpected failure: {type(error).__name__}: {error}{hint}", EXIT_FAILURE, debug=args.debug)
