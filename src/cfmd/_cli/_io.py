"""File input and output of the ``cfmd`` command: path checks before any work, reading, atomic writing."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .._logging import logger
from .._validation import InvalidInputError
from ._console import EXIT_INPUT, EXIT_OUTPUT_EXISTS, CommandError, one_line

if TYPE_CHECKING:
    from mudata import MuData


def check_input_file(path: Path) -> None:
    if not path.exists():
        raise CommandError(f"input {path} does not exist", EXIT_INPUT)
    if not path.is_file():
        raise CommandError(f"input {path} is not a file", EXIT_INPUT)


def check_output_file(path: Path, *, overwrite: bool, what: str = "output") -> None:
    if path.is_dir():
        raise CommandError(f"{what} {path} is a folder; give the path of a .h5mu file", EXIT_OUTPUT_EXISTS)
    if path.exists() and not overwrite:
        raise CommandError(f"{what} {path} exists; pass --overwrite to replace it", EXIT_OUTPUT_EXISTS)


def check_output_dir(path: Path, *, overwrite: bool, what: str = "output folder") -> None:
    if path.exists() and not path.is_dir():
        raise CommandError(f"{what} {path} exists and is not a folder", EXIT_OUTPUT_EXISTS)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise CommandError(
            f"{what} {path} exists and is not empty; pass --overwrite to write into it", EXIT_OUTPUT_EXISTS
        )


def read_input(path: Path) -> MuData:
    import mudata

    logger.info("reading %s", path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mdata = mudata.read_h5mu(path)
    except Exception as error:  # any reader failure means the file is not a readable MuData (re-raised below)
        raise CommandError(
            f"cannot read {path} as a MuData .h5mu file ({type(error).__name__}: {one_line(error)})", EXIT_INPUT
        ) from error
    for warning in caught:  # the reader's warnings matter only for a file that could be read
        if not issubclass(warning.category, FutureWarning | DeprecationWarning):
            logger.warning("%s: %s", path, warning.message)
    return mdata


@contextlib.contextmanager
def about(path: Path) -> Iterator[None]:
    """Name the input file in the message of an input check that fails."""
    try:
        yield
    except InvalidInputError as error:
        raise CommandError(f"{path}: {error}", EXIT_INPUT) from error


def write_h5mu(mdata: MuData, path: Path) -> None:
    """Write atomically: to a temporary file next to ``path``, then rename (a failed write leaves no partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}.h5mu")
    try:
        mdata.write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("wrote %s", path)


def use_file_backend() -> None:
    """Draw figures without a display."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


def command_line(args: argparse.Namespace) -> str:
    return shlex.join(["cfmd", *args.argv])
