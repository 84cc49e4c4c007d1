"""Console of the ``cfmd`` command: exit codes, one-line errors, the logger on stderr, the training stack quietened."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import time
import traceback
import warnings
from collections.abc import Iterator

from .._logging import logger

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT_EXISTS = 4
EXIT_INTERRUPTED = 130

#: Every exit code of the ``cfmd`` command and its meaning.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "unexpected failure (a bug or an environment problem; rerun with --debug for the traceback)",
    EXIT_USAGE: "usage error: unknown option or invalid option value (argparse)",
    EXIT_INPUT: "input or data error: missing or unreadable input, a missing modality, key or column, invalid "
    "data (cfmd.InvalidInputError)",
    EXIT_OUTPUT_EXISTS: "an output path exists (pass --overwrite to replace it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Loggers of the training stack that are set to WARNING unless ``--verbose`` (banners such as "GPU available").
NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi")
#: Libraries whose FutureWarning / DeprecationWarning (developer-facing) are hidden unless ``--verbose``.
NOISY_WARNING_MODULES = r"(lightning|pytorch_lightning|scvi|anndata|mudata|torch)(\.|$)"


class CommandError(Exception):
    """A failure the command line reports as one line with a given exit code.

    Parameters
    ----------
    message
        What went wrong and, where possible, what to do.
    exit_code
        The process exit code (see :data:`EXIT_CODES`).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ConsoleFormatter(logging.Formatter):
    """``[cfmd 14:03:12] message``; warnings and errors carry their level."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f" {record.levelname.lower()}:" if record.levelno >= logging.WARNING else ""
        text = f"[cfmd {stamp}]{level} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class Console:
    """Routes the ``cfmd`` logger to stderr and quietens the training stack while a command runs.

    Parameters
    ----------
    verbosity
        ``"quiet"`` (warnings and errors), ``"normal"`` (progress) or ``"verbose"`` (debug messages, and the
        training stack's own messages and warnings).
    """

    def __init__(self, verbosity: str) -> None:
        self.verbosity = verbosity
        self._saved: list[tuple[logging.Logger, int, bool]] = []
        self._warnings = warnings.catch_warnings()
        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.setFormatter(_ConsoleFormatter())

    def __enter__(self) -> Console:
        level = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}[self.verbosity]
        self._saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(self._handler)
        logger.setLevel(level)
        logger.propagate = False
        self._warnings.__enter__()
        if self.verbosity != "verbose":
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=NOISY_WARNING_MODULES)
        return self

    def training_stack(self) -> None:
        """Import the training stack (scvi-tools, Lightning) and, unless verbose, quieten its banners.

        Called right before training: Lightning sets its loggers' levels when it is imported, so they can only be
        changed afterwards, and importing it takes seconds that a failing input check should not wait for.
        """
        import scvi  # noqa: F401 - imports Lightning, which configures its loggers on import

        if self.verbosity == "verbose" or len(self._saved) > 1:
            return
        for name in NOISY_LOGGERS:
            other = logging.getLogger(name)
            self._saved.append((other, other.level, other.propagate))
            other.setLevel(max(other.getEffectiveLevel(), logging.WARNING))
        try:
            from lightning.fabric.utilities.warnings import PossibleUserWarning
        except ImportError:  # pragma: no cover - Lightning always comes with scvi-tools
            return
        warnings.filterwarnings("ignore", category=PossibleUserWarning)

    @contextlib.contextmanager
    def library_output(self) -> Iterator[None]:
        """Send what the training stack prints on stdout (scvi-tools' early-stopping notes) to stderr.

        stdout stays for results; with ``--quiet`` the printed notes are dropped.
        """
        with contextlib.redirect_stdout(io.StringIO() if self.verbosity == "quiet" else sys.stderr):
            yield

    def __exit__(self, *exc_info) -> None:
        self._warnings.__exit__(*exc_info)
        logger.removeHandler(self._handler)
        for other, level, propagate in reversed(self._saved):
            other.setLevel(level)
            other.propagate = propagate
        self._saved.clear()


def one_line(text: object) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def fail(message: object, exit_code: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"cfmd: error: {one_line(message)}", file=sys.stderr, flush=True)
    return exit_code


def exit_status(code: object) -> int:
    """The integer status of a ``SystemExit`` code (``None`` is success, a message is a usage error)."""
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE
