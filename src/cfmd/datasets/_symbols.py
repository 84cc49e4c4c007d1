"""Gene-symbol repair: R-mangled symbols and user-supplied alias tables.

R's ``make.names`` turns ``NKX6-2`` into ``NKX6.2`` and ``HLA-A`` into ``HLA.A`` and prefixes names that do not
start with a letter with ``X``; ``make.unique`` suffixes repeated names ``.1``, ``.2``. Matrices that went through
``read.table``/``data.frame`` in R carry such names. The shipped GRCh38 annotation has no previous or alias
symbols (columns: Ensembl ID, symbol, chromosome, start, end, band) and Geneformer's map is one symbol per
Ensembl ID, so HGNC alias information (``KIAA1199`` -> ``CEMIP``) is not available offline: it comes from a
user table (``gene_aliases=``).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from .._validation import InvalidInputError, describe_examples

__all__ = ["read_gene_aliases", "repair_r_symbol"]

_MAX_DOTS = 4
_UNIQUE_SUFFIX = re.compile(r"^(.+)\.(\d+)$")


def repair_r_symbol(label: str, known: Callable[[str], bool]) -> tuple[str, str] | None:
    """The symbol an R-mangled label stands for, or ``None``.

    Only labels that are not known themselves are repaired, and only into a known symbol:

    1. dots back to dashes (``NKX6.2`` -> ``NKX6-2``, ``HLA.DRB1`` -> ``HLA-DRB1``; with several dots every
       combination is tried, e.g. ``RP11.34P13.7`` -> ``RP11-34P13.7``; the repair must be unique);
    2. a leading ``X`` added by ``make.names`` removed (``X7SK`` -> ``7SK``), also combined with 1.;
    3. a ``make.unique`` suffix ``.<n>`` removed (``AGAP4.1`` -> ``AGAP4``, a repeat of ``AGAP4``).

    Parameters
    ----------
    label
        The feature label.
    known
        Whether a symbol is in the annotation.

    Returns
    -------
    ``(symbol, rule)`` with rule ``"dots_to_dashes"``, ``"x_prefix"`` or ``"make_unique_suffix"``; ``None`` when no
    rule gives a known symbol.

    Examples
    --------
    >>> repair_r_symbol("NKX6.2", {"NKX6-2"}.__contains__)
    ('NKX6-2', 'dots_to_dashes')
    """
    if not label or known(label):
        return None
    bases = [(label, None)]
    if label.startswith("X") and len(label) > 1 and not label[1].isalpha():
        bases.append((label[1:], "x_prefix"))
    for base, rule in bases:
        if rule is not None and known(base):
            return base, rule
        dots = [i for i, c in enumerate(base) if c == "."]
        if 0 < len(dots) <= _MAX_DOTS:
            hits = set()
            for n in range(1, len(dots) + 1):
                for chosen in itertools.combinations(dots, n):
                    chars = list(base)
                    for i in chosen:
                        chars[i] = "-"
                    candidate = "".join(chars)
                    if known(candidate):
                        hits.add(candidate)
            if len(hits) == 1:
                return hits.pop(), rule or "dots_to_dashes"
    match = _UNIQUE_SUFFIX.match(label)
    if match and known(match.group(1)):
        return match.group(1), "make_unique_suffix"
    return None


def read_gene_aliases(source) -> dict[str, str]:
    """A user alias table as ``{alias: symbol}``.

    Parameters
    ----------
    source
        A mapping ``{alias or previous symbol: current symbol}``, a :class:`~pandas.DataFrame` or a path to a
        TSV / CSV with columns ``alias`` and ``symbol`` (or, HGNC's download, ``Previous symbol`` / ``Alias
        symbol`` and ``Approved symbol``; several comma-separated aliases per row are split).
    """
    if isinstance(source, Mapping):
        pairs = {str(k).strip(): str(v).strip() for k, v in source.items()}
    else:
        if isinstance(source, pd.DataFrame):
            table, name = source, "DataFrame"
        elif isinstance(source, str | os.PathLike):
            path = Path(os.fspath(source)).expanduser()
            if not path.is_file():
                raise InvalidInputError(f"`gene_aliases`: {str(path)!r} does not exist; expected a TSV / CSV file.")
            name = path.name
            try:
                table = pd.read_csv(path, sep=None, engine="python", dtype=str)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
                raise InvalidInputError(f"`gene_aliases` ({name}): cannot read the table ({err}).") from None
        else:
            raise InvalidInputError(
                f"`gene_aliases` must be a mapping, a DataFrame or a path; got {type(source).__name__}."
            )
        target = next((c for c in ("symbol", "Approved symbol", "approved_symbol") if c in table.columns), None)
        aliases = [
            c
            for c in ("alias", "Previous symbol", "Alias symbol", "previous_symbol", "alias_symbol")
            if c in table.columns
        ]
        if target is None or not aliases:
            raise InvalidInputError(
                f"`gene_aliases` ({name}) must have an 'alias' and a 'symbol' column (or HGNC's 'Previous symbol' / "
                f"'Alias symbol' and 'Approved symbol'); found {describe_examples(list(table.columns), limit=12)}."
            )
        pairs = {}
        for column in aliases:
            for alias_cell, symbol in zip(table[column], table[target]):
                if pd.isna(alias_cell) or pd.isna(symbol):
                    continue
                for alias in str(alias_cell).split(","):
                    if alias.strip():
                        pairs.setdefault(alias.strip(), str(symbol).strip())
    bad = [k for k, v in pairs.items() if not k or not v]
    if bad:
        raise InvalidInputError(
            f"`gene_aliases` has empty aliases or symbols (e.g. {describe_examples(bad, limit=3)})."
        )
    return pairs
