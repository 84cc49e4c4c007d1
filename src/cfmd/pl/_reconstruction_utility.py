"""The reconstruction-utility trade-off: latent R^2 against survival C-index (the paper's Figure 3)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import InvalidInputError, check_choice, describe_examples
from ._base import (
    MARKERS,
    NA_COLOR,
    PLOT_PARAMS,
    PLOT_RETURNS,
    categorical_palette,
    ci_columns,
    doc_params,
    error_extent,
    finish,
    numeric_column,
    open_canvas,
    plot_options,
    require_columns,
    resolve_table,
    select_values,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Marks an argument the caller did not pass (the deprecated ``ci=``).
_NOT_GIVEN = object()

__all__ = ["reconstruction_utility"]

INTERVAL_STYLES = ("bars", "ellipse", None)


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _find_method(methods: Sequence[str], name: str) -> str | None:
    """``name`` among ``methods``: exact, else ignoring case and punctuation (``"zero_mask"`` = ``"Zero-mask"``)."""
    if name in methods:
        return name
    matches = [m for m in methods if _normalise(m) == _normalise(name)]
    return matches[0] if len(matches) == 1 else None


def _repel_labels(axis, texts, anchors: np.ndarray, *, iterations: int = 100) -> None:
    """Nudge offset-point annotations vertically until they overlap neither each other nor other points' markers.

    A simple deterministic repulsion in display space; ``anchors`` are the ``(n, 2)`` data coordinates of the
    points the labels belong to (label ``i`` may touch its own point).
    """
    if not texts:
        return
    from matplotlib.transforms import Bbox

    fig = axis.figure
    renderer = fig.canvas.get_renderer()
    points_per_pixel = 72.0 / fig.dpi
    radius = 6.0 / points_per_pixel  # marker half-size in pixels (about 6 points)
    markers = [
        Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in axis.transData.transform(anchors)
    ]

    def box(index):
        return texts[index].get_window_extent(renderer).expanded(1.02, 1.3)

    def shift(index, pixels):
        dx, dy = texts[index].xyann
        texts[index].xyann = (dx, dy + pixels * points_per_pixel)

    for _ in range(iterations):
        moved = False
        for i in range(len(texts)):
            for j in range(len(texts)):
                if j != i and box(i).overlaps(markers[j]):
                    b = box(i)
                    centre = (markers[j].y0 + markers[j].y1) / 2
                    up = (b.y0 + b.y1) / 2 >= centre
                    shift(i, (markers[j].y1 - b.y0 + 1) if up else -(b.y1 - markers[j].y0 + 1))
                    moved = True
                if j > i and box(i).overlaps(box(j)):
                    bi, bj = box(i), box(j)
                    step = (min(bi.y1, bj.y1) - max(bi.y0, bj.y0)) / 2 + 0.5
                    lower, upper = (i, j) if bi.y0 <= bj.y0 else (j, i)
                    shift(lower, -step)
                    shift(upper, step)
                    moved = True
        if not moved:
            break


@doc_params(plot_params=PLOT_PARAMS, plot_returns=PLOT_RETURNS)
def reconstruction_utility(
    table: pd.DataFrame,
    *,
    reference: str | None = "zero_mask",
    methods: Sequence[str] | None = None,
    interval_style: str | None = "bars",
    labels: bool = True,
    title: str | None = "Reconstruction\u2013utility trade-off",
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
    ci: str | None | object = _NOT_GIVEN,
) -> Figure | None:
    """Latent reconstruction R^2 (x) against downstream survival C-index (y), one point per method.

    Each method is a point at its latent R^2 and Harrell's C-index with its bootstrap confidence intervals (error
    bars, or an ellipse), labelled with the method name. The reference method (the zero-mask baseline, which has no
    latent R^2) is a dashed horizontal line at its C-index, with its confidence interval as a shaded band: methods
    above the line add prognostic value over zero-masking, and a method far to the right but on the line shows the
    reconstruction-utility paradox (high R^2, no utility).

    Parameters
    ----------
    table
        One row per method with columns ``method``, ``latent_r2``, ``latent_r2_low``, ``latent_r2_high``,
        ``c_index``, ``c_index_low``, ``c_index_high`` (NaN allowed in the ``latent_r2`` columns); or a MuData/AnnData holding it in ``.uns["cfmd_benchmark"]["table3"]``
        (or ``.uns["cfmd_evaluation"]["summary"]``, written by :func:`~cfmd.tl.evaluate`).
        Methods other than the reference whose latent R^2 is NaN cannot be placed and are left out (logged).
    reference
        The method drawn as the horizontal reference line (matched exactly, else ignoring case and punctuation, so
        ``"zero_mask"`` finds ``"Zero-mask"``); ``None`` for none.
    methods
        The methods to draw as points, in this order (default: all but the reference, in table order).
    interval_style
        How to show the intervals: ``"bars"`` (error bars, the two marginal intervals), ``"ellipse"`` (an
        axis-aligned ellipse spanning both marginal intervals, as in the paper's figure; not a joint confidence
        region, which the table does not hold) or ``None``.
    labels
        Write the method names next to the points (nudged apart when they would overlap); the legend lists them too.
    title
        Axes title (``None`` for none).
    {plot_params}
    ci
        Deprecated name of ``interval_style`` (``ci`` is a confidence level elsewhere in cfmd).

    {plot_returns}

    Examples
    --------
    >>> import numpy as np, pandas as pd, cfmd
    >>> table = pd.DataFrame(
    ...     {
    ...         "method": ["Zero-mask", "PESD StudentEncoder", "CFMD (Full)"],
    ...         "latent_r2": [np.nan, 0.864, 0.774],
    ...         "latent_r2_low": [np.nan, 0.851, 0.760],
    ...         "latent_r2_high": [np.nan, 0.876, 0.788],
    ...         "c_index": [0.600, 0.595, 0.642],
    ...         "c_index_low": [0.585, 0.580, 0.628],
    ...         "c_index_high": [0.615, 0.610, 0.655],
    ...     }
    ... )
    >>> fig = cfmd.pl.reconstruction_utility(table, return_fig=True)
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save)
    style_argument = "interval_style"
    if ci is not _NOT_GIVEN:
        style_argument = "ci"
        warnings.warn(
            "`ci=` of cfmd.pl.reconstruction_utility is renamed `interval_style=`; `ci` will be removed in a future "
            "release.",
            FutureWarning,
            stacklevel=2,
        )
        interval_style = ci
    check_choice(interval_style, style_argument, INTERVAL_STYLES)
    if not isinstance(labels, bool):
        raise InvalidInputError(f"`labels` must be True or False; got {labels!r}.")
    table, _, where = resolve_table(
        table, uns_keys=[("cfmd_benchmark", "table3"), ("cfmd_evaluation", "summary")], field="table"
    )
    require_columns(table, ["method", "latent_r2", "c_index"], where)
    r2_bounds = ci_columns(table, "latent_r2", where, required=interval_style is not None)
    c_bounds = ci_columns(table, "c_index", where, required=interval_style is not None)
    table["method"] = table["method"].astype(str)
    if table["method"].duplicated().any():
        raise InvalidInputError(
            f"{where}['method'] must be unique; duplicated: {describe_examples(table['method'][table['method'].duplicated()])}."
        )
    for column in ["latent_r2", "c_index", *(r2_bounds or ()), *(c_bounds or ())]:
        table[column] = numeric_column(table, column, where)
    all_methods = list(table["method"])

    reference_name = None
    if reference is not None:
        reference_name = _find_method(all_methods, reference)
        if reference_name is None:
            raise InvalidInputError(
                f"`reference` {reference!r} is not a method of {where}['method'] (which holds "
                f"{describe_examples(all_methods, limit=12)}); pass one of them or `reference=None`."
            )
        if not np.isfinite(table.loc[table["method"] == reference_name, "c_index"].iloc[0]):
            raise InvalidInputError(f"The reference method {reference_name!r} has no C-index in {where}['c_index'].")
    if methods is None:
        chosen = [m for m in all_methods if m != reference_name]
    else:
        chosen = select_values(methods, all_methods, argument="methods", column="method", where=where)
    rows = table.set_index("method").loc[chosen]
    placeable = np.isfinite(rows["latent_r2"].to_numpy()) & np.isfinite(rows["c_index"].to_numpy())
    if not placeable.all():
        logger.warning(
            "reconstruction_utility: leaving out %s (no latent R^2 or C-index to place a point at).",
            describe_examples(list(rows.index[~placeable])),
        )
        rows = rows[placeable]
    if rows.empty and reference_name is None:
        raise InvalidInputError(f"{where} has no method with both a latent R^2 and a C-index to plot.")

    # ------------------------------------------------------------------ draw
    from matplotlib.patches import Ellipse, Patch

    fig, (axis,) = open_canvas(options, default_figsize=(7.5, 4.8))
    colors = categorical_palette(len(rows))
    handles = []
    if reference_name is not None:
        ref = table.set_index("method").loc[reference_name]
        ref_line = axis.axhline(
            ref["c_index"],
            color="black",
            linestyle="--",
            linewidth=1.2,
            zorder=1,
            label=f"{reference_name} (C = {ref['c_index']:.3f}; no latent R\u00b2)",
            gid="reference-line",
        )
        handles.append(ref_line)
        if c_bounds is not None and np.isfinite(ref[c_bounds[0]]) and np.isfinite(ref[c_bounds[1]]):
            band = axis.axhspan(
                ref[c_bounds[0]],
                ref[c_bounds[1]],
                color=NA_COLOR,
                alpha=0.25,
                linewidth=0,
                zorder=0,
                label=f"{reference_name}, C-index CI",
                gid="reference-band",
            )
            handles.append(band)
    x = rows["latent_r2"].to_numpy(dtype=float)
    y = rows["c_index"].to_numpy(dtype=float)
    texts = []
    for k, method in enumerate(rows.index):
        color, marker = colors[k], MARKERS[k % len(MARKERS)]
        if interval_style == "bars":
            xerr = error_extent(x[k : k + 1], *(rows[c].to_numpy(dtype=float)[k : k + 1] for c in r2_bounds))
            yerr = error_extent(y[k : k + 1], *(rows[c].to_numpy(dtype=float)[k : k + 1] for c in c_bounds))
            axis.errorbar(
                x[k], y[k], xerr=xerr, yerr=yerr, fmt="none", ecolor=color, elinewidth=1.2, capsize=3, zorder=2
            )
        elif interval_style == "ellipse":
            x_low, x_high = (float(rows[c].iloc[k]) for c in r2_bounds)
            y_low, y_high = (float(rows[c].iloc[k]) for c in c_bounds)
            if np.isfinite([x_low, x_high, y_low, y_high]).all():
                axis.add_patch(
                    Ellipse(
                        ((x_low + x_high) / 2, (y_low + y_high) / 2),
                        width=x_high - x_low,
                        height=y_high - y_low,
                        facecolor=color,
                        edgecolor=color,
                        alpha=0.25,
                        linewidth=1.0,
                        zorder=2,
                        gid=f"ci-ellipse-{method}",
                    )
                )
        point = axis.scatter(
            x[k],
            y[k],
            s=46,
            color=color,
            marker=marker,
            edgecolor="#333333",
            linewidth=0.5,
            zorder=3,
            label=method,
            gid=f"method-point-{method}",
        )
        handles.append(point)
        if labels:
            texts.append(
                axis.annotate(
                    method,
                    (x[k], y[k]),
                    xytext=(7, 4),
                    textcoords="offset points",
                    fontsize="small",
                    color="#222222",
                    zorder=2.5,  # below the markers; the white box keeps the text legible over bars and bands
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75},
                    gid=f"method-label-{method}",
                )
            )

    # Limits: include every interval and the reference band, with a margin.
    x_all = [x]
    y_all = [y, table.loc[table["method"] == reference_name, "c_index"].to_numpy(dtype=float)]
    if r2_bounds is not None:
        x_all += [rows[c].to_numpy(dtype=float) for c in r2_bounds]
    if c_bounds is not None:
        y_all += [rows[c].to_numpy(dtype=float) for c in c_bounds]
        if reference_name is not None:
            y_all += [table.loc[table["method"] == reference_name, c].to_numpy(dtype=float) for c in c_bounds]
    x_values = np.concatenate(x_all)
    y_values = np.concatenate(y_all)
    x_values, y_values = x_values[np.isfinite(x_values)], y_values[np.isfinite(y_values)]
    if x_values.size:
        span = max(float(np.ptp(x_values)), 0.02)
        axis.set_xlim(float(x_values.min()) - 0.1 * span, float(x_values.max()) + 0.25 * span)
    if y_values.size:
        span = max(float(np.ptp(y_values)), 0.01)
        axis.set_ylim(float(y_values.min()) - 0.12 * span, float(y_values.max()) + 0.12 * span)
    axis.set_xlabel("Latent R\u00b2 (imputed vs observed latent)")
    axis.set_ylabel("Survival C-index (Harrell's C)")
    axis.grid(color="#EEEEEE", linewidth=0.6)
    axis.set_axisbelow(True)
    axis.spines[["top", "right"]].set_visible(False)
    if title:
        axis.set_title(title)
    if interval_style is not None:
        handles.append(
            Patch(
                facecolor="none" if interval_style == "bars" else NA_COLOR,
                edgecolor="none",
                label=f"{'Bars' if interval_style == 'bars' else 'Ellipses'}: "
                + (f"{100 * table.attrs['ci']:.0f}% " if isinstance(table.attrs.get("ci"), float) else "")
                + "bootstrap CI",
            )
        )
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    if texts:
        fig.draw_without_rendering()  # settle the layout before measuring the labels
        _repel_labels(axis, texts, np.column_stack([x, y]))
    return finish(fig, options)
