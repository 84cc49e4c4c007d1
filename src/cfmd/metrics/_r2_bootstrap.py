"""Per-slice R^2 and Pearson r on bootstrap resamples, from sufficient statistics (the paper's "R^2 [95% CI]").

:func:`resampled_slice_metrics` gives the rows of :func:`~cfmd.metrics.slice_metrics` on every resample without a
pass over the ``(patients x dims)`` matrices per resample; :func:`bootstrap_slice_metrics` turns them into
percentile intervals. The resamples and intervals are those of :mod:`cfmd.metrics._bootstrap`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .._docs import doc_params
from .._layout import LatentLayout
from ._bootstrap import _check_ci, _check_indices, percentile_interval, resolve_bootstrap_indices
from ._r2 import _metric_rows, _pearson_from_sums, _prepare, _r2_from_sums, slice_metrics

__all__ = ["bootstrap_slice_metrics", "resampled_slice_metrics"]

_LATENTS_PARAMS = """\
truth
    ``(n_patients, n_dims)`` observed latent (finite rows only).
prediction
    ``(n_patients, n_dims)`` predicted latent of the same patients, in the same order.
layout
    The latent layout."""

#: Upper bound on the number of elements of one (resamples x patients) block of counts, to bound memory.
_BLOCK_ELEMENTS = 2_000_000


# ---------------------------------------------------------------------------------------------------- slice R^2
def _count_blocks(indices: np.ndarray, n: int, width: int) -> Iterable[tuple[slice, np.ndarray]]:
    """Resample counts ``(block, n)`` (how often each patient is drawn), block by block to bound memory."""
    block = max(1, min(len(indices), _BLOCK_ELEMENTS // max(n, width, 1)))
    for start in range(0, len(indices), block):
        rows = indices[start : start + block]
        offsets = (np.arange(len(rows)) * n)[:, None]
        counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * n).reshape(len(rows), n)
        yield slice(start, start + len(rows)), counts.astype(float)


def _resampled_arrays(
    truth: np.ndarray,
    prediction: np.ndarray,
    layout: LatentLayout,
    names: list[str],
    macro: list[str],
    indices: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(n_boot, n_rows)`` R^2 and Pearson r of every row of the metric table, from sufficient statistics.

    With ``w`` the counts of a resample (patient ``i`` drawn ``w_i`` times) and ``y`` the truth centred on the
    full-sample column mean (variance is shift-invariant; centring keeps the subtraction below well conditioned):
    ``SSE_s = w . sum_{j in s} (y_ij - yhat_ij)^2`` and ``SST_s = w . sum_{j in s} y_ij^2 - sum_{j in s} (w . y_j)^2 / n``.
    """
    n = truth.shape[0]
    all_names = layout.names
    member = np.zeros((layout.n_dims, len(all_names)))
    for k, s in enumerate(layout):
        member[s.as_slice, k] = 1.0
    centred = truth - truth.mean(axis=0)
    sq_err = ((truth - prediction) ** 2) @ member
    sq_tot = (centred**2) @ member
    one_d = [n_ for n_ in names if layout[n_].dim == 1]
    pairs = {}
    for name in one_d:
        j = layout[name].start
        x, y = centred[:, j], prediction[:, j] - prediction[:, j].mean()
        pairs[name] = np.stack([x, y, x * x, y * y, x * y], axis=1)

    n_rows = len(names) + bool(macro) + 1
    r2 = np.empty((len(indices), n_rows))
    pearson = np.full((len(indices), n_rows), np.nan)
    position = {name: k for k, name in enumerate(all_names)}
    for rows, w in _count_blocks(indices, n, layout.n_dims):
        sse = w @ sq_err
        sst = w @ sq_tot - ((w @ centred) ** 2 / n) @ member
        per_slice = _r2_from_sums(sse, sst)
        cols = [per_slice[:, position[name]] for name in names]
        if macro:
            cols.append(per_slice[:, [position[m] for m in macro]].mean(axis=1))
        cols.append(_r2_from_sums(sse.sum(axis=1), sst.sum(axis=1)))
        r2[rows] = np.column_stack(cols)
        for name in one_d:
            sums = w @ pairs[name]
            pearson[rows, names.index(name)] = _pearson_from_sums(float(n), *sums.T)
    return r2, pearson


@doc_params(latents=_LATENTS_PARAMS)
def resampled_slice_metrics(
    truth,
    prediction,
    layout: LatentLayout,
    indices,
    *,
    slices: str | Iterable[str] | None = None,
    macro_slices: Iterable[str] | None = None,
    prediction_layout: LatentLayout | None = None,
) -> pd.DataFrame:
    """The rows of :func:`slice_metrics` on every bootstrap resample, computed from sufficient statistics.

    Equal (to rounding) to calling :func:`slice_metrics` on ``truth[idx]``, ``prediction[idx]`` for every row
    ``idx`` of ``indices``, but each resample costs a weighted sum over patients instead of a pass over the
    ``(patients x dims)`` matrices. Use it for paired :math:`R^2` comparisons: the same ``indices`` for two
    predictions give resample-by-resample differences.

    Parameters
    ----------
    {latents}
    indices
        ``(n_boot, n_patients)`` resamples from :func:`stratified_bootstrap_indices`.
    slices, macro_slices, prediction_layout
        As in :func:`slice_metrics`.

    Returns
    -------
    A long :class:`~pandas.DataFrame` with columns ``resample``, ``slice``, ``kind``, ``r2``, ``pearson_r``
    (``n_boot`` times the rows of :func:`slice_metrics`).
    """
    truth, prediction, names, macro = _prepare(truth, prediction, layout, slices, macro_slices, prediction_layout)
    indices = _check_indices(indices, truth.shape[0])
    r2, pearson = _resampled_arrays(truth, prediction, layout, names, macro, indices)
    rows = _metric_rows(layout, names, macro, truth.shape[0])
    n_boot, n_rows = r2.shape
    return pd.DataFrame(
        {
            "resample": np.repeat(np.arange(n_boot), n_rows),
            "slice": np.tile(rows["slice"].to_numpy(), n_boot),
            "kind": np.tile(rows["kind"].to_numpy(), n_boot),
            "r2": r2.ravel(),
            "pearson_r": pearson.ravel(),
        }
    )


@doc_params(latents=_LATENTS_PARAMS)
def bootstrap_slice_metrics(
    truth,
    prediction,
    layout: LatentLayout,
    *,
    strata=None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | np.random.Generator | None = None,
    indices=None,
    slices: str | Iterable[str] | None = None,
    macro_slices: Iterable[str] | None = None,
    prediction_layout: LatentLayout | None = None,
) -> pd.DataFrame:
    """:func:`slice_metrics` with stratified percentile bootstrap intervals (the paper's "R^2 [95% CI]").

    The point estimates are those of :func:`slice_metrics` on all patients; the intervals come from
    :func:`resampled_slice_metrics` (sufficient statistics, no per-resample recomputation of the matrices). The
    macro row's interval is that of the per-resample mean of the per-slice :math:`R^2`.

    Parameters
    ----------
    {latents}
    strata
        ``(n_patients,)`` stratum labels (cancer type; see :func:`make_strata`); needed unless ``indices`` is given.
    n_boot
        Number of resamples.
    ci
        Confidence level.
    seed
        Seed of the resampling; required with ``strata``.
    indices
        Precomputed resamples instead of ``strata``/``n_boot``/``seed``.
    slices, macro_slices, prediction_layout
        As in :func:`slice_metrics`.

    Returns
    -------
    The table of :func:`slice_metrics` with four more columns: ``r2_low``, ``r2_high``, ``pearson_r_low``,
    ``pearson_r_high`` (NaN where the metric is; the ``{metric}_low`` / ``{metric}_high`` naming of every cfmd
    table). ``table.attrs`` records ``n_boot`` and ``ci``. Deprecated: the same bounds as ``r2_ci_low``,
    ``r2_ci_high``, ``pearson_r_ci_low``, ``pearson_r_ci_high`` (removed in the next minor release).
    """
    truth, prediction, names, macro = _prepare(truth, prediction, layout, slices, macro_slices, prediction_layout)
    ci = _check_ci(ci)
    indices = resolve_bootstrap_indices(indices, strata, n_boot, seed, truth.shape[0])
    table = slice_metrics(truth, prediction, layout, slices=names, macro_slices=macro)
    r2, pearson = _resampled_arrays(truth, prediction, layout, names, macro, indices)
    for metric, values in (("r2", r2), ("pearson_r", pearson)):
        bounds = np.array([percentile_interval(values[:, k], ci) for k in range(values.shape[1])])
        table[f"{metric}_low"] = bounds[:, 0]
        table[f"{metric}_high"] = bounds[:, 1]
    for metric in ("r2", "pearson_r"):  # deprecated spelling, kept for one release
        table[f"{metric}_ci_low"] = table[f"{metric}_low"]
        table[f"{metric}_ci_high"] = table[f"{metric}_high"]
    table.attrs.update({"n_boot": len(indices), "ci": ci})
    return table
