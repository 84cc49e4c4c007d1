"""Stratified patient bootstrap: confidence intervals, paired differences, Bonferroni.

The paper (Section 3.5) reports every :math:`R^2` and C-index with a 95% confidence interval from 1,000 bootstrap
resamples of the test patients, stratified by cancer type and event indicator, and compares methods by paired
bootstrap differences with Bonferroni-adjusted p-values (Tables 2 and 3). This module provides those pieces as pure
functions on arrays:

- :func:`stratified_bootstrap_indices` draws the resamples (patients with replacement, within each stratum);
- :func:`bootstrap_ci` / :func:`paired_bootstrap` evaluate any statistic on them (percentile intervals);
- per-slice :math:`R^2` intervals from sufficient statistics live in :mod:`cfmd.metrics._r2_bootstrap`;
- :func:`bonferroni` adjusts a family of p-values.

Pass the same ``indices`` to several calls to evaluate every method on the same resamples (what a paired
comparison needs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._validation import InvalidInputError, check_positive_int, describe_examples

__all__ = [
    "BootstrapResult",
    "PairedBootstrapResult",
    "bonferroni",
    "bootstrap_ci",
    "bootstrap_p_value",
    "make_strata",
    "paired_bootstrap",
    "paired_difference",
    "percentile_interval",
    "resampled_statistic",
    "resolve_bootstrap_indices",
    "stratified_bootstrap_indices",
]


# ---------------------------------------------------------------------------------------------------- resampling
def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(
            f"`seed` must be a non-negative integer or a numpy.random.Generator (a seed fixes every result); "
            f"got {seed!r}."
        )
    return np.random.default_rng(int(seed))


def _check_labels(values, field: str) -> np.ndarray:
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(f"`{field}` must be 1-dimensional (one label per patient); got shape {arr.shape}.")
    missing = pd.isna(arr)
    if missing.any():
        raise InvalidInputError(
            f"`{field}` has {int(missing.sum())} missing label(s) (rows "
            f"{describe_examples(np.flatnonzero(missing).tolist())}); every patient needs a stratum."
        )
    return arr


def make_strata(*labels) -> np.ndarray:
    """Combine per-patient labels into one stratum code per patient.

    Parameters
    ----------
    *labels
        One or more equally long 1-d arrays of labels, e.g. ``cancer_type`` and ``os_event``: patients share a
        stratum when all their labels are equal.

    Returns
    -------
    ``(n_patients,)`` integer stratum codes, numbered in order of first appearance.

    Examples
    --------
    >>> make_strata(["BRCA", "LUAD", "BRCA", "BRCA"], [1, 0, 0, 1])
    array([0, 1, 2, 0])
    """
    if not labels:
        raise InvalidInputError("make_strata needs at least one array of labels.")
    arrays = [_check_labels(lab, f"labels[{i}]") for i, lab in enumerate(labels)]
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise InvalidInputError(
            f"The label arrays must have one entry per patient; got lengths {[len(a) for a in arrays]}."
        )
    frame = pd.DataFrame({i: pd.Series(a, dtype=object) for i, a in enumerate(arrays)})
    return frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy(dtype=np.intp)


def stratified_bootstrap_indices(strata, n_boot: int = 1000, *, seed: int | np.random.Generator) -> np.ndarray:
    """Bootstrap resamples of patients, drawn with replacement within each stratum.

    Column ``i`` of every resample holds a patient of the same stratum as patient ``i``, so each resample keeps the
    stratum sizes of the original sample exactly (the paper stratifies by cancer type and event indicator; build
    such strata with :func:`make_strata`).

    Parameters
    ----------
    strata
        ``(n_patients,)`` stratum label of each patient (any hashable labels, no missing values).
    n_boot
        Number of resamples.
    seed
        Seed of the random generator (or a :class:`numpy.random.Generator`, which is advanced). The same seed and
        strata give the same resamples.

    Returns
    -------
    ``(n_boot, n_patients)`` integer array: row ``b`` lists the patients (positions) of resample ``b``.
    """
    strata = _check_labels(strata, "strata")
    n_boot = check_positive_int(n_boot, "n_boot")
    rng = _rng(seed)
    if len(strata) == 0:
        raise InvalidInputError("`strata` is empty: expected one label per patient.")
    codes = make_strata(strata)
    out = np.empty((n_boot, len(codes)), dtype=np.intp)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for members in np.split(order, bounds):
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        out[:, members] = members[draws]
    return out


def _check_indices(indices, n: int) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise InvalidInputError(
            f"`indices` must be an integer (n_boot, n_patients) array from stratified_bootstrap_indices; "
            f"got dtype {arr.dtype} and shape {arr.shape}."
        )
    if arr.shape[1] != n:
        raise InvalidInputError(f"`indices` resamples {arr.shape[1]} patients but the data have {n}.")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InvalidInputError(f"`indices` must lie in [0, {n}); found values in [{arr.min()}, {arr.max()}].")
    if arr.shape[0] == 0:
        raise InvalidInputError("`indices` holds no resamples.")
    return arr


def resolve_bootstrap_indices(indices, strata, n_boot: int, seed, n: int) -> np.ndarray:
    """Either the caller's resamples (validated) or fresh stratified ones: exactly one of ``indices`` / ``strata``.

    Parameters
    ----------
    indices
        Precomputed ``(n_boot, n)`` resamples, or ``None``.
    strata
        ``(n,)`` stratum labels (with ``seed``), or ``None`` when ``indices`` is given.
    n_boot
        Number of resamples to draw from ``strata``.
    seed
        Seed of the resampling; required with ``strata``.
    n
        Number of patients of the data.

    Returns
    -------
    ``(n_boot, n)`` integer resamples (:func:`stratified_bootstrap_indices`).
    """
    if indices is not None:
        if strata is not None:
            raise InvalidInputError("Pass either `indices` (precomputed resamples) or `strata` (and `seed`), not both.")
        return _check_indices(indices, n)
    if strata is None:
        raise InvalidInputError(
            "Pass `strata` (one label per patient, e.g. make_strata(cancer_type, event)) and `seed`, or precomputed "
            "`indices`."
        )
    if seed is None:
        raise InvalidInputError("`seed` is required with `strata`: a seed fixes every bootstrap result.")
    strata = _check_labels(strata, "strata")
    if len(strata) != n:
        raise InvalidInputError(f"`strata` has {len(strata)} labels but the data have {n} patients.")
    return stratified_bootstrap_indices(strata, n_boot, seed=seed)


def _check_ci(ci) -> float:
    try:
        value = float(ci)
    except (TypeError, ValueError):
        raise InvalidInputError(f"`ci` must be a number in (0, 1), e.g. 0.95; got {ci!r}.") from None
    if not 0 < value < 1:
        raise InvalidInputError(f"`ci` must be in (0, 1), e.g. 0.95; got {ci!r}.")
    return value


def percentile_interval(distribution, ci: float) -> tuple[float, float]:
    """Percentile interval of resampled values, over the finite ones.

    Parameters
    ----------
    distribution
        The statistic on each resample (non-finite values are left out).
    ci
        Confidence level in (0, 1).

    Returns
    -------
    The quantiles ``(1 - ci) / 2`` and ``(1 + ci) / 2`` of the finite values; ``(nan, nan)`` when there are none.
    """
    distribution = np.asarray(distribution, dtype=float)
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return np.nan, np.nan
    low, high = np.quantile(finite, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate and percentile bootstrap interval of a statistic.

    Attributes
    ----------
    estimate
        The statistic on the original sample.
    ci_low, ci_high
        The percentile interval (quantiles ``(1 - ci) / 2`` and ``(1 + ci) / 2`` of the finite resampled values).
    ci
        Confidence level.
    n_boot
        Number of resamples.
    n_invalid
        Resamples where the statistic was not finite (e.g. undefined); they are left out of the interval.
    distribution
        ``(n_boot,)`` the statistic on each resample.
    """

    estimate: float
    ci_low: float
    ci_high: float
    ci: float
    n_boot: int
    n_invalid: int
    distribution: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields (no distribution), e.g. for a row of a results table."""
        return {k: getattr(self, k) for k in ("estimate", "ci_low", "ci_high", "ci", "n_boot", "n_invalid")}


@dataclass(frozen=True)
class PairedBootstrapResult:
    """A paired bootstrap comparison of two methods on the same patients and resamples.

    Attributes
    ----------
    delta
        ``statistic(a) - statistic(b)`` on the original sample.
    ci_low, ci_high
        Percentile interval of the resampled differences.
    p_value
        Two-sided bootstrap p-value of ``delta == 0`` (:func:`bootstrap_p_value`), unadjusted.
    estimate_a, estimate_b
        The statistic of each method on the original sample.
    ci
        Confidence level.
    n_boot
        Number of resamples.
    n_invalid
        Resamples where either statistic was not finite (left out of the interval and the p-value).
    distribution
        ``(n_boot,)`` resampled differences.
    """

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    estimate_a: float
    estimate_b: float
    ci: float
    n_boot: int
    n_invalid: int
    distribution: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields (no distribution), e.g. for a row of a results table."""
        keys = ("delta", "ci_low", "ci_high", "p_value", "estimate_a", "estimate_b", "ci", "n_boot", "n_invalid")
        return {k: getattr(self, k) for k in keys}


# ---------------------------------------------------------------------------------------------------- generic bootstrap
def _as_arrays(arrays: Sequence, field: str) -> tuple[list[np.ndarray], int]:
    out = [a.to_numpy() if isinstance(a, pd.DataFrame | pd.Series) else np.asarray(a) for a in arrays]
    if not out:
        raise InvalidInputError(f"`{field}` is empty: pass the arrays the statistic takes.")
    bad = [i for i, a in enumerate(out) if a.ndim == 0]
    if bad:
        raise InvalidInputError(f"`{field}` entries {bad} are scalars; every input needs one entry per patient.")
    lengths = [a.shape[0] for a in out]
    if len(set(lengths)) > 1:
        raise InvalidInputError(f"The arrays in `{field}` must have one entry per patient; got lengths {lengths}.")
    return out, lengths[0]


def resampled_statistic(
    statistic: Callable[..., float], arrays: Sequence[np.ndarray], indices: np.ndarray
) -> np.ndarray:
    """``statistic`` on every resample: the rows (first axis) of every array in ``arrays`` resampled together.

    Parameters
    ----------
    statistic
        ``statistic(*arrays) -> float``.
    arrays
        Validated inputs of ``statistic``, each with one row per patient.
    indices
        ``(n_boot, n_patients)`` resamples.

    Returns
    -------
    ``(n_boot,)`` float array (non-finite where the statistic is undefined on a resample).
    """
    return np.array([float(statistic(*(a[idx] for a in arrays))) for idx in indices], dtype=float)


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays,
    strata=None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = None,
    indices=None,
) -> BootstrapResult:
    """Point estimate and stratified percentile bootstrap interval of any statistic.

    Parameters
    ----------
    statistic
        ``statistic(*arrays) -> float``, e.g. ``concordance_index`` or ``multivariate_r2``. Called once on the
        original arrays and once per resample with the rows (first axis) of every array resampled together.
    *arrays
        The inputs of ``statistic``, each with one entry (row) per patient.
    strata
        ``(n_patients,)`` stratum labels (e.g. :func:`make_strata` of cancer type and event); resampling keeps
        each stratum's size. Needed unless ``indices`` is given.
    n_boot
        Number of resamples (the paper uses 1,000).
    ci
        Confidence level of the interval.
    seed
        Seed of the resampling; required with ``strata``.
    indices
        Precomputed resamples (:func:`stratified_bootstrap_indices`) instead of ``strata``/``n_boot``/``seed``;
        pass the same ones to every method that will be compared.

    Returns
    -------
    :class:`BootstrapResult` with the estimate, the percentile interval and the resampled values. Resamples where
    the statistic is not finite are counted in ``n_invalid`` and left out of the interval.
    """
    if not callable(statistic):
        raise InvalidInputError(f"`statistic` must be callable; got {type(statistic).__name__}.")
    data, n = _as_arrays(arrays, "arrays")
    ci = _check_ci(ci)
    indices = resolve_bootstrap_indices(indices, strata, n_boot, seed, n)
    estimate = float(statistic(*data))
    distribution = resampled_statistic(statistic, data, indices)
    low, high = percentile_interval(distribution, ci)
    return BootstrapResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        ci=ci,
        n_boot=len(indices),
        n_invalid=int((~np.isfinite(distribution)).sum()),
        distribution=distribution,
    )


def bootstrap_p_value(distribution) -> float:
    r"""Two-sided bootstrap p-value of a zero difference, from the resampled differences.

    .. math::

        p = \min\Big(1,\; 2 \min\Big(\frac{1 + \#\{\delta_b \le 0\}}{B + 1}, \frac{1 + \#\{\delta_b \ge 0\}}{B + 1}\Big)\Big)

    over the :math:`B` finite resampled differences :math:`\delta_b`. This inverts the percentile interval: ``p <
    1 - ci`` exactly when the two-sided percentile interval at level ``ci`` excludes 0 (up to the ``+1``
    correction, which keeps ``p > 0``). With :math:`B` resamples the smallest attainable p-value is
    :math:`2 / (B + 1)` (about 0.002 for 1,000 resamples).

    Parameters
    ----------
    distribution
        Resampled differences (non-finite values are ignored).

    Returns
    -------
    The p-value (NaN when no resampled difference is finite).
    """
    d = np.asarray(distribution, dtype=float).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0:
        return np.nan
    below = (1 + np.count_nonzero(d <= 0)) / (d.size + 1)
    above = (1 + np.count_nonzero(d >= 0)) / (d.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def paired_bootstrap(
    statistic: Callable[..., float],
    a_inputs: Sequence,
    b_inputs: Sequence,
    *,
    strata=None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = None,
    indices=None,
) -> PairedBootstrapResult:
    """Paired bootstrap difference of a statistic between two methods evaluated on the same patients.

    Each resample draws one set of patients and evaluates ``statistic`` on both methods' inputs for those
    patients, so the difference's interval accounts for the correlation between the methods (the paper's "paired
    bootstrap analysis", e.g. Delta C-index = -0.005 [-0.018, 0.008] in Table 2).

    Parameters
    ----------
    statistic
        ``statistic(*inputs) -> float``.
    a_inputs
        The inputs of method A, e.g. ``(time, event, risk_a)``; each with one entry per patient.
    b_inputs
        The inputs of method B, e.g. ``(time, event, risk_b)``, for the same patients in the same order.
    strata
        ``(n_patients,)`` stratum labels; needed unless ``indices`` is given.
    n_boot
        Number of resamples.
    ci
        Confidence level of the interval.
    seed
        Seed of the resampling; required with ``strata``.
    indices
        Precomputed resamples instead of ``strata``/``n_boot``/``seed``.

    Returns
    -------
    :class:`PairedBootstrapResult`: ``delta = statistic(A) - statistic(B)``, its percentile interval and the
    two-sided bootstrap p-value (:func:`bootstrap_p_value`; adjust families of comparisons with
    :func:`bonferroni`).
    """
    if not callable(statistic):
        raise InvalidInputError(f"`statistic` must be callable; got {type(statistic).__name__}.")
    a_data, n_a = _as_arrays(list(a_inputs), "a_inputs")
    b_data, n_b = _as_arrays(list(b_inputs), "b_inputs")
    if n_a != n_b:
        raise InvalidInputError(f"`a_inputs` and `b_inputs` must describe the same patients; got {n_a} and {n_b} rows.")
    ci = _check_ci(ci)
    indices = resolve_bootstrap_indices(indices, strata, n_boot, seed, n_a)
    estimate_a, estimate_b = float(statistic(*a_data)), float(statistic(*b_data))
    distribution = resampled_statistic(statistic, a_data, indices) - resampled_statistic(statistic, b_data, indices)
    return _paired_result(estimate_a, estimate_b, distribution, ci)


def paired_difference(a: BootstrapResult, b: BootstrapResult) -> PairedBootstrapResult:
    """Paired comparison of two :class:`BootstrapResult` computed on the same resamples (``indices``).

    Evaluate each method once with :func:`bootstrap_ci` on shared ``indices``, then compare any pair without
    recomputing the statistic: the difference of the two distributions is the paired bootstrap distribution.

    Parameters
    ----------
    a, b
        The results of method A and of method B, from the same resamples and confidence level.

    Returns
    -------
    :class:`PairedBootstrapResult` of ``A - B`` (what :func:`paired_bootstrap` returns for the same inputs).
    """
    if len(a.distribution) != len(b.distribution) or a.ci != b.ci:
        raise InvalidInputError(
            "paired_difference needs two results from the same resamples and confidence level; got "
            f"{len(a.distribution)} and {len(b.distribution)} resamples at ci={a.ci} and ci={b.ci}."
        )
    return _paired_result(a.estimate, b.estimate, a.distribution - b.distribution, a.ci)


def _paired_result(estimate_a: float, estimate_b: float, distribution: np.ndarray, ci: float) -> PairedBootstrapResult:
    low, high = percentile_interval(distribution, ci)
    return PairedBootstrapResult(
        delta=estimate_a - estimate_b,
        ci_low=low,
        ci_high=high,
        p_value=bootstrap_p_value(distribution),
        estimate_a=estimate_a,
        estimate_b=estimate_b,
        ci=ci,
        n_boot=len(distribution),
        n_invalid=int((~np.isfinite(distribution)).sum()),
        distribution=distribution,
    )


def bonferroni(p_values):
    """Bonferroni adjustment of a family of p-values: ``min(1, p * m)`` for ``m`` comparisons.

    Parameters
    ----------
    p_values
        The unadjusted p-values (array-like, :class:`~pandas.Series` or mapping), each in [0, 1]; ``m`` is their
        number.

    Returns
    -------
    The adjusted p-values, as the same kind of container (a Series keeps its index, a mapping its keys; anything
    else becomes a :class:`numpy.ndarray`).

    Examples
    --------
    >>> bonferroni([0.01, 0.2, 0.04])
    array([0.03, 0.6 , 0.12])
    """
    if isinstance(p_values, Mapping):
        keys = list(p_values)
        adjusted = bonferroni(np.array([p_values[k] for k in keys], dtype=float))
        return dict(zip(keys, adjusted.tolist()))
    if isinstance(p_values, pd.Series):
        return pd.Series(bonferroni(p_values.to_numpy(dtype=float)), index=p_values.index, name=p_values.name)
    try:
        p = np.asarray(p_values, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInputError("`p_values` must be numbers in [0, 1].") from None
    if p.size == 0:
        return p
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise InvalidInputError(
            f"`p_values` must be in [0, 1] (no NaN); found {int(bad.sum())} invalid value(s), e.g. {p[bad].flat[0]!r}."
        )
    return np.minimum(1.0, p * p.size)
