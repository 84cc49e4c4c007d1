"""Leave-one-chromosome-out audit: per-chromosome R^2 of the methylation decoders (the paper's Figure 2B)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import CHROMOSOMES, chromosome_label
from .._validation import InvalidInputError, describe_examples
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
    select_values,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["loco"]

#: Display names and colours of the decoders the audit compares; other decoder names get further Okabe-Ito colours.
DECODER_LABELS = {"regional": "Regional decoder", "pointwise": "Point-wise MLP"}
_DECODER_COLORS = {"regional": OKABE_ITO[0], "pointwise": OKABE_ITO[3]}
_OTHER_COLORS = (OKABE_ITO[2], OKABE_ITO[4], OKABE_ITO[1], OKABE_ITO[5], OKABE_ITO[6])
NEGATIVE_CONTROL_KEY = "r2_shuffled_positions"


def _genomic_order(labels: Sequence[str]) -> list[str]:
    """Chromosomes 1..22, X in genomic order, then any others (Y, MT, ...) in order of appearance."""
    present = list(dict.fromkeys(labels))
    known = [c for c in CHROMOSOMES if c in present]
    return known + [c for c in present if c not in CHROMOSOMES]


def _negative_control(negative_control, result, table: pd.DataFrame, summary, where: str) -> float | None:
    """The shuffled-positional-embedding R^2: keyword, then ``.attrs``, column or stored summary."""
    if negative_control is False:
        return None
    if negative_control is not None and negative_control is not True:
        if isinstance(negative_control, bool) or not isinstance(negative_control, int | float | np.number):
            raise InvalidInputError(
                f"`negative_control` must be an R^2 value, True/None (read it from the result) or False; "
                f"got {negative_control!r}."
            )
        return float(negative_control)
    candidates = []
    if isinstance(result, pd.DataFrame) and NEGATIVE_CONTROL_KEY in result.attrs:
        candidates.append(result.attrs[NEGATIVE_CONTROL_KEY])
    if NEGATIVE_CONTROL_KEY in table.columns:
        values = pd.to_numeric(table[NEGATIVE_CONTROL_KEY], errors="coerce").dropna().unique()
        if len(values) > 1:
            raise InvalidInputError(
                f"{where}[{NEGATIVE_CONTROL_KEY!r}] must hold one value (the negative control's R^2); "
                f"found {describe_examples(values)}."
            )
        candidates.extend(values)
    if summary is not None and NEGATIVE_CONTROL_KEY in summary:
        candidates.append(summary[NEGATIVE_CONTROL_KEY])
    for value in candidates:
        value = float(np.asarray(value).ravel()[0]) if np.size(value) else np.nan
        if np.isfinite(value):
            return value
    if negative_control is True:
        raise InvalidInputError(
            f"`negative_control=True` but no shuffled-position R^2 was found: expected `{NEGATIVE_CONTROL_KEY}` in "
            f"the table's .attrs, as a column, or in .uns['cfmd_loco']['summary']."
        )
    return None


@doc_params(plot_params=PLOT_PARAMS, plot_returns=PLOT_RETURNS)
def loco(
    result: pd.DataFrame,
    *,
    decoders: Sequence[str] | None = None,
    negative_control: float | bool | None = None,
    show_reference: bool = True,
    title: str | None = "Leave-one-chromosome-out audit",
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Per-chromosome R^2 of the methylation decoders under leave-one-chromosome-out (LOCO) training.

    Grouped bars, one group per held-out chromosome in genomic order (1..22, X; others such as Y after them), one
    bar per decoder (the Regional Methylation Decoder and the point-wise MLP baseline). Each decoder's R^2 on a
    random (not chromosome-wise) split is drawn as a solid horizontal line of the decoder's colour, so the LOCO drop
    is the gap between the bars and their line; the shuffled-positional-embedding negative control, when known, is
    a dashed black line. A decoder that relies on chromosomal position rather than transcriptomic context shows bars
    well below its line (spatial leakage), and the negative control marks where position carries no signal.

    Parameters
    ----------
    result
        The LOCO result: a tidy DataFrame with columns ``chromosome`` (``"1"``..``"22"``, ``"X"``; ``"chr1"`` and
        integers are accepted), ``decoder`` (``"regional"`` / ``"pointwise"``; other names are drawn too),
        ``r2`` (R^2 of the methylation slice on test patients with that chromosome held out) and ``r2_random``
        (the decoder's R^2 on a random split, one value per decoder; NaN draws no line), optionally ``delta_r2``
        (``r2_random - r2``; its mean is given in the legend) and ``r2_shuffled_positions``. Or a MuData/AnnData
        holding it in
        ``.uns["cfmd_loco"]["per_chromosome"]`` (the negative control then also comes from
        ``.uns["cfmd_loco"]["summary"]["r2_shuffled_positions"]``).
    decoders
        The decoders to draw, in this order (default: ``regional``, ``pointwise``, then the others as in the table).
    negative_control
        R^2 of the model trained with shuffled chromosomal positional embeddings. ``None`` reads it, when present,
        from ``result.attrs``, the column ``r2_shuffled_positions`` or the stored summary; ``True`` requires it to be
        found there; ``False`` draws no negative control.
    show_reference
        Draw the random-split reference line of each decoder.
    title
        Axes title (``None`` for none).
    {plot_params}

    {plot_returns}

    Examples
    --------
    >>> import pandas as pd, cfmd
    >>> table = pd.DataFrame(
    ...     {
    ...         "chromosome": ["1", "2", "1", "2"],
    ...         "decoder": ["regional", "regional", "pointwise", "pointwise"],
    ...         "r2": [0.75, 0.76, 0.40, 0.39],
    ...         "r2_random": [0.77, 0.77, 0.52, 0.52],
    ...     }
    ... )
    >>> fig = cfmd.pl.loco(table, negative_control=0.02, return_fig=True)
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save)
    table, container, where = resolve_table(result, uns_keys=[("cfmd_loco", "per_chromosome")], field="result")
    require_columns(table, ["chromosome", "decoder", "r2", "r2_random"], where)
    summary = container.get("summary") if container is not None else None
    if summary is not None and not hasattr(summary, "__contains__"):
        summary = None
    table["chromosome"] = [chromosome_label(c) for c in table["chromosome"]]
    table["decoder"] = table["decoder"].astype(str)
    table["r2"] = numeric_column(table, "r2", where)
    table["r2_random"] = numeric_column(table, "r2_random", where)
    if "delta_r2" in table.columns:
        table["delta_r2"] = numeric_column(table, "delta_r2", where)
    duplicated = table.duplicated(["decoder", "chromosome"])
    if duplicated.any():
        pairs = [f"{d}/chr{c}" for d, c in table.loc[duplicated, ["decoder", "chromosome"]].itertuples(index=False)]
        raise InvalidInputError(f"{where} has more than one row per (decoder, chromosome): {describe_examples(pairs)}.")

    present = list(dict.fromkeys(table["decoder"]))
    if decoders is None:
        order = [d for d in DECODER_LABELS if d in present] + [d for d in present if d not in DECODER_LABELS]
    else:
        order = select_values(decoders, present, argument="decoders", column="decoder", where=where)
        table = table[table["decoder"].isin(order)]
    references = {}
    for decoder in order:
        values = table.loc[table["decoder"] == decoder, "r2_random"].dropna().unique()
        if len(values) > 1 and not np.allclose(values, values[0]):
            raise InvalidInputError(
                f"{where}['r2_random'] must be one value per decoder (the random-split reference); decoder "
                f"{decoder!r} has {describe_examples(values)}."
            )
        references[decoder] = float(values[0]) if len(values) else np.nan
    control = _negative_control(negative_control, result, table, summary, where)
    chromosomes = _genomic_order(list(table["chromosome"]))
    if not isinstance(show_reference, bool):
        raise InvalidInputError(f"`show_reference` must be True or False; got {show_reference!r}.")

    # ------------------------------------------------------------------ draw
    fig, (axis,) = open_canvas(options, default_figsize=(max(6.0, 0.2 * len(chromosomes) * len(order) + 1.5), 4.6))
    extra_colors = iter(_OTHER_COLORS * (1 + len(order) // len(_OTHER_COLORS)))
    colors = {d: _DECODER_COLORS.get(d) or next(extra_colors) for d in order}
    x = np.arange(len(chromosomes), dtype=float)
    width = 0.8 / len(order)
    handles = []
    n_reference_lines = 0
    for k, decoder in enumerate(order):
        rows = table[table["decoder"] == decoder].set_index("chromosome")
        heights = rows["r2"].reindex(chromosomes).to_numpy(dtype=float)
        offsets = x - 0.4 + width * (k + 0.5)
        label = f"{DECODER_LABELS.get(decoder, decoder)}, LOCO"
        if "delta_r2" in rows.columns and rows["delta_r2"].notna().any():
            label += f" (mean \u0394R\u00b2 = {np.nanmean(rows['delta_r2'].to_numpy(dtype=float)):.3f})"
        finite = np.isfinite(heights)
        bars = axis.bar(
            offsets[finite],
            heights[finite],
            width=width,
            color=colors[decoder],
            edgecolor="white",
            linewidth=0.5,
            label=label,
            gid=f"loco-bar-{decoder}",
        )
        handles.append(bars)
        if show_reference and np.isfinite(references[decoder]):
            line = axis.axhline(
                references[decoder],
                color=colors[decoder],
                linestyle="-",
                linewidth=1.4,
                alpha=0.9,
                zorder=3,
                label=f"{DECODER_LABELS.get(decoder, decoder)}, random split (R\u00b2 = {references[decoder]:.3f})",
                gid=f"loco-reference-{decoder}",
            )
            handles.append(line)
            n_reference_lines += 1
    if control is not None:
        line = axis.axhline(
            control,
            color="black",
            linestyle="--",
            linewidth=1.2,
            zorder=3,
            label=f"Shuffled positions, negative control (R\u00b2 = {control:.3f})",
            gid="loco-negative-control",
        )
        handles.append(line)
    axis.axhline(0.0, color="#555555", linewidth=0.6, zorder=1)
    axis.set_xticks(x, chromosomes)
    axis.set_xlim(-0.6, len(chromosomes) - 0.4)
    axis.set_xlabel("Held-out chromosome")
    axis.set_ylabel("R\u00b2 of the meth slice, chromosome held out")
    values = np.concatenate([table["r2"].to_numpy(dtype=float), [v for v in references.values() if np.isfinite(v)]])
    if control is not None:
        values = np.append(values, control)
    values = values[np.isfinite(values)]
    top = max(1.0, float(values.max()) + 0.05) if values.size else 1.0
    bottom = min(0.0, float(values.min()) - 0.05) if values.size else 0.0
    axis.set_ylim(bottom, top)
    axis.grid(axis="y", color="#DDDDDD", linewidth=0.6)
    axis.set_axisbelow(True)
    axis.spines[["top", "right"]].set_visible(False)
    if title:
        axis.set_title(title)
    n_columns = int(np.ceil(len(handles) / (2 if n_reference_lines else 1)))  # one column per decoder
    # a legend wider than the figure would squeeze the axes (constrained layout): ~3.2 inches per column
    n_columns = max(1, min(n_columns, int(axis.figure.get_figwidth() // 3.2)))
    axis.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=n_columns,
        frameon=False,
        fontsize="small",
    )
    return finish(fig, options)
