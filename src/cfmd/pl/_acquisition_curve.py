"""The acquisition curve :func:`cfmd.tl.prioritize_assays` computed: informed vs random (seed 004, Figure 4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._validation import InvalidInputError
from ._base import (
    OKABE_ITO,
    PLOT_PARAMS,
    PLOT_RETURNS,
    doc_params,
    finish,
    numeric_column,
    open_canvas,
    plot_options,
    require_columns,
    resolve_table,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["acquisition_curve"]

_METRIC_LABELS = {"c_index": "C-index", "f1_macro": "macro F1"}
_STRATEGY_STYLE = {
    "informed": {"color": OKABE_ITO[0], "marker": "o", "label": "informed (counterfactual score)"},
    "random": {"color": OKABE_ITO[3], "marker": "s", "label": "random"},
}


@doc_params(plot_params=PLOT_PARAMS, plot_returns=PLOT_RETURNS)
def acquisition_curve(
    data,
    *,
    key: str = "cfmd_prioritize",
    show_test: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """The frozen model's metric against the fraction of test patients whose modality is observed.

    Draws ``.uns[key]["summary"]`` of :func:`cfmd.tl.prioritize_assays` (this function computes nothing): one line
    per strategy (mean over repeats) with its 95% confidence band, *informed* (patients in descending counterfactual
    score) and *random*; the area between them and its paired tests go into the legend title.

    Parameters
    ----------
    data
        A MuData / AnnData after :func:`cfmd.tl.prioritize_assays`, or its ``summary`` DataFrame (columns
        ``strategy``, ``fraction``, ``mean``, ``low``, ``high``).
    key
        The ``key_added`` of :func:`cfmd.tl.prioritize_assays`.
    show_test
        Write the area between the curves and the paired tests' p-values into the legend title.
    title
        Axes title (default: the modality and the score, when known).
    {plot_params}

    {plot_returns}

    Examples
    --------
    >>> cfmd.tl.prioritize_assays(mdata, "meth", generated_key="X_diffusion")  # doctest: +SKIP
    >>> cfmd.pl.acquisition_curve(mdata, save="acquisition.png")  # doctest: +SKIP
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save)
    table, entry, where = resolve_table(data, uns_keys=[(key, "summary")], field="data", key=key)
    require_columns(table, ["strategy", "fraction", "mean", "low", "high"], where)
    strategies = [s for s in _STRATEGY_STYLE if s in set(table["strategy"].astype(str))]
    if not strategies:
        raise InvalidInputError(f"{where}['strategy'] holds neither 'informed' nor 'random'.")
    columns = {c: numeric_column(table, c, where) for c in ("fraction", "mean", "low", "high")}
    settings = dict(entry.get("settings", {})) if entry is not None else {}
    test = dict(entry.get("test", {})) if entry is not None else {}

    fig, (axis,) = open_canvas(options, default_figsize=(5.0, 3.8))
    labels = table["strategy"].astype(str).to_numpy()
    for strategy in strategies:
        rows = labels == strategy
        order = np.argsort(columns["fraction"][rows])
        x = columns["fraction"][rows][order]
        style = _STRATEGY_STYLE[strategy]
        axis.fill_between(x, columns["low"][rows][order], columns["high"][rows][order], color=style["color"],
                          alpha=0.2, linewidth=0)  # fmt: skip
        axis.plot(x, columns["mean"][rows][order], color=style["color"], marker=style["marker"], markersize=3.5,
                  linewidth=1.5, label=style["label"])  # fmt: skip
    metric = str(settings.get("metric", "metric"))
    axis.set_xlabel(f"fraction of test patients with {settings.get('modality', 'the modality')} observed")
    axis.set_ylabel(_METRIC_LABELS.get(metric, metric) + " of the frozen model")
    axis.set_xlim(0, 1)
    legend_title = None
    if show_test and test:
        legend_title = (
            f"area informed - random {test.get('area_difference', np.nan):+.3f}\n"
            f"Wilcoxon p {test.get('p_wilcoxon', np.nan):.2g}, t-test p {test.get('p_ttest', np.nan):.2g} "
            f"({int(test.get('n_repeats', 0))} repeats)"
        )
    axis.legend(title=legend_title, fontsize="small", title_fontsize="small", frameon=False)
    if title is None and settings:
        title = f"{settings.get('modality', '')}: {settings.get('score', '')} score, {settings.get('unobserved', '')}"
        title += " when not observed"
    if title:
        axis.set_title(title, fontsize="medium")
    return finish(fig, options)
