"""Per-slice reconstruction fidelity with bootstrap intervals (the paper's Table 1 as a figure)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._layout import LatentLayout
from .._validation import InvalidInputError, check_choice, describe_examples
from ._base import (
    MARKERS,
    PLOT_PARAMS,
    PLOT_RETURNS,
    axis_limits,
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

__all__ = ["slice_r2"]

STYLES = ("dot", "bar")
KINDS = ("slice", "macro", "full")
_SUMMARY_LABELS = {"macro": "macro\n(imputed slices)", "full": "full latent"}


def _tick_label(name: str, kind: str, dims) -> str:
    label = _SUMMARY_LABELS.get(kind, name) if kind in _SUMMARY_LABELS and name == kind else name
    if kind != "macro" and dims is not None and np.isfinite(dims):
        label += f"\n({int(dims)} d)"
    return label


@doc_params(plot_params=PLOT_PARAMS, plot_returns=PLOT_RETURNS)
def slice_r2(
    table: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    slices: Sequence[str] | None = None,
    layout: LatentLayout | None = None,
    key: str | None = None,
    style: str = "dot",
    show_pearson: bool = True,
    ylim: tuple[float, float] | None = None,
    title: str | None = "Per-slice reconstruction fidelity",
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Multivariate R^2 of each latent slice, per method, with bootstrap confidence intervals.

    One position per slice in layout order, then the summary rows (``macro``: mean R^2 over the actively imputed
    slices; ``full``: multivariate R^2 over the whole latent) after a dotted separator. Methods are dodged side by
    side, each a point with its interval (``style="dot"``) or a bar with error bars (``style="bar"``).

    Every position shows the same quantity, R^2, so the axis stays comparable. For 1-d slices (the proliferation
    slice), whose fidelity the paper reports as a Pearson r, the r is written above each method's mark
    (``show_pearson``); it is not plotted on the R^2 axis.

    Parameters
    ----------
    table
        The tidy metric table: columns ``slice``, ``kind`` (``"slice"``, ``"macro"`` or ``"full"``), ``r2``,
        optionally ``method`` (without it, the table is one method's and no legend is drawn), ``r2_low``/``r2_high``
        (as :func:`cfmd.metrics.bootstrap_slice_metrics` writes them; without them no intervals are drawn),
        ``pearson_r`` (with ``pearson_r_low``/``pearson_r_high``) and ``dims`` (shown in
        the tick labels). Or a MuData/AnnData holding it in ``.uns["cfmd_benchmark"]["slices"]`` (every method of
        :func:`cfmd.tl.benchmark`, averaged over seeds) or
        ``.uns["cfmd_evaluation"]["slices"]`` (see ``key``).
    methods
        The methods to draw, in this order (default: all, in table order).
    slices
        The slices (values of the ``slice`` column, including ``"macro"``/``"full"``) to draw; default all. They are
        drawn in layout order whatever the order given here.
    layout
        Order the slices like this layout. Default: by the table's ``start`` column (the first latent dimension of
        each slice, as :func:`cfmd.metrics.slice_metrics` writes it) when present, else by first appearance in the table.
    key
        When ``table`` is a MuData/AnnData: the ``.uns`` key to read (``"cfmd_benchmark"`` -> its ``"slices"``,
        ``"cfmd_evaluation"`` -> its ``"slices"``, or a key holding a DataFrame). ``None`` tries
        ``"cfmd_benchmark"``, then ``"cfmd_evaluation"``.
    style
        ``"dot"`` (points with interval whiskers) or ``"bar"`` (grouped bars with error bars).
    show_pearson
        Write the Pearson r above the marks of 1-d slices (with its interval when known and one method is drawn;
        rotated when several are).
    ylim
        Limits of the R^2 axis; default: the data range (intervals included) and 0, with headroom for the labels.
    title
        Axes title (``None`` for none).
    {plot_params}

    {plot_returns}

    Examples
    --------
    >>> import pandas as pd, cfmd
    >>> table = pd.DataFrame(
    ...     {
    ...         "method": ["CFMD"] * 3,
    ...         "slice": ["pathway", "meth", "full"],
    ...         "kind": ["slice", "slice", "full"],
    ...         "r2": [0.73, 0.76, 0.77],
    ...         "r2_low": [0.71, 0.74, 0.76],
    ...         "r2_high": [0.75, 0.78, 0.79],
    ...     }
    ... )
    >>> fig = cfmd.pl.slice_r2(table, return_fig=True)
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save)
    check_choice(style, "style", STYLES)
    if not isinstance(show_pearson, bool):
        raise InvalidInputError(f"`show_pearson` must be True or False; got {show_pearson!r}.")
    if layout is not None and not isinstance(layout, LatentLayout):
        raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout or None; got {type(layout).__name__}.")
    ylim = axis_limits(ylim, "ylim")
    table, _, where = resolve_table(
        table, uns_keys=[("cfmd_benchmark", "slices"), ("cfmd_evaluation", "slices")], field="table", key=key
    )
    require_columns(table, ["slice", "kind", "r2"], where)
    has_method = "method" in table.columns
    if not has_method:
        if methods is not None:
            raise InvalidInputError(
                f"`methods` was given but {where} has no 'method' column (it is one method's table)."
            )
        table["method"] = ""
    table["method"] = table["method"].astype(str)
    table["slice"] = table["slice"].astype(str)
    table["kind"] = table["kind"].astype(str)
    bad_kinds = sorted(set(table["kind"]) - set(KINDS))
    if bad_kinds:
        raise InvalidInputError(f"{where}['kind'] must be one of {list(KINDS)}; found {describe_examples(bad_kinds)}.")
    r2_bounds = ci_columns(table, "r2", where)
    pearson_bounds = ci_columns(table, "pearson_r", where) if "pearson_r" in table.columns else None
    numeric = ["r2", *(r2_bounds or ())]
    if "pearson_r" in table.columns:
        numeric += ["pearson_r", *(pearson_bounds or ())]
    if "dims" in table.columns:
        numeric.append("dims")
    for column in numeric:
        table[column] = numeric_column(table, column, where)
    duplicated = table.duplicated(["method", "slice"])
    if duplicated.any():
        pairs = [f"{m}/{s}" if m else s for m, s in table.loc[duplicated, ["method", "slice"]].itertuples(index=False)]
        raise InvalidInputError(f"{where} has more than one row per (method, slice): {describe_examples(pairs)}.")

    present_methods = list(dict.fromkeys(table["method"]))
    if methods is None:
        method_order = present_methods
    else:
        method_order = select_values(methods, present_methods, argument="methods", column="method", where=where)
    present_slices = list(dict.fromkeys(table["slice"]))
    if slices is None:
        selected = present_slices
    else:
        selected = select_values(slices, present_slices, argument="slices", column="slice", where=where)
    table = table[table["method"].isin(method_order) & table["slice"].isin(selected)]
    kind_of = dict(zip(table["slice"], table["kind"]))
    per_slice = [s for s in present_slices if s in kind_of and kind_of[s] == "slice"]
    if layout is not None:
        missing = [s for s in per_slice if s not in layout]
        if missing:
            raise InvalidInputError(
                f"{where}['slice'] holds {describe_examples(missing)}, which `layout` lacks (slices: {layout.names})."
            )
        per_slice = [s for s in layout.names if s in per_slice]
    elif "start" in table.columns:
        starts = pd.to_numeric(table.groupby("slice", sort=False)["start"].first(), errors="coerce")
        if starts.reindex(per_slice).notna().all():
            per_slice = sorted(per_slice, key=lambda s: (starts[s], per_slice.index(s)))
    summary = [s for k in ("macro", "full") for s in present_slices if s in kind_of and kind_of[s] == k]
    positions = per_slice + summary
    if not positions:
        raise InvalidInputError(f"Nothing to plot: no rows of {where} match the selected methods and slices.")

    # ------------------------------------------------------------------ draw
    n_methods = len(method_order)
    fig, (axis,) = open_canvas(
        options, default_figsize=(max(5.0, 0.35 * len(positions) * max(n_methods, 2) + 3.5), 4.0)
    )
    colors = categorical_palette(n_methods)
    x = np.arange(len(positions), dtype=float)
    width = 0.8 / n_methods
    handles = []
    annotations = []
    values = []
    for k, method in enumerate(method_order):
        rows = table[table["method"] == method].set_index("slice").reindex(positions)
        r2 = rows["r2"].to_numpy(dtype=float)
        offsets = x - 0.4 + width * (k + 0.5)
        finite = np.isfinite(r2)
        color = colors[k]
        label = method if has_method else None
        if r2_bounds is not None:
            low, high = (rows[c].to_numpy(dtype=float) for c in r2_bounds)
            yerr = error_extent(r2, low, high)[:, finite]
            values += [low, high]
        else:
            low = high = r2
            yerr = None
        values.append(r2)
        if style == "bar":
            artist = axis.bar(
                offsets[finite],
                r2[finite],
                width=width * 0.92,
                color=color,
                edgecolor="white",
                linewidth=0.5,
                yerr=yerr,
                error_kw={"ecolor": "#333333", "elinewidth": 1.0, "capsize": 2},
                label=label,
                gid=f"slice-r2-bar-{method}",
            )
        else:
            if yerr is not None:
                axis.errorbar(
                    offsets[finite],
                    r2[finite],
                    yerr=yerr,
                    fmt="none",
                    ecolor=color,
                    elinewidth=1.4,
                    capsize=3,
                    zorder=2,
                )
            artist = axis.scatter(
                offsets[finite],
                r2[finite],
                s=42,
                color=color,
                marker=MARKERS[k % len(MARKERS)],
                edgecolor="#333333",
                linewidth=0.5,
                zorder=3,
                label=label,
                gid=f"slice-r2-points-{method}",
            )
        handles.append(artist)
        if show_pearson and "pearson_r" in rows.columns:
            pearson = rows["pearson_r"].to_numpy(dtype=float)
            for i in np.flatnonzero(np.isfinite(pearson) & finite):
                text = f"r = {pearson[i]:.2f}"
                if pearson_bounds is not None and n_methods == 1:
                    p_low, p_high = (float(rows[c].iloc[i]) for c in pearson_bounds)
                    if np.isfinite(p_low) and np.isfinite(p_high):
                        text += f" [{p_low:.2f}, {p_high:.2f}]"
                top = np.nanmax([r2[i], high[i]])
                annotations.append((offsets[i], top, text))

    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if ylim is None:
        bottom = min(0.0, float(values.min())) if values.size else 0.0
        top = max(float(values.max()), 0.0) if values.size else 1.0
        span = max(top - bottom, 0.1)
        headroom = 0.3 if annotations else 0.08  # room for the Pearson r annotations
        ylim = (bottom - 0.04 * span if bottom < 0 else 0.0, top + headroom * span)
    for x_text, y_text, text in annotations:
        axis.annotate(
            text,
            (x_text, y_text),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            rotation=90 if n_methods > 1 else 0,
            fontsize="x-small",
            color="#222222",
            gid="pearson-annotation",
        )
    axis.axhline(0.0, color="#555555", linewidth=0.6, zorder=1)
    if per_slice and summary:
        axis.axvline(len(per_slice) - 0.5, color="#888888", linestyle=":", linewidth=1.0, zorder=1)
    dims = table.groupby("slice")["dims"].first() if "dims" in table.columns else pd.Series(dtype=float)
    axis.set_xticks(x, [_tick_label(s, kind_of[s], dims.get(s)) for s in positions])
    axis.set_xlim(-0.6, len(positions) - 0.4)
    axis.set_ylim(*ylim)
    axis.set_xlabel("Latent slice")
    axis.set_ylabel("R\u00b2 (imputed vs observed latent)")
    axis.grid(axis="y", color="#DDDDDD", linewidth=0.6)
    axis.set_axisbelow(True)
    axis.spines[["top", "right"]].set_visible(False)
    if title:
        axis.set_title(title)
    if has_method:
        level = table.attrs.get("ci")
        level = f"{100 * level:.0f}% " if isinstance(level, float) else ""
        marks = "whiskers" if style == "dot" else "error bars"
        interval = f" ({marks}: {level}bootstrap CI)" if r2_bounds is not None else ""
        axis.legend(
            handles=handles,
            title=f"Method{interval}",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
            title_fontsize="small",
        )
    return finish(fig, options)
