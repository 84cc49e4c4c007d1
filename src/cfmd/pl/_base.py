"""The plotting base shared by every :mod:`cfmd.pl` function.

One convention for all plots (after decoupler 2.x's ``Plotter`` and scanpy's ``pl``): keyword-only
``ax`` (draw into given axes, else create a figure of a sensible size), ``figsize``, ``dpi``,
``return_fig`` (return the figure, else ``None``) and ``save`` (a path; the file type follows the
extension). The parameter descriptions live here once (:data:`PLOT_PARAMS`, :data:`PLOT_RETURNS`) and are
substituted into each function's docstring by :func:`doc_params`.

Plots read what :mod:`cfmd.tl` writes: tidy :class:`~pandas.DataFrame` tables, given directly or looked
up in ``data.uns`` of a :class:`~mudata.MuData` / :class:`~anndata.AnnData`. Everything is validated
before anything is drawn, with :class:`~cfmd.InvalidInputError` naming the missing column or key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import doc_params
from .._validation import InvalidInputError, check_positive_number, describe_examples

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "MARKERS",
    "NA_COLOR",
    "OKABE_ITO",
    "PLOT_AX",
    "PLOT_OPTIONS",
    "PLOT_PARAMS",
    "PLOT_RETURNS",
    "PlotOptions",
    "categorical_palette",
    "axis_limits",
    "ci_columns",
    "doc_params",
    "error_extent",
    "finish",
    "number_pair",
    "numeric_column",
    "open_canvas",
    "plot_options",
    "require_columns",
    "resolve_table",
    "select_values",
]

#: The Okabe-Ito palette (Okabe & Ito 2008; Wong 2011, *Nat. Methods* 8:441), distinguishable under the common
#: colour-vision deficiencies. Ordered so that the first colours have the best contrast on white (yellow late).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)

#: Colour of missing categories and of neutral reference marks.
NA_COLOR = "#BBBBBB"

#: Marker shapes cycled alongside the colours, so that series stay distinguishable beyond eight colours and in
#: grey-scale print.
MARKERS: tuple[str, ...] = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")

#: Docstring fragment of ``ax`` for single-panel plots.
PLOT_AX = """\
ax
    Matplotlib axes to draw into (the plot then adopts that axes' figure and leaves its layout alone).
    ``None`` creates a new figure of size ``figsize``."""

#: Docstring fragment of ``figsize``, ``dpi``, ``return_fig``, ``save``.
PLOT_OPTIONS = """\
figsize
    ``(width, height)`` of a newly created figure, in inches; ``None`` picks a size that suits the plot.
    Ignored when ``ax`` is given.
dpi
    Resolution of the saved file in dots per inch (raster formats such as PNG); ``None`` uses matplotlib's
    ``rcParams["savefig.dpi"]``.
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of ``None``.
save
    Write the figure to this path (missing parent folders are created); the file type follows the extension
    (``.png``, ``.pdf``, ``.svg``, ...). Saved with ``bbox_inches="tight"`` so that outside legends are kept."""

#: Docstring fragment of all common plot parameters (``ax``, ``figsize``, ``dpi``, ``return_fig``, ``save``).
PLOT_PARAMS = PLOT_AX + "\n" + PLOT_OPTIONS

#: Docstring fragment of the *Returns* section of every plot.

PLOT_RETURNS = """\
Returns
-------
The :class:`~matplotlib.figure.Figure` when ``return_fig=True``, otherwise ``None`` (the figure stays open, so
that Jupyter displays it; close it with :func:`matplotlib.pyplot.close` in scripts)."""


# ---------------------------------------------------------------------------------------------- figure handling
@dataclass(frozen=True)
class PlotOptions:
    """Validated plot options (see :data:`PLOT_PARAMS`)."""

    ax: tuple[Axes, ...] | None
    figsize: tuple[float, float] | None
    dpi: float | None
    return_fig: bool
    save: Path | None


def plot_options(
    *,
    ax: Axes | Sequence[Axes] | None,
    figsize: Sequence[float] | None,
    dpi: float | None,
    return_fig: bool,
    save: str | Path | None,
    n_panels: int = 1,
) -> PlotOptions:
    """Validate the common plot options; call before any drawing.

    Parameters
    ----------
    ax, figsize, dpi, return_fig, save
        As documented in :data:`PLOT_PARAMS`.
    n_panels
        Number of axes the plot draws into; ``ax`` must then be a sequence of that many axes.
    """
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import FigureCanvasBase

    axes: tuple[Axes, ...] | None = None
    if ax is not None:
        if n_panels == 1:
            if not isinstance(ax, Axes):
                raise InvalidInputError(f"`ax` must be a matplotlib Axes or None; got {type(ax).__name__}.")
            axes = (ax,)
        else:
            if isinstance(ax, Axes) or not isinstance(ax, Sequence | np.ndarray):
                raise InvalidInputError(
                    f"`ax` must be a sequence of {n_panels} matplotlib Axes (this plot has {n_panels} panels) or None; "
                    f"got {type(ax).__name__}."
                )
            axes = tuple(np.ravel(np.asarray(ax, dtype=object)))
            if len(axes) != n_panels or not all(isinstance(a, Axes) for a in axes):
                raise InvalidInputError(f"`ax` must hold exactly {n_panels} matplotlib Axes; got {len(axes)} item(s).")
    if figsize is not None:
        expected = "two positive numbers (width, height) in inches"
        size = number_pair(figsize, "figsize", expected)
        if not all(v > 0 for v in size):
            raise InvalidInputError(f"`figsize` must be {expected}; got {figsize!r}.")
        figsize = size
    dpi = check_positive_number(dpi, "dpi", allow_none=True)
    if not isinstance(return_fig, bool | np.bool_):
        raise InvalidInputError(f"`return_fig` must be True or False; got {return_fig!r}.")
    path = None
    if save is not None:
        if not isinstance(save, str | Path):
            raise InvalidInputError(f"`save` must be a file path (str or Path) or None; got {type(save).__name__}.")
        path = Path(save)
        suffix = path.suffix.lower().lstrip(".")
        supported = FigureCanvasBase.get_supported_filetypes()
        if suffix not in supported:
            raise InvalidInputError(
                f"`save` path {str(path)!r} must end in a figure file extension; supported: "
                f"{describe_examples(sorted(supported), limit=20)}."
            )
    return PlotOptions(ax=axes, figsize=figsize, dpi=dpi, return_fig=bool(return_fig), save=path)


def open_canvas(
    options: PlotOptions,
    *,
    default_figsize: tuple[float, float],
    n_panels: int = 1,
    sharex: bool = False,
    sharey: bool = False,
) -> tuple[Figure, list[Axes]]:
    """The figure and axes to draw into: the caller's ``ax``, or a new constrained-layout figure."""
    import matplotlib.pyplot as plt

    if options.ax is not None:
        return options.ax[0].figure, list(options.ax)
    fig, axes = plt.subplots(
        1,
        n_panels,
        figsize=options.figsize or default_figsize,
        sharex=sharex,
        sharey=sharey,
        layout="constrained",
        squeeze=False,
    )
    return fig, list(axes.ravel())


def finish(fig: Figure, options: PlotOptions) -> Figure | None:
    """Save the figure if asked, then return it (``return_fig``) or ``None``."""
    if options.save is not None:
        options.save.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"bbox_inches": "tight"}
        if options.dpi is not None:
            kwargs["dpi"] = options.dpi
        fig.savefig(options.save, **kwargs)
    return fig if options.return_fig else None


# ---------------------------------------------------------------------------------------------- colours
def categorical_palette(n: int) -> list[str]:
    """``n`` distinct colours for categories.

    Okabe-Ito up to 8 (colour-blind safe), then matplotlib's ``tab20``, ``tab20b``, ``tab20c`` (60 colours; not
    colour-blind safe, which no palette of that size is), cycled beyond.
    """
    if n <= len(OKABE_ITO):
        return list(OKABE_ITO[:n])
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    pool = [to_hex(c) for name in ("tab20", "tab20b", "tab20c") for c in colormaps[name].colors]
    if n <= 20:
        pool = pool[:20]
    return [pool[i % len(pool)] for i in range(n)]


# ---------------------------------------------------------------------------------------------- tables
def resolve_table(
    data,
    *,
    uns_keys: Sequence[tuple[str, str]],
    field: str,
    key: str | None = None,
) -> tuple[pd.DataFrame, Mapping | None, str]:
    """The tidy result table a plot reads: ``data`` itself or a table stored in ``data.uns``.

    Parameters
    ----------
    data
        A :class:`~pandas.DataFrame`, or an object with ``.uns`` (:class:`~mudata.MuData`, :class:`~anndata.AnnData`).
    uns_keys
        ``(uns key, table key)`` pairs where :mod:`cfmd.tl` stores the table, tried in order; e.g.
        ``[("cfmd_loco", "per_chromosome")]`` for ``data.uns["cfmd_loco"]["per_chromosome"]``.
    field
        Name of the argument for error messages.
    key
        Restrict the look-up to this ``.uns`` key (its table key taken from ``uns_keys`` when listed there; a
        ``.uns`` entry that is itself a DataFrame is used as is).

    Returns
    -------
    The table (a copy; its ``attrs`` completed from the entry's ``"settings"``, e.g. the confidence level ``ci``,
    which ``.h5mu`` files keep while they drop ``attrs``), the ``.uns`` mapping it came from (``None`` for a
    DataFrame; gives access to stored summaries) and a description of where it came from (for error messages).
    """
    if isinstance(data, pd.DataFrame):
        return data.copy(), None, f"`{field}`"
    uns = getattr(data, "uns", None)
    if not isinstance(uns, Mapping):
        raise InvalidInputError(
            f"`{field}` must be a pandas DataFrame or a MuData/AnnData with the table in `.uns`; got {type(data).__name__}."
        )
    candidates = list(uns_keys)
    if key is not None:
        if not isinstance(key, str):
            raise InvalidInputError(f"`key` must be a `.uns` key (str) or None; got {key!r}.")
        known = [c for c in candidates if c[0] == key]
        candidates = known or [(key, "")]
    tried = []
    for uns_key, table_key in candidates:
        where = f"{field}.uns[{uns_key!r}]" + (f"[{table_key!r}]" if table_key else "")
        tried.append(where)
        if uns_key not in uns:
            continue
        entry = uns[uns_key]
        if isinstance(entry, pd.DataFrame):
            return entry.copy(), None, f"{field}.uns[{uns_key!r}]"
        if isinstance(entry, Mapping) and table_key and table_key in entry:
            table = entry[table_key]
            if not isinstance(table, pd.DataFrame):
                raise InvalidInputError(f"{where} must be a pandas DataFrame; got {type(table).__name__}.")
            table = table.copy()
            settings = entry.get("settings")
            if isinstance(settings, Mapping):  # plain values stored by cfmd.tl (kept by .h5mu, unlike .attrs)
                for name, value in settings.items():
                    table.attrs.setdefault(name, value.item() if isinstance(value, np.generic) else value)
            return table, entry, where
        if isinstance(entry, Mapping):
            raise InvalidInputError(
                f"{field}.uns[{uns_key!r}] has no table {table_key!r}; it holds {describe_examples(list(entry))}."
            )
    raise InvalidInputError(
        f"No result table found: expected {' or '.join(tried)} (run the matching `cfmd.tl` function first) "
        f"or pass the DataFrame itself; `.uns` holds {describe_examples(list(uns))}."
    )


def select_values(requested, present: Sequence[str], *, argument: str, column: str, where: str) -> list[str]:
    """The values of a table column a plot draws, as the caller named them (a name or names, in that order).

    Raises :class:`~cfmd.InvalidInputError` naming ``argument`` when a value is not in ``present`` (the column's
    values) or when none is named.
    """
    chosen = [requested] if isinstance(requested, str) else list(requested)
    unknown = [value for value in chosen if value not in present]
    if unknown:
        raise InvalidInputError(
            f"`{argument}` names {describe_examples(unknown)}, absent from {where}['{column}'] "
            f"(which holds {describe_examples(list(present), limit=12)})."
        )
    if not chosen:
        raise InvalidInputError(f"`{argument}` is empty: name at least one {column}.")
    return chosen


def require_columns(table: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Require columns in a result table, naming the missing ones."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"{where} lacks column(s) {describe_examples(missing)}; it has {describe_examples(list(table.columns), limit=12)}."
        )
    if table.empty:
        raise InvalidInputError(f"{where} is empty: expected at least one row.")


def numeric_column(table: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """A column as floats (NaN allowed), raising if it holds non-numeric values."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() & table[column].notna()
    if bad.any():
        raise InvalidInputError(
            f"{where}[{column!r}] must be numeric; found {describe_examples(table.loc[bad, column].unique())}."
        )
    return values.to_numpy(dtype=float)


def number_pair(value, field: str, expected: str) -> tuple[float, float]:
    """``value`` as two finite floats, else an :class:`~cfmd._validation.InvalidInputError` naming ``field``.

    ``expected`` says what the pair is, e.g. ``"(low, high) with low < high"``.
    """
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"`{field}` must be {expected}; got {value!r}.") from None
    if len(pair) != 2 or not all(np.isfinite(pair)):
        raise InvalidInputError(f"`{field}` must be {expected}; got {value!r}.")
    return pair


def axis_limits(value, field: str) -> tuple[float, float] | None:
    """Axis limits ``(low, high)``: two finite numbers with ``low < high``, or ``None``."""
    if value is None:
        return None
    expected = "(low, high): two finite numbers with low < high"
    low, high = number_pair(value, field, expected)
    if not low < high:
        raise InvalidInputError(f"`{field}` must be {expected}; got {value!r}.")
    return low, high


def ci_columns(table: pd.DataFrame, metric: str, where: str, *, required: bool = False) -> tuple[str, str] | None:
    """Names of the lower/upper confidence-bound columns of ``metric``: ``{metric}_low``/``{metric}_high``.

    The one naming of interval bounds that ``tl`` and :mod:`cfmd.metrics` write. The deprecated
    ``{metric}_ci_low``/``{metric}_ci_high`` copies (still written for one release) are not read: a table holding only
    them is an :class:`~cfmd._validation.InvalidInputError` that says which columns to rename. Returns ``None`` when
    neither bound is present, unless ``required``.
    """
    low, high = f"{metric}_low", f"{metric}_high"
    if low in table.columns and high in table.columns:
        return low, high
    if low in table.columns or high in table.columns:
        missing = high if low in table.columns else low
        raise InvalidInputError(f"{where} lacks column {missing!r} (the other bound of the confidence interval).")
    deprecated = [c for c in (f"{metric}_ci_low", f"{metric}_ci_high") if c in table.columns]
    if deprecated:
        raise InvalidInputError(
            f"{where} has the deprecated interval column(s) {deprecated} but not {low!r}/{high!r}, the names cfmd.pl "
            f"reads; rename them (e.g. table.rename(columns={{'{metric}_ci_low': '{low}', '{metric}_ci_high': "
            f"'{high}'}}))."
        )
    if required:
        raise InvalidInputError(
            f"{where} lacks column(s) {low!r}, {high!r} (confidence bounds); it has "
            f"{describe_examples(list(table.columns), limit=12)}."
        )
    return None


def error_extent(estimate: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(2, n)`` non-negative error-bar extents for :meth:`~matplotlib.axes.Axes.errorbar` (NaN bounds -> 0)."""
    lower = np.where(np.isfinite(low), estimate - low, 0.0)
    upper = np.where(np.isfinite(high), high - estimate, 0.0)
    return np.clip(np.vstack([lower, upper]), 0.0, None)
