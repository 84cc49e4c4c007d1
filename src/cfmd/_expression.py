"""Declared scales of RNA matrices and the checks that hold users to their declaration.

TCGA RNA comes as raw counts (GDC), as log2(normalised + 1) (UCSC Xena's RSEM/FPKM matrices) or as
z-scores / centred log values (cBioPortal, some Xena hubs). cfmd never guesses: the user declares the
scale, and a declaration the values contradict is an error.

This module is also the one home of the expression transforms every model and baseline reads (numpy arrays and
torch tensors alike; torch is never imported here, so ``import cfmd`` stays light):

- :func:`log_normalise`: ``log1p`` of counts per 10k (:data:`COUNTS_TARGET_SUM`) for ``"counts"``, the values as
  given for ``"log2"`` / ``"zscore"``;
- :func:`fingerprint_log_expression`: the paper's ``log2(x + 1)`` of counts for the ESM-2 fingerprint.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ._validation import InvalidInputError, check_choice, check_counts, check_finite

__all__ = [
    "COUNTS_TARGET_SUM",
    "RNA_SCALES",
    "check_expression_scale",
    "fingerprint_log_expression",
    "log_normalise",
]

#: Accepted RNA scales: ``counts`` (raw read counts, negative-binomial likelihood), ``log2``
#: (log2(x + 1) of normalised expression, Gaussian likelihood), ``zscore`` (standardised or centred
#: log expression, Gaussian likelihood).
RNA_SCALES = ("counts", "log2", "zscore")
#: Counts are scaled to this total per patient before ``log1p`` (counts per 10k).
COUNTS_TARGET_SUM = 1e4


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def log_normalise(x, rna_scale: str, *, dtype=np.float64):
    """Log-normalised expression: ``log1p(counts per 10k)`` for ``"counts"``, the values as given otherwise.

    Parameters
    ----------
    x
        ``(n_patients, n_genes)`` expression: a torch tensor (computed in its own dtype, on its device) or a dense
        / sparse array (returned dense, as ``dtype``).
    rna_scale
        One of :data:`RNA_SCALES`.
    dtype
        Output dtype for array input (ignored for tensors).

    Returns
    -------
    The transformed matrix, of the input's kind (tensor in, tensor out). Totals below 1 count are taken as 1 (a
    patient without counts stays all zero).
    """
    if _is_tensor(x):
        if rna_scale == "counts":
            return (x / x.sum(dim=1, keepdim=True).clamp_min(1.0) * COUNTS_TARGET_SUM).log1p()
        return x
    X = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=dtype)
    if rna_scale != "counts":
        return X
    totals = np.maximum(X.sum(axis=1, keepdims=True), 1.0)
    return np.log1p(X / totals * COUNTS_TARGET_SUM)


def fingerprint_log_expression(x, rna_scale: str):
    r"""The paper's :math:`\log_2(x + 1)` of counts, the input of the ESM-2 fingerprint; log scales as given.

    ``x`` is a torch tensor or a dense numpy array; the result has the input's kind and dtype.
    """
    if rna_scale != "counts":
        return x
    return (x + 1.0).log2() if _is_tensor(x) else np.log2(x + 1.0)


def _values(X) -> np.ndarray:
    return np.asarray(X.data if sparse.issparse(X) else X)


def check_expression_scale(X, scale: str, field: str) -> None:
    """Check that the values of ``X`` are compatible with the declared ``scale``.

    Parameters
    ----------
    X
        Patients x genes matrix (dense or sparse).
    scale
        One of :data:`RNA_SCALES`.
    field
        Name of the field for error messages (e.g. ``"mdata['rna'].X"``).
    """
    check_choice(scale, "rna_scale", RNA_SCALES)
    if scale == "counts":
        check_counts(X, field, require_integer=False)
        values = _values(X)
        fractional = np.abs(values - np.round(values)) > 1e-6 if values.dtype.kind == "f" else np.zeros(0, bool)
        if fractional.any():
            raise InvalidInputError(
                f"{field} was declared `rna_scale='counts'` but holds {int(fractional.sum())} non-integer value(s) "
                f"(e.g. {values[fractional][0]:g}); integer raw counts were expected. Declare the matrix's scale instead: "
                "`rna_scale='log2'` for log2(x + 1) expression, `rna_scale='zscore'` for centred values; normalised "
                "linear values (TPM, RSEM normalised) need log2(x + 1) first."
            )
        return
    check_finite(X, field)
    values = _values(X)
    if values.size == 0:
        return
    vmin, vmax = float(values.min()), float(values.max())
    is_integer = values.dtype.kind in "iub" or bool(np.all(values == np.round(values)))
    if scale == "log2":
        if vmin < -1e-6:
            raise InvalidInputError(
                f"{field} was declared as log2(x + 1) expression but has negative values (minimum {vmin:g}); "
                "centred or standardised values need `rna_scale='zscore'`."
            )
        if vmax > 40 or (is_integer and vmax > 100):
            raise InvalidInputError(
                f"{field} was declared as log2(x + 1) expression but reaches {vmax:g}, which is not a log2 value; "
                "raw counts need `rna_scale='counts'`."
            )
    elif scale == "zscore" and vmin >= 0 and is_integer and vmax > 1:
        raise InvalidInputError(
            f"{field} was declared as z-scores but holds only non-negative integers (maximum {vmax:g}), "
            "i.e. raw counts; declare `rna_scale='counts'`."
        )
