"""Observed and imputed latents side by side on the UMAP embedding :func:`cfmd.tl.latent_umap` stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._constants import DEFAULT_LATENT_KEY
from .._logging import logger
from .._validation import InvalidInputError, check_obs_columns, check_obsm, check_positive_number, describe_examples
from ._base import (
    NA_COLOR,
    OKABE_ITO,
    PLOT_OPTIONS,
    PLOT_RETURNS,
    categorical_palette,
    doc_params,
    finish,
    open_canvas,
    plot_options,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["latent_umap"]

_AX_PARAM = """\
ax
    Two matplotlib axes ``(observed, imputed)`` to draw into (the plot then adopts their figure and leaves its
    layout alone); ``None`` creates a new figure of size ``figsize`` with two panels."""


def _patient_mask(patients, obs: pd.DataFrame) -> np.ndarray:
    """Boolean mask over ``obs`` rows from ``None``, a boolean mask, or ``(column, value(s))``."""
    n = len(obs)
    if patients is None:
        return np.ones(n, dtype=bool)
    if isinstance(patients, tuple) and len(patients) == 2 and isinstance(patients[0], str):
        column, value = patients
        check_obs_columns(obs, [column], field="mdata.obs")
        wanted = list(value) if isinstance(value, list | set | tuple | np.ndarray | pd.Index) else [value]
        values = obs[column]
        present = set(values.dropna().unique())
        missing = [v for v in wanted if v not in present]
        if len(missing) == len(wanted):
            raise InvalidInputError(
                f"`patients`: mdata.obs[{column!r}] has no patient with value {describe_examples(missing)}; "
                f"its values: {describe_examples(sorted(map(str, present)), limit=12)}."
            )
        return values.isin(wanted).to_numpy()
    if isinstance(patients, pd.Series):
        if not patients.index.equals(obs.index):
            if not obs.index.isin(patients.index).all():
                raise InvalidInputError("`patients` (a Series) must be indexed by mdata.obs_names and cover them all.")
            patients = patients.reindex(obs.index)
        patients = patients.to_numpy()
    mask = np.asarray(patients)
    if mask.dtype != bool or mask.shape != (n,):
        raise InvalidInputError(
            f"`patients` must be a boolean mask over the {n} patients (shape ({n},)) or a (obs column, value) tuple "
            f"such as ('split', 'test'); got {type(patients).__name__} of dtype {mask.dtype} and shape {mask.shape}."
        )
    return mask


def _stored_embedding(mdata, latent_key: str, basis: str, observed_key: str, imputed_key: str) -> np.ndarray:
    """The stored UMAP coordinates of ``.obsm[latent_key]``; a missing one names the command that computes it."""
    from ..tl._latent_umap import umap_key

    key = umap_key(latent_key, basis)
    if key not in mdata.obsm:
        raise InvalidInputError(
            f"mdata.obsm has no {key!r}, the UMAP of .obsm[{latent_key!r}]: cfmd.pl only draws. Compute the shared "
            f"embedding first with cfmd.tl.latent_umap(mdata, observed_key={observed_key!r}, "
            f"imputed_keys=[{imputed_key!r}], key_added={basis!r})."
        )
    coords = check_obsm(mdata, key, field="mdata").astype(float, copy=False)
    if coords.shape[1] != 2:
        raise InvalidInputError(f"mdata.obsm[{key!r}] must hold 2-d UMAP coordinates; got {coords.shape[1]} columns.")
    return coords


def _category_colors(
    values: pd.Series, categories: list, palette, uns: Mapping, color: str, all_categories: list
) -> dict[Any, str]:
    """Colour per category: ``palette`` (sequence or mapping), scanpy's ``uns[f"{color}_colors"]``, or the default."""
    if palette is not None:
        if isinstance(palette, Mapping):
            missing = [c for c in categories if c not in palette]
            if missing:
                raise InvalidInputError(f"`palette` has no colour for categor(ies) {describe_examples(missing)}.")
            return {c: palette[c] for c in categories}
        if isinstance(palette, str):
            from matplotlib import colormaps

            try:
                cmap = colormaps[palette]
            except KeyError:
                raise InvalidInputError(f"`palette` {palette!r} is not a matplotlib colormap name.") from None
            colours = getattr(cmap, "colors", None) or [
                cmap(i / max(len(categories) - 1, 1)) for i in range(len(categories))
            ]
            return {c: colours[i % len(colours)] for i, c in enumerate(categories)}
        palette = list(palette)
        if len(palette) < len(categories):
            raise InvalidInputError(f"`palette` lists {len(palette)} colours for {len(categories)} categories.")
        return dict(zip(categories, palette))
    stored = uns.get(f"{color}_colors") if hasattr(uns, "get") else None
    if stored is not None and len(stored) == len(all_categories):
        lookup = dict(zip(all_categories, stored))
        return {c: lookup[c] for c in categories}
    return dict(zip(categories, categorical_palette(len(categories))))


@doc_params(ax_param=_AX_PARAM, plot_options=PLOT_OPTIONS, plot_returns=PLOT_RETURNS)
def latent_umap(
    mdata,
    *,
    observed_key: str = DEFAULT_LATENT_KEY,
    imputed_key: str = "X_cfmd",
    basis: str = "umap",
    color: str | None = "cancer_type",
    patients: np.ndarray | pd.Series | tuple[str, Any] | None = None,
    random_state: int = 0,
    palette: str | Sequence[str] | Mapping[Any, str] | None = None,
    cmap: str = "viridis",
    point_size: float | None = None,
    title: str | None = None,
    ax: Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    return_fig: bool = False,
    save: str | Path | None = None,
) -> Figure | None:
    """Observed and imputed latents side by side, on the same UMAP coordinates.

    Draws the embedding :func:`cfmd.tl.latent_umap` stored (this function computes nothing): the observed latent's
    UMAP ``mdata.obsm[umap_key(observed_key, basis)]`` (e.g. ``"X_umap_structured"``; patients without the observed
    latent are NaN rows and are not drawn) and the imputed latent placed into that same embedding
    (``mdata.obsm[umap_key(imputed_key, basis)]``, e.g. ``"X_umap_cfmd"``). The two panels share their coordinates and
    axis limits: an imputed patient that lands where observed patients of its cancer type lie has kept the latent's
    structure. The points are drawn in a seeded random order so that no category hides another.

    Parameters
    ----------
    mdata
        A :class:`~mudata.MuData` (or :class:`~anndata.AnnData`) after :func:`cfmd.tl.latent_umap`, with ``color``
        in ``.obs``.
    observed_key
        ``.obsm`` key of the observed structured latent whose UMAP is drawn on the left.
    imputed_key
        ``.obsm`` key of the imputed latent (``cfmd.tl.impute``'s ``key_added``) whose UMAP is drawn on the right.
    basis
        The ``key_added`` of :func:`cfmd.tl.latent_umap`.
    color
        ``.obs`` column to colour by: categorical (category, string or boolean dtype; one legend, colours from
        ``palette``, else ``mdata.uns[f"{color}_colors"]`` as scanpy stores them, else Okabe-Ito up to 8
        categories) or numeric (continuous, ``cmap``, one colour bar with limits shared by both panels). Missing
        values are grey. ``None`` draws every patient in one colour.
    patients
        Which patients to draw: a boolean mask over ``mdata.obs_names``, or an ``(obs column, value)`` tuple
        (the value may be a list), e.g. ``("split", "test")``. Default: all. The UMAP was fitted on every observed
        patient, so the panels of a subset sit on the same reference map as the whole cohort's.
    random_state
        Seed of the drawing order.
    palette
        Colours of the categories: a matplotlib colormap name, a sequence (in category order) or a mapping
        ``{category: colour}``.
    cmap
        Colormap of a numeric ``color`` (default viridis, perceptually uniform and colour-blind safe).
    point_size
        Marker area in points^2; default scales with the number of patients drawn.
    title
        Figure title above both panels (only for a figure this function creates; default none).
    {ax_param}
    {plot_options}

    {plot_returns}

    Notes
    -----
    UMAP axes have no units (only neighbourhoods are meaningful), so the panels are labelled ``UMAP 1`` /
    ``UMAP 2`` without tick labels, as in scanpy.

    Examples
    --------
    >>> import cfmd
    >>> cfmd.tl.latent_umap(mdata, observed_key="X_structured", imputed_keys="X_cfmd")  # doctest: +SKIP
    >>> cfmd.pl.latent_umap(mdata, color="cancer_type", patients=("split", "test"))  # doctest: +SKIP
    """
    options = plot_options(ax=ax, figsize=figsize, dpi=dpi, return_fig=return_fig, save=save, n_panels=2)
    obs = getattr(mdata, "obs", None)
    if not isinstance(obs, pd.DataFrame) or not hasattr(mdata, "obsm"):
        raise InvalidInputError(f"`mdata` must be a MuData or AnnData object; got {type(mdata).__name__}.")
    observed = _stored_embedding(mdata, observed_key, basis, observed_key, imputed_key)
    imputed = _stored_embedding(mdata, imputed_key, basis, observed_key, imputed_key)
    if color is not None:
        if not isinstance(color, str):
            raise InvalidInputError(f"`color` must be an obs column name or None; got {color!r}.")
        check_obs_columns(obs, [color], field="mdata.obs")
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) or random_state < 0:
        raise InvalidInputError(f"`random_state` must be an integer >= 0; got {random_state!r}.")
    point_size = check_positive_number(point_size, "point_size", allow_none=True)
    selected = _patient_mask(patients, obs)
    if not selected.any():
        raise InvalidInputError("`patients` selects no patient.")

    fit_rows = np.isfinite(observed).all(axis=1)
    imputed_finite = np.isfinite(imputed).all(axis=1)
    if (selected & ~imputed_finite).any():
        logger.warning(
            "latent_umap: %d selected patient(s) have no UMAP coordinates in .obsm[%r] and are not drawn.",
            int((selected & ~imputed_finite).sum()),
            imputed_key,
        )
    show_observed = selected & fit_rows
    show_imputed = selected & imputed_finite
    if not show_imputed.any():
        raise InvalidInputError(f"mdata.obsm[{imputed_key!r}] has no finite row among the selected patients.")

    # Colour values, validated before any work.
    colour_values = None
    categorical = False
    if color is not None:
        colour_values = obs[color]
        categorical = not pd.api.types.is_numeric_dtype(colour_values) or pd.api.types.is_bool_dtype(colour_values)
        if isinstance(colour_values.dtype, pd.CategoricalDtype):
            categorical = True
    colour_of: dict = {}
    if categorical:
        if isinstance(colour_values.dtype, pd.CategoricalDtype):
            all_categories = list(colour_values.cat.categories)
        else:
            all_categories = sorted(colour_values.dropna().unique(), key=str)
        drawn = set(colour_values[show_observed | show_imputed].dropna())
        categories = [c for c in all_categories if c in drawn]
        colour_of = _category_colors(
            colour_values, categories, palette, getattr(mdata, "uns", {}), color, all_categories
        )

    panels = [
        (observed[show_observed], show_observed, f"Observed ({observed_key})"),
        (imputed[show_imputed], show_imputed, f"Imputed ({imputed_key})"),
    ]

    # ------------------------------------------------------------------ draw
    fig, axes = open_canvas(options, default_figsize=(10.5, 4.6), n_panels=2, sharex=True, sharey=True)
    rng = np.random.default_rng(random_state)
    n_drawn = max(int(show_observed.sum()), int(show_imputed.sum()))
    size = float(point_size) if point_size is not None else float(np.clip(20000 / n_drawn, 3.0, 40.0))
    norm = None
    if colour_values is not None and not categorical:
        numeric = colour_values.to_numpy(dtype=float)
        shown = numeric[(show_observed | show_imputed) & np.isfinite(numeric)]
        from matplotlib.colors import Normalize

        norm = Normalize(*(float(shown.min()), float(shown.max())) if shown.size else (0.0, 1.0))
    mappable = None
    for axis, (coords, mask, label) in zip(axes, panels):
        order = rng.permutation(len(coords))
        coords = coords[order]
        if colour_values is None:
            axis.scatter(coords[:, 0], coords[:, 1], s=size, c=OKABE_ITO[0], linewidths=0, gid="umap-points")
        elif categorical:
            values = colour_values[mask].to_numpy()[order]
            facecolors = [colour_of.get(v, NA_COLOR) if not pd.isna(v) else NA_COLOR for v in values]
            axis.scatter(coords[:, 0], coords[:, 1], s=size, c=facecolors, linewidths=0, gid="umap-points")
        else:
            values = colour_values[mask].to_numpy(dtype=float)[order]
            missing = ~np.isfinite(values)
            if missing.any():
                axis.scatter(coords[missing, 0], coords[missing, 1], s=size, c=NA_COLOR, linewidths=0, gid="umap-na")
            mappable = axis.scatter(
                coords[~missing, 0],
                coords[~missing, 1],
                s=size,
                c=values[~missing],
                cmap=cmap,
                norm=norm,
                linewidths=0,
                gid="umap-points",
            )
        axis.set_title(f"{label}, n = {len(coords)}")
        axis.set_xlabel("UMAP 1")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_aspect("auto")
    axes[0].set_ylabel("UMAP 2")
    axes[1].set_ylabel("")
    # Shared limits (also when the caller's axes are not shared).
    everything = np.vstack([p[0] for p in panels])
    low, high = np.nanmin(everything, axis=0), np.nanmax(everything, axis=0)
    margin = 0.05 * np.maximum(high - low, 1e-9)
    for axis in axes:
        axis.set_xlim(low[0] - margin[0], high[0] + margin[0])
        axis.set_ylim(low[1] - margin[1], high[1] + margin[1])
    if categorical:
        from matplotlib.lines import Line2D

        handles = [
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markersize=6,
                markerfacecolor=colour_of[c],
                markeredgewidth=0,
                label=str(c),
            )
            for c in colour_of
        ]
        if colour_values[show_observed | show_imputed].isna().any():
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="",
                    marker="o",
                    markersize=6,
                    markerfacecolor=NA_COLOR,
                    markeredgewidth=0,
                    label="NA",
                )
            )
        axes[1].legend(
            handles=handles,
            title=color,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            frameon=False,
            fontsize="small",
            title_fontsize="small",
            ncol=1 if len(handles) <= 16 else 2,
        )
    elif mappable is not None:
        fig.colorbar(mappable, ax=list(axes), label=color, shrink=0.85)
    if title and options.ax is None:
        fig.suptitle(title)
    return finish(fig, options)
