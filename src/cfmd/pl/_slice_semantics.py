"""Do the owned slices mean their modality? The table of :func:`cfmd.tl.slice_semantics` as three panels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._base import (
    NA_COLOR,
    OKABE_ITO,
    PLOT_OPTIONS,
    PLOT_RETURNS,
    axis_limits,
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

__all__ = ["slice_semantics"]

#: (panel title, [(column, label, colour)]) of the three panels.
_PANELS = (
    (
        "(a) slice -> its modality",
        [("r2_slice_to_modality", "owned slice", OKABE_ITO[0]), ("r2_pca_ceiling", "PCA, same width", NA_COLOR)],
    ),
    (
        "(b) RNA -> ...",
        [
            ("r2_rna_to_slice", "RNA -> slice", OKABE_ITO[1]),
            ("r2_rna_to_modality", "RNA -> modality", OKABE_ITO[2]),
        ],
    ),
    (
        "(c) RNA-only posterior",
        [
            ("r2_rna_only_vs_full", "RNA-only vs full", OKABE_ITO[3]),
            ("r2_rna_to_modality", "RNA -> modality", OKABE_ITO[2]),
        ],
    ),
)


@doc_params(plot_options=PLOT_OPTIONS, plot_returns=PLOT_RETURNS)
def slice_semantics(
    data,
    *,
    key: str | None = None,
    ylim: tuple[float, float] | None = None,
    ax: Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Do the owned slices mean their modality? Three panels of held-out :math:`R^2` per owned slice.

    (a) the slice predicting its modality vs a PCA of the same width; (b) RNA predicting the slice vs the
    modality; (c) the RNA-only posterior matching the full one, next to RNA predicting the modality. Only draws; the numbers come from :func:`cfmd.tl.slice_semantics`. Slices that fail its criteria get an
    asterisk in their tick label.

    Parameters
    ----------
    data
        The table (columns ``slice``, ``r2_slice_to_modality``, ``r2_pca_ceiling``, ``r2_rna_to_slice``,
        ``r2_rna_to_modality``, ``r2_rna_only_vs_full``; optionally ``passes``), or a MuData/AnnData holding it
        in ``.uns["cfmd_slice_semantics"]["table"]``.
    key
        ``.uns`` key to read (default ``"cfmd_slice_semantics"``).
    ylim
        Limits of the :math:`R^2` axes (shared); default: the data range and [0, 1], negative values clipped at
        -1 (marked with their value).
    ax
        Three matplotlib Axes to draw into (else a new figure).
    {plot_options}

    {plot_returns}

    Examples
    --------
    >>> import pandas as pd, cfmd
    >>> table = pd.DataFrame(
    ...     {
    ...         "slice": ["meth", "cnv"],
    ...         "r2_slice_to_modality": [0.6, 0.5],
    ...         "r2_pca_ceiling": [0.7, 0.6],
    ...         "r2_rna_to_slice": [0.4, 0.3],
    ...         "r2_rna_to_modality": [0.35, 0.3],
    ...         "r2_rna_only_vs_full": [0.3, 0.2],
    ...     }
    ... )
    >>> fig = cfmd.pl.slice_semantics(table, return_fig=True)
    >>> len(fig.axes)
    3
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save, n_panels=3)
    table, _, where = resolve_table(
        data, uns_keys=[(key or "cfmd_slice_semantics", "table")], field="data", key=key or "cfmd_slice_semantics"
    )
    columns = sorted({c for _, bars in _PANELS for c, _, _ in bars})
    require_columns(table, ["slice", *columns], where)
    values = {c: numeric_column(table, c, where) for c in columns}
    ylim = axis_limits(ylim, "ylim")
    names = table["slice"].astype(str).tolist()
    if "passes" in table.columns:
        names = [n if bool(p) else f"{n} *" for n, p in zip(names, table["passes"])]
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] + [np.array([0.0, 1.0])])
    low, high = ylim if ylim is not None else (max(float(finite.min()), -1.0) - 0.05, float(finite.max()) + 0.05)

    fig, axes = open_canvas(options, default_figsize=(3.2 * 3, 3.4), n_panels=3, sharey=True)
    x = np.arange(len(names))
    for axis, (title, bars) in zip(axes, _PANELS):
        width = 0.8 / len(bars)
        for j, (column, label, colour) in enumerate(bars):
            v = values[column]
            shown = np.clip(np.nan_to_num(v, nan=0.0), low, high)
            pos = x - 0.4 + width * (j + 0.5)
            axis.bar(pos, shown, width=width, color=colour, label=label, edgecolor="white")
            for p, raw in zip(pos, v):
                if np.isfinite(raw) and raw < low:
                    axis.annotate(f"{raw:.2f}", (p, low), ha="center", va="bottom", fontsize=7, rotation=90)
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(x, names)
        axis.set_ylim(low, high)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=7, frameon=False, loc="upper right")
    axes[0].set_ylabel("held-out $R^2$")
    return finish(fig, options)
