"""Performance of a frozen downstream model by condition, per missing-modality pattern (seed 004's Figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._validation import InvalidInputError
from ._base import (
    NA_COLOR,
    OKABE_ITO,
    PLOT_PARAMS,
    PLOT_RETURNS,
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

__all__ = ["downstream_rescue"]

#: The metric drawn by default for each task.
_PRIMARY = {"classification": "f1", "survival": "c_index"}
_METRIC_LABELS = {"f1": "Macro F1", "balanced_accuracy": "Balanced accuracy", "c_index": "C-index"}


def _condition_label(condition: str) -> str:
    if condition.startswith("imputed:"):
        return f"Imputed ({condition.split(':', 1)[1]})"
    return {"full": "Full data", "ablation": "Ablation", "cancer_type_only": "Cancer type only"}.get(
        condition, condition
    )


@doc_params(plot_params=PLOT_PARAMS, plot_returns=PLOT_RETURNS)
def downstream_rescue(
    data,
    *,
    panels: Sequence[tuple[str, str]] | None = None,
    patterns: str | Sequence[str] | None = None,
    conditions: Sequence[str] | None = None,
    key: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Downstream performance by condition, per missing-modality pattern (seed 004's Figure 3).

    One panel per downstream model and metric; in each, one group of bars per missing-modality pattern: full data,
    ablation (the modality removed), each imputer, and cancer type only, with the bootstrap confidence intervals of
    :func:`cfmd.tl.downstream_rescue` as error bars. The full-data value is also a dashed line, so that how much of
    the ablation's drop an imputer recovers reads directly. Draws only what the table holds.

    Parameters
    ----------
    data
        The ``results`` table of :func:`cfmd.tl.downstream_rescue` (columns ``task``, ``model``, ``metric``,
        ``pattern``, ``condition``, ``value``, ``value_low``, ``value_high``), or a MuData/AnnData holding it in
        ``.uns["cfmd_downstream_rescue"]["results"]``.
    panels
        ``(model, metric)`` pairs, one panel each, e.g. ``[("random_forest", "f1"), ("cox_head", "c_index")]``.
        Default: for each task, its first model with macro F1 (classification) or the C-index (survival).
    patterns
        Patterns to draw (values of the ``pattern`` column), in this order; default all.
    conditions
        Conditions to draw, in this order; default: full, ablation, each imputer, cancer type only (those present).
    key
        ``.uns`` key to read (default ``"cfmd_downstream_rescue"``).
    {plot_params}
        With several panels, ``ax`` is a sequence of that many axes.

    {plot_returns}
    """
    table, _, where = resolve_table(
        data, uns_keys=[("cfmd_downstream_rescue", "results")], field="data", key=key
    )  # fmt: skip
    require_columns(table, ["task", "model", "metric", "pattern", "condition", "value"], where)
    bounds = ci_columns(table, "value", where)
    table["value"] = numeric_column(table, "value", where)
    if bounds is not None:
        for column in bounds:
            table[column] = numeric_column(table, column, where)
    for column in ("task", "model", "metric", "pattern", "condition"):
        table[column] = table[column].astype(str)
    present = list(dict.fromkeys(zip(table["model"], table["metric"])))
    if panels is None:
        panels = []
        for task, metric in _PRIMARY.items():
            models = table.loc[(table["task"] == task) & (table["metric"] == metric), "model"].unique()
            if len(models):
                panels.append((str(models[0]), metric))
        panels = panels or present[:1]
    else:
        if isinstance(panels, str) or not isinstance(panels, Sequence):
            raise InvalidInputError(f"`panels` must be a list of (model, metric) pairs; got {panels!r}.")
        panels = [tuple(p) for p in panels]
        unknown = [p for p in panels if p not in present]
        if unknown or not panels:
            raise InvalidInputError(
                f"`panels` names (model, metric) pair(s) {unknown or panels} absent from {where} (which holds "
                f"{present})."
            )
    pattern_values = list(dict.fromkeys(table["pattern"]))
    chosen_patterns = pattern_values if patterns is None else select_values(
        patterns, pattern_values, argument="patterns", column="pattern", where=where
    )  # fmt: skip
    condition_values = list(dict.fromkeys(table["condition"]))
    if conditions is None:
        order = ["full", "ablation", *[c for c in condition_values if c.startswith("imputed:")], "cancer_type_only"]
        chosen_conditions = [c for c in order if c in condition_values]
    else:
        chosen_conditions = select_values(
            conditions, condition_values, argument="conditions", column="condition", where=where
        )
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save, n_panels=len(panels))
    width = max(4.0, 1.0 + 0.35 * len(chosen_patterns) * len(chosen_conditions))
    fig, axes = open_canvas(options, default_figsize=(width * len(panels), 3.8), n_panels=len(panels))

    imputed = [c for c in chosen_conditions if c.startswith("imputed:")]
    fixed = {"full": "#882255", "ablation": OKABE_ITO[1], "cancer_type_only": NA_COLOR}
    others = [c for c in OKABE_ITO if c not in (OKABE_ITO[1],)]
    colours = {}
    for condition in chosen_conditions:
        if condition in fixed:
            colours[condition] = fixed[condition]
        elif condition in imputed:
            colours[condition] = others[imputed.index(condition) % len(others)]
        else:
            colours[condition] = "#444444"
    n_bars = len(chosen_conditions)
    bar = 0.8 / n_bars
    for axis, (model, metric) in zip(axes, panels):
        sub = table[(table["model"] == model) & (table["metric"] == metric)]
        x = np.arange(len(chosen_patterns))
        for k, condition in enumerate(chosen_conditions):
            rows = sub[sub["condition"] == condition].set_index("pattern").reindex(chosen_patterns)
            values = rows["value"].to_numpy(dtype=float)
            errors = None
            if bounds is not None:
                errors = error_extent(
                    values, rows[bounds[0]].to_numpy(dtype=float), rows[bounds[1]].to_numpy(dtype=float)
                )
            axis.bar(x - 0.4 + bar * (k + 0.5), np.nan_to_num(values), width=bar, color=colours[condition],
                     yerr=errors, capsize=2, label=_condition_label(condition), edgecolor="white", linewidth=0.5,
                     hatch="//" if condition == "cancer_type_only" else None)  # fmt: skip
        full = sub[sub["condition"] == "full"]["value"].to_numpy(dtype=float)
        if full.size and np.isfinite(full[0]):
            axis.axhline(full[0], color=colours.get("full", "#882255"), linestyle="--", linewidth=0.8)
        drawn = sub[sub["condition"].isin(chosen_conditions) & sub["pattern"].isin(chosen_patterns)]
        columns = ["value", *(bounds or ())]
        finite = drawn[columns].to_numpy(dtype=float).ravel()
        finite = finite[np.isfinite(finite)]
        if finite.size and finite.min() >= 0 and finite.max() <= 1:  # scores in [0, 1]: zoom on bars and intervals
            axis.set_ylim(max(0.0, finite.min() - 0.05), min(1.05, finite.max() + 0.05))
        axis.set_xticks(x, [f"no {p}" for p in chosen_patterns])
        axis.set_xlabel("missing modality")
        axis.set_ylabel(_METRIC_LABELS.get(metric, metric))
        task = sub["task"].iloc[0] if len(sub) else ""
        axis.set_title(f"{task}: {model}")
    axes[-1].legend(frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return finish(fig, options)
