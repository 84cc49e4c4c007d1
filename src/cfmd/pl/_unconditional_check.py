"""Training latents vs unconditional generations, per model and embedding (seed 004, Figure 5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._validation import check_positive_number
from ._base import (
    NA_COLOR,
    OKABE_ITO,
    PLOT_OPTIONS,
    PLOT_RETURNS,
    doc_params,
    finish,
    numeric_column,
    plot_options,
    require_columns,
    resolve_table,
    select_values,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["unconditional_check"]

_AX_PARAM = """\
ax
    Matplotlib axes to draw into, one per panel (embeddings x models, row by row); ``None`` creates a new
    figure of size ``figsize``."""


@doc_params(ax_param=_AX_PARAM, plot_options=PLOT_OPTIONS, plot_returns=PLOT_RETURNS)
def unconditional_check(
    data,
    *,
    key: str = "cfmd_unconditional",
    models: str | Sequence[str] | None = None,
    bases: str | Sequence[str] | None = None,
    point_size: float = 4.0,
    ax: Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Training latents (grey) and samples generated with no conditions (colour), one panel per embedding and model.

    Draws ``.uns[key]["embedding"]`` of :func:`cfmd.tl.unconditional_check` (this function computes nothing): rows are
    the embeddings (PCA, UMAP), columns the models, each panel on the map fitted to that model's training patients.
    A model whose samples cover the grey cloud reproduces the training manifold without input (the seed's
    multi-condition model); samples bunched in one place do not (the seed's Coherent Denoising, near the mean). The
    panel titles carry the energy distance and F1 from ``.uns[key]["summary"]`` when present.

    Parameters
    ----------
    data
        A MuData / AnnData after :func:`cfmd.tl.unconditional_check`, or its ``embedding`` DataFrame (columns
        ``model``, ``basis``, ``source``, ``x``, ``y``).
    key
        The ``key_added`` of :func:`cfmd.tl.unconditional_check`.
    models
        Model label(s) to draw, in that order (default: all).
    bases
        Embedding(s) to draw (``"pca"``, ``"umap"``; default: all computed).
    point_size
        Marker area in points^2.
    {ax_param}
    {plot_options}

    {plot_returns}

    Examples
    --------
    >>> cfmd.tl.unconditional_check(mdata, {"multi-condition": ld, "Coherent Denoising": cd})  # doctest: +SKIP
    >>> cfmd.pl.unconditional_check(mdata, save="unconditional.png")  # doctest: +SKIP
    """
    table, entry, where = resolve_table(data, uns_keys=[(key, "embedding")], field="data", key=key)
    require_columns(table, ["model", "basis", "source", "x", "y"], where)
    present_models = list(dict.fromkeys(table["model"].astype(str)))
    present_bases = list(dict.fromkeys(table["basis"].astype(str)))
    chosen_models = present_models if models is None else select_values(
        models, present_models, argument="models", column="model", where=where
    )  # fmt: skip
    chosen_bases = present_bases if bases is None else select_values(
        bases, present_bases, argument="bases", column="basis", where=where
    )  # fmt: skip
    n_rows, n_cols = len(chosen_bases), len(chosen_models)
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save, n_panels=n_rows * n_cols)
    point_size = check_positive_number(point_size, "point_size")
    x, y = numeric_column(table, "x", where), numeric_column(table, "y", where)
    summary = entry.get("summary") if entry is not None else None

    if options.ax is not None:
        axes = list(options.ax)
        fig = axes[0].figure
    else:
        import matplotlib.pyplot as plt

        size = options.figsize or (3.4 * n_cols + 0.4, 3.2 * n_rows + 0.3)
        fig, grid = plt.subplots(n_rows, n_cols, figsize=size, layout="constrained", squeeze=False)
        axes = list(grid.ravel())
    model_col, basis_col = table["model"].astype(str).to_numpy(), table["basis"].astype(str).to_numpy()
    source_col = table["source"].astype(str).to_numpy()
    for i, basis in enumerate(chosen_bases):
        for j, model in enumerate(chosen_models):
            axis = axes[i * n_cols + j]
            panel = (model_col == model) & (basis_col == basis)
            if not panel.any():
                axis.set_axis_off()
                continue
            for source, colour, label in (("training", NA_COLOR, "training patients"),
                                          ("generated", OKABE_ITO[0], "generated, no conditions")):  # fmt: skip
                rows = panel & (source_col == source)
                axis.scatter(x[rows], y[rows], s=point_size, c=colour, alpha=0.7, linewidths=0, label=label,
                             rasterized=True)  # fmt: skip
            name = "PCA" if basis == "pca" else basis.upper()
            axis.set_xlabel(f"{name} 1")
            axis.set_ylabel(f"{name} 2")
            if basis != "pca":
                axis.set_xticks([])
                axis.set_yticks([])
            title = model
            if summary is not None and hasattr(summary, "columns") and "model" in summary.columns:
                match = summary[summary["model"].astype(str) == model]
                if len(match) and {"energy_distance_mean", "f1_mean"} <= set(summary.columns):
                    title += (
                        f"\nenergy distance {float(match['energy_distance_mean'].iloc[0]):.3f}, "
                        f"F1 {float(match['f1_mean'].iloc[0]):.2f}"
                    )
            axis.set_title(title, fontsize="medium")
    axes[0].legend(fontsize="small", markerscale=2.5, frameon=False)
    return finish(fig, options)
