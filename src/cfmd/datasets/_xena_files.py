"""Files of :func:`~cfmd.datasets.read_xena`: existence checks, gzip detection, missing-value spellings."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from .._validation import (
    InvalidInputError,
)


class MissingFileError(InvalidInputError, FileNotFoundError):
    """An input file does not exist (both an :class:`InvalidInputError` and a :class:`FileNotFoundError`)."""


_NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _existing_file(source, field: str) -> Path:
    path = Path(os.fspath(source)).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise MissingFileError(f"`{field}`: {str(path)!r} {what}; expected a tab-separated file (plain or .gz).")
    return path


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_text(path: Path):
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")
