"""Reconstruction metrics of a structured latent: multivariate R^2 per slice, Pearson r, macro and full-latent R^2.

These are the metrics of the paper's Section 3.5 and Table 1, as pure functions on arrays. They are what
:func:`cfmd.tl.evaluate` computes on a :class:`~mudata.MuData`; the bootstrap confidence intervals around them live
in :mod:`cfmd.metrics._bootstrap`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .._layout import LatentLayout
from .._validation import (
    InvalidInputError,
    check_finite,
    check_latent_matrix,
    check_names,
    check_numeric,
    describe_examples,
)

__all__ = ["default_macro_slices", "multivariate_r2", "pearson_r", "slice_metrics"]

#: Strategies that do not count as "actively imputed" for the default macro-averaged R^2: zero-masked slices are not
#: imputed at all, and ``rna`` slices (the proliferation signature) are read directly from the RNA, not imputed.
_NOT_ACTIVELY_IMPUTED = ("zero", "rna")


# ---------------------------------------------------------------------------------------------------- validation
def _as_2d(x, field: str) -> np.ndarray:
    """``x`` as a 2-d float array (a 1-d input becomes one column); numeric, finite."""
    arr = x.to_numpy() if isinstance(x, pd.DataFrame | pd.Series) else np.asarray(x)
    check_numeric(arr, field)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidInputError(f"{field} must be a 1- or 2-dimensional array; got shape {arr.shape}.")
    arr = arr.astype(float, copy=False)
    check_finite(arr, field)
    return arr


def _as_1d(x, field: str) -> np.ndarray:
    """``x`` as a 1-d float array (an ``(n, 1)`` column is accepted); numeric, finite."""
    arr = x.to_numpy() if isinstance(x, pd.DataFrame | pd.Series) else np.asarray(x)
    check_numeric(arr, field)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"{field} must be 1-dimensional (a single latent dimension); got shape {arr.shape}.")
    arr = arr.astype(float, copy=False)
    check_finite(arr, field)
    return arr


def _check_same_shape(y_true: np.ndarray, y_pred: np.ndarray, true_field: str, pred_field: str) -> None:
    if y_true.shape != y_pred.shape:
        raise InvalidInputError(
            f"{true_field} and {pred_field} must have the same shape (patients x dimensions); "
            f"got {y_true.shape} and {y_pred.shape}."
        )


def _check_rows(n_rows: int, field: str) -> None:
    if n_rows < 2:
        raise InvalidInputError(
            f"{field} has {n_rows} patient(s); R^2 and Pearson r need at least 2 (the variance around the mean)."
        )


def _check_latent(x, layout: LatentLayout, field: str) -> np.ndarray:
    """A latent matrix of the layout's width, numeric, with no NaN rows (the error counts them)."""
    return check_latent_matrix(
        x,
        field,
        check_width=lambda width: layout.check_width(width, field=field),
        missing_hint="metrics are computed only on patients whose latent is observed: select those rows first.",
    )


def _resolve_slices(layout: LatentLayout, slices: str | Iterable[str] | None, field: str) -> list[str]:
    return layout.names if slices is None else check_names(slices, field, layout.names, what="slice")


def default_macro_slices(layout: LatentLayout) -> list[str]:
    """The slices that the macro-averaged R^2 averages over by default: the *actively imputed* ones.

    These are the slices whose strategy is neither ``"zero"`` (zero-masked, not imputed) nor ``"rna"`` (read
    directly from RNA, reported with Pearson r). For :meth:`~cfmd.LatentLayout.cfmd328` these are ``pathway``,
    ``residual`` and ``meth``, the set of the paper's Section 4.1 (macro R^2 = 0.558 = mean of 0.731, 0.182, 0.762).

    Parameters
    ----------
    layout
        The latent layout.

    Returns
    -------
    Slice names, in latent order.
    """
    return [s.name for s in layout if s.strategy not in _NOT_ACTIVELY_IMPUTED]


def _check_layouts(layout: LatentLayout, prediction_layout: LatentLayout | None) -> None:
    if not isinstance(layout, LatentLayout):
        raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
    if prediction_layout is None:
        return
    if not isinstance(prediction_layout, LatentLayout):
        raise InvalidInputError(
            f"`prediction_layout` must be a cfmd.LatentLayout; got {type(prediction_layout).__name__}."
        )
    if prediction_layout != layout:
        truth_slices = {s.name: (s.start, s.stop) for s in layout}
        pred_slices = {s.name: (s.start, s.stop) for s in prediction_layout}
        differing = sorted(
            {n for n in set(truth_slices) | set(pred_slices) if truth_slices.get(n) != pred_slices.get(n)}
        )
        detail = (
            f"slices that differ in name or range: {describe_examples(differing)}"
            if differing
            else "same slice ranges but different strategies or groups"
        )
        raise InvalidInputError(
            "The truth and the prediction are described by different LatentLayouts "
            f"({detail}; truth {layout.n_dims} dims: {layout.names}, prediction {prediction_layout.n_dims} dims: "
            f"{prediction_layout.names}). Compare latents of the same layout."
        )


# ---------------------------------------------------------------------------------------------------- metrics
def _r2_from_sums(sse: np.ndarray, sst: np.ndarray) -> np.ndarray:
    """``1 - sse / sst`` with NaN where ``sst == 0`` (R^2 undefined)."""
    sse, sst = np.asarray(sse, dtype=float), np.asarray(sst, dtype=float)
    out = np.full(np.broadcast(sse, sst).shape, np.nan)
    ok = sst > 0
    np.subtract(1.0, np.divide(sse, sst, where=ok, out=np.zeros_like(out)), where=ok, out=out)
    return out


def _column_sums(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column SSE and SST (around the column mean of ``y_true``)."""
    sse = np.sum((y_true - y_pred) ** 2, axis=0)
    sst = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    return sse, sst


def multivariate_r2(y_true, y_pred) -> float:
    r"""Variance-weighted multivariate coefficient of determination.

    .. math::

        R^2 = 1 - \frac{\sum_j \mathrm{SSE}_j}{\sum_j \mathrm{SST}_j}, \qquad
        \mathrm{SSE}_j = \sum_i (y_{ij} - \hat y_{ij})^2, \qquad
        \mathrm{SST}_j = \sum_i (y_{ij} - \bar y_j)^2,

    where :math:`\bar y_j` is the mean of column :math:`j` of ``y_true``. Equivalently
    :math:`1 - \lVert Y - \hat Y \rVert_F^2 / \lVert Y - \bar Y \rVert_F^2`: the fraction of the slice's total variance
    that the prediction explains, so high-variance dimensions weigh more than low-variance ones.

    A column with zero variance in ``y_true`` contributes 0 to the denominator but its squared error still counts
    in the numerator (a prediction that misses a constant column is penalised). This differs from scikit-learn's
    ``r2_score(..., multioutput="variance_weighted")`` only in such columns, which scikit-learn drops entirely.
    For a single column this is the ordinary :math:`R^2`. It can be negative (worse than predicting the mean) and
    is 1 for a perfect prediction.

    Parameters
    ----------
    y_true
        ``(n_patients,)`` or ``(n_patients, n_dims)`` observed values.
    y_pred
        Predictions of the same shape.

    Returns
    -------
    The multivariate R^2; NaN when every column of ``y_true`` is constant (R^2 undefined).

    Examples
    --------
    >>> multivariate_r2([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    0.75
    """
    y_true = _as_2d(y_true, "y_true")
    y_pred = _as_2d(y_pred, "y_pred")
    _check_same_shape(y_true, y_pred, "y_true", "y_pred")
    _check_rows(y_true.shape[0], "y_true")
    sse, sst = _column_sums(y_true, y_pred)
    return float(_r2_from_sums(sse.sum(), sst.sum()))


def _pearson_from_sums(n, sx, sy, sxx, syy, sxy) -> np.ndarray:
    """Pearson r from (possibly weighted) sums; NaN where either variance is zero."""
    cov = sxy - sx * sy / n
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    denom = np.sqrt(np.clip(vx, 0, None) * np.clip(vy, 0, None))
    out = np.full(np.shape(denom), np.nan)
    ok = denom > 0
    np.divide(cov, denom, where=ok, out=out)
    return np.clip(out, -1.0, 1.0)


def pearson_r(y_true, y_pred) -> float:
    r"""Pearson correlation between observed and predicted values of one latent dimension.

    .. math::

        r = \frac{\sum_i (y_i - \bar y)(\hat y_i - \bar{\hat y})}
                 {\sqrt{\sum_i (y_i - \bar y)^2 \sum_i (\hat y_i - \bar{\hat y})^2}}

    The paper reports it for the 1-d proliferation slice (Table 1, r = 0.96). Unlike :math:`R^2` it ignores scale
    and offset of the prediction.

    Parameters
    ----------
    y_true
        ``(n_patients,)`` (or ``(n_patients, 1)``) observed values.
    y_pred
        Predictions of the same length.

    Returns
    -------
    The correlation, in [-1, 1]; NaN when either input is constant (r undefined).

    Examples
    --------
    >>> round(pearson_r([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 6)
    0.993399
    """
    y_true = _as_1d(y_true, "y_true")
    y_pred = _as_1d(y_pred, "y_pred")
    _check_same_shape(y_true, y_pred, "y_true", "y_pred")
    _check_rows(y_true.shape[0], "y_true")
    x = y_true - y_true.mean()
    y = y_pred - y_pred.mean()
    n = float(len(x))
    return float(_pearson_from_sums(n, 0.0, 0.0, x @ x, y @ y, x @ y))


def _prepare(
    truth,
    prediction,
    layout: LatentLayout,
    slices,
    macro_slices,
    prediction_layout: LatentLayout | None,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Validate the inputs of :func:`slice_metrics` (shared with the bootstrap); return arrays and slice lists."""
    _check_layouts(layout, prediction_layout)
    truth = _check_latent(truth, layout, "truth")
    prediction = _check_latent(prediction, layout, "prediction")
    if truth.shape[0] != prediction.shape[0]:
        raise InvalidInputError(
            f"truth and prediction must have one row per patient, in the same order; got {truth.shape[0]} and "
            f"{prediction.shape[0]} rows."
        )
    _check_rows(truth.shape[0], "truth")
    names = _resolve_slices(layout, slices, "slices")
    macro = (
        default_macro_slices(layout) if macro_slices is None else _resolve_slices(layout, macro_slices, "macro_slices")
    )
    return truth, prediction, names, macro


#: Columns of the table returned by :func:`slice_metrics`.
METRIC_COLUMNS = ["slice", "kind", "strategy", "start", "stop", "dims", "n_obs", "r2", "pearson_r"]


def _metric_rows(layout: LatentLayout, names: list[str], macro: list[str], n_obs: int) -> pd.DataFrame:
    """The descriptive columns of the metric table (one row per slice, then macro and full)."""
    rows = [
        {"slice": n, "kind": "slice", "strategy": layout[n].strategy, "start": layout[n].start, "stop": layout[n].stop}
        for n in names
    ]
    for row in rows:
        row["dims"] = row["stop"] - row["start"]
    if macro:
        rows.append(
            {
                "slice": "macro",
                "kind": "macro",
                "strategy": None,
                "start": None,
                "stop": None,
                "dims": sum(layout[n].dim for n in macro),
            }
        )
    rows.append({"slice": "full", "kind": "full", "strategy": None, "start": 0, "stop": layout.n_dims})
    rows[-1]["dims"] = layout.n_dims
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS[:6])
    table["n_obs"] = n_obs
    table["start"] = table["start"].astype("Int64")
    table["stop"] = table["stop"].astype("Int64")
    table["dims"] = table["dims"].astype(int)
    return table


def slice_metrics(
    truth,
    prediction,
    layout: LatentLayout,
    *,
    slices: str | Iterable[str] | None = None,
    macro_slices: Iterable[str] | None = None,
    prediction_layout: LatentLayout | None = None,
) -> pd.DataFrame:
    """Reconstruction fidelity of a predicted latent, slice by slice (the paper's Table 1).

    For each slice: the multivariate :math:`R^2` (:func:`multivariate_r2` over the slice's dimensions) and, for
    1-d slices, the Pearson r (:func:`pearson_r`). Then a ``macro`` row: the mean of the per-slice :math:`R^2`
    over ``macro_slices`` (the paper's "macro-averaged R^2 across actively imputed slices", which keeps the 200-d
    pathway slice from dominating), and a ``full`` row: the multivariate :math:`R^2` over all latent dimensions
    (Table 1's "Full Latent", 328 dims).

    Parameters
    ----------
    truth
        ``(n_patients, n_dims)`` observed latent. Every row must be finite: select the patients whose latent is
        observed (rows of muon-style NaN-padded ``.obsm`` are an error that counts them).
    prediction
        ``(n_patients, n_dims)`` predicted (imputed) latent of the same patients, in the same order.
    layout
        The layout of ``truth``; both matrices must be ``layout.n_dims`` wide.
    slices
        The slices to report (default: all, in latent order). Macro and full rows do not depend on it.
    macro_slices
        The slices that the ``macro`` row averages; default :func:`default_macro_slices` (strategies other than
        ``"zero"`` and ``"rna"``: ``pathway``, ``residual``, ``meth`` for the paper's layout). An empty list omits
        the row.
    prediction_layout
        The layout stored with ``prediction``, when it has one: it must equal ``layout`` (same slices, ranges,
        strategies), otherwise the two latents are not comparable and an :class:`~cfmd.InvalidInputError` is raised.

    Returns
    -------
    A tidy :class:`~pandas.DataFrame`, one row per reported slice, then ``macro`` (if any) and ``full``, with columns

    ``slice``
        Slice name, or ``"macro"`` / ``"full"``.
    ``kind``
        ``"slice"``, ``"macro"`` or ``"full"`` (use it rather than the name to tell the rows apart).
    ``strategy``
        The slice's imputation strategy (``None`` for macro and full); e.g. to blank zero-masked slices in a table.
    ``start``, ``stop``, ``dims``
        The latent range and its width (``macro``: total width of the averaged slices, no range).
    ``n_obs``
        Number of patients.
    ``r2``
        Multivariate R^2 (NaN where the truth has no variance).
    ``pearson_r``
        Pearson r for 1-d slices, NaN otherwise.

    Examples
    --------
    >>> import numpy as np, cfmd
    >>> layout = cfmd.LatentLayout.from_sizes({"prolif": (1, "rna"), "pathway": (3, "geneformer")})
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=(50, 4))
    >>> table = slice_metrics(truth, truth + 0.1 * rng.normal(size=(50, 4)), layout)
    >>> list(table["slice"])
    ['prolif', 'pathway', 'macro', 'full']
    """
    truth, prediction, names, macro = _prepare(truth, prediction, layout, slices, macro_slices, prediction_layout)
    sse, sst = _column_sums(truth, prediction)
    r2 = {n: float(_r2_from_sums(sse[layout[n].as_slice].sum(), sst[layout[n].as_slice].sum())) for n in layout.names}
    table = _metric_rows(layout, names, macro, truth.shape[0])
    values = [r2[n] for n in names]
    if macro:
        values.append(float(np.mean([r2[n] for n in macro])))
    values.append(float(_r2_from_sums(sse.sum(), sst.sum())))
    table["r2"] = values
    pearson = [
        float(
            _pearson_from_sums(
                float(truth.shape[0]),
                *_centred_sums(layout.take(truth, n)[:, 0], layout.take(prediction, n)[:, 0]),
            )
        )
        if layout[n].dim == 1
        else np.nan
        for n in names
    ]
    table["pearson_r"] = pearson + [np.nan] * (len(table) - len(names))
    return table


def _centred_sums(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """``(sum x, sum y, sum x^2, sum y^2, sum xy)`` after centring (numerically stable Pearson)."""
    xc, yc = x - x.mean(), y - y.mean()
    return 0.0, 0.0, float(xc @ xc), float(yc @ yc), float(xc @ yc)
