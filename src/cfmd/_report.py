"""Figures and the Markdown report of the ``cfmd`` command line (``cfmd demo``, ``cfmd benchmark``).

Everything here reads results that :mod:`cfmd.tl` already computed and draws them with :mod:`cfmd.pl`; nothing
trains a model. A figure that cannot be drawn (for example a cohort too small for a survival score) is skipped
with a logged warning and its reason, so that the tables of a long run are never lost to a plot.
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._constants import DEFAULT_LATENT_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY
from ._logging import logger
from ._validation import InvalidInputError

if TYPE_CHECKING:
    from mudata import MuData

__all__ = [
    "DEMO_IMPUTED_KEYS",
    "FigureSet",
    "benchmark_figures",
    "benchmark_report",
    "demo_figures",
    "describe_cohort",
]

#: The imputed latents ``cfmd demo`` writes (``.obsm`` keys of ``results.h5mu``) and their display names.
DEMO_IMPUTED_KEYS = {"CFMD (planted teacher signals)": "X_cfmd", "CFMD (tiny stand-in teachers)": "X_cfmd_tiny"}
#: Display name of the zero-masking baseline in the demo's figures.
ZERO_MASK_LABEL = "Zero-mask"
#: Resolution of the PNG figures.
FIGURE_DPI = 150


@dataclass
class FigureSet:
    """Figures written by :func:`demo_figures` / :func:`benchmark_figures`.

    Parameters
    ----------
    paths
        ``{figure name: path}`` of every figure written.
    skipped
        ``{figure name: reason}`` of every figure that could not be drawn.
    tables
        ``{table name: path}`` of the tables written next to the figures.
    """

    paths: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)


def _draw(figures: FigureSet, name: str, path: Path, plot, *args, **kwargs) -> None:
    """Draw one figure with ``plot(*args, save=path, **kwargs)``; record it, or its reason when it fails."""
    import matplotlib.pyplot as plt

    try:
        fig = plot(*args, save=path, dpi=FIGURE_DPI, return_fig=True, **kwargs)
    except InvalidInputError as error:
        figures.skipped[name] = str(error)
        logger.warning("figure %s skipped: %s", name, error)
        return
    plt.close(fig)
    figures.paths[name] = path
    logger.info("wrote %s", path)


# ---------------------------------------------------------------------------------------------- cfmd demo
def demo_figures(
    mdata: MuData,
    directory: str | Path,
    *,
    observed_key: str = DEFAULT_LATENT_KEY,
    imputed_keys: Mapping[str, str] | None = None,
    split_key: str = DEFAULT_SPLIT_KEY,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
) -> FigureSet:
    """The demo's figures: observed vs imputed latent UMAP, per-slice R^2 and reconstruction vs utility.

    The imputed latents (predictions for every patient, ``fill="all"``; :func:`cfmd.tl.evaluate` refuses observed
    latents and patients a model trained on) are scored against zero-masking on the held-out test patients with
    :func:`cfmd.tl.evaluate` (bootstrap intervals, frozen survival head); the scores are written as
    ``evaluation_slices.csv`` / ``evaluation_summary.csv`` next to the figures. When the cohort is too small for a
    survival score (a split without events), the R^2 figures are still drawn and the reconstruction-utility figure
    is skipped.

    Parameters
    ----------
    mdata
        The demo's ``results.h5mu``: the observed latent, the imputed latents (``fill="all"``) and the split. It is
        changed in memory: ``.obsm["X_zero_mask"]``, ``.uns["cfmd_evaluation"]`` and the shared UMAP of
        :func:`cfmd.tl.latent_umap` (``.obsm["X_umap_*"]``, ``.uns["cfmd_umap"]``) are added.
    directory
        Output folder (created).
    observed_key
        ``.obsm`` key of the observed latent.
    imputed_keys
        ``{display name: .obsm key}`` of the imputed latents (default :data:`DEMO_IMPUTED_KEYS`, those present).
        The first one is drawn in the UMAP.
    split_key
        ``.obs`` column of the patient split; the test patients are scored and drawn.
    n_boot, seed
        Bootstrap resamples and seed of the intervals.

    Returns
    -------
    The figures written (``latent_umap``, ``slice_r2``, ``reconstruction_utility``), the skipped ones and the
    tables.
    """
    from . import pl, tl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = dict(DEMO_IMPUTED_KEYS if imputed_keys is None else imputed_keys)
    keys = {label: key for label, key in keys.items() if key in mdata.obsm}
    if not keys:
        raise InvalidInputError(
            f"mdata.obsm has none of the imputed latents {list((imputed_keys or DEMO_IMPUTED_KEYS).values())}."
        )
    figures = FigureSet()
    width = np.shape(mdata.obsm[observed_key])[1]
    mdata.obsm["X_zero_mask"] = np.zeros((mdata.n_obs, width), dtype=np.float32)
    predicted = {**keys, ZERO_MASK_LABEL: "X_zero_mask"}
    evaluation_options = {"truth_key": observed_key, "split_key": split_key, "n_boot": n_boot, "seed": seed}
    with warnings.catch_warnings():
        # zero-masking is trained on no patient: its missing split record is expected, not a warning
        warnings.filterwarnings("ignore", message=r"mdata\.uns\['X_zero_mask'\] has no record", category=UserWarning)
        try:
            tl.evaluate(mdata, predicted_keys=predicted, reference=ZERO_MASK_LABEL, **evaluation_options)
        except InvalidInputError as error:
            logger.warning("demo figures: no survival score (%s); scoring the latent R^2 only.", error)
            figures.skipped["reconstruction_utility"] = f"no survival score: {error}"
            tl.evaluate(mdata, predicted_keys=predicted, survival=False, **evaluation_options)
    evaluation = mdata.uns["cfmd_evaluation"]
    settings = tl.evaluation_settings(evaluation)  # plain values, as a written .h5mu keeps them (not .attrs)
    for name in ("slices", "summary"):
        evaluation[name].attrs.update(settings)
        path = directory / f"evaluation_{name}.csv"
        evaluation[name].to_csv(path, index=False)
        figures.tables[f"evaluation_{name}"] = path

    first_label, first_key = next(iter(keys.items()))
    tl.latent_umap(mdata, observed_key=observed_key, imputed_keys=first_key, random_state=seed)
    _draw(
        figures,
        "latent_umap",
        directory / "latent_umap.png",
        pl.latent_umap,
        mdata,
        observed_key=observed_key,
        imputed_key=first_key,
        patients=(split_key, "test"),
        random_state=seed,
        title=f"Held-out test patients: observed latent (left) vs {first_label} (right)",
    )
    _draw(
        figures,
        "slice_r2",
        directory / "slice_r2.png",
        pl.slice_r2,
        evaluation["slices"],
        title="Per-slice R\u00b2 on held-out test patients",
    )
    if "reconstruction_utility" not in figures.skipped:
        _draw(
            figures,
            "reconstruction_utility",
            directory / "reconstruction_utility.png",
            pl.reconstruction_utility,
            evaluation["summary"],
            reference=ZERO_MASK_LABEL,
        )
    return figures


# ---------------------------------------------------------------------------------------------- cfmd benchmark
def _labelled(table: pd.DataFrame, column: str = "method") -> pd.DataFrame:
    """A copy of a benchmark table with method identifiers replaced by their display labels."""
    from .tl import METHODS

    table = table.copy()
    table[column] = [METHODS[m].label if m in METHODS else m for m in table[column]]
    return table


def benchmark_figures(
    result: Mapping[str, pd.DataFrame],
    directory: str | Path,
    *,
    loco: Mapping | None = None,
) -> FigureSet:
    """The benchmark's figures: per-slice R^2, reconstruction vs utility and (when run) the LOCO audit.

    Parameters
    ----------
    result
        What :func:`cfmd.tl.benchmark` returned.
    directory
        Output folder (created).
    loco
        ``mdata.uns["cfmd_loco"]`` written by :func:`cfmd.tl.loco_audit`, or ``None``.

    Returns
    -------
    The figures written (``slice_r2``, ``reconstruction_utility``, ``loco``) and the skipped ones.
    """
    from . import pl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = FigureSet()
    slices = result["slices"]
    if "method" in slices:
        slices = _labelled(slices)
    _draw(
        figures,
        "slice_r2",
        directory / "slice_r2.png",
        pl.slice_r2,
        slices,
        title="Per-slice R\u00b2 on held-out test patients",
    )
    summary = result["table3"]
    reference = "zero_mask" if "zero_mask" in set(summary.get("method", [])) else None
    _draw(
        figures,
        "reconstruction_utility",
        directory / "reconstruction_utility.png",
        pl.reconstruction_utility,
        _labelled(summary) if "method" in summary else summary,
        reference=reference,
    )
    if loco is not None:
        table = loco["per_chromosome"].copy()
        control = loco.get("summary", {}).get("r2_shuffled_positions")
        _draw(
            figures,
            "loco",
            directory / "loco.png",
            pl.loco,
            table,
            negative_control=float(control) if control is not None else False,
        )
    return figures


def describe_cohort(
    mdata: MuData, *, latent_key: str = DEFAULT_LATENT_KEY, split_key: str = DEFAULT_SPLIT_KEY
) -> list[tuple[str, str]]:
    """What a cohort holds, as ``(item, description)`` rows for a report.

    Parameters
    ----------
    mdata
        The cohort.
    latent_key, split_key
        The observed latent and the split column to describe (when present).
    """
    rows = [("patients", f"{mdata.n_obs}")]
    for name, mod in mdata.mod.items():
        scale = mod.uns.get("scale", "") if hasattr(mod, "uns") else ""
        rows.append(
            (f"modality `{name}`", f"{mod.n_obs} patients x {mod.n_vars} features" + (f", {scale}" if scale else ""))
        )
    if latent_key in mdata.obsm:
        latent = np.asarray(mdata.obsm[latent_key], dtype=float)
        observed = int(np.isfinite(latent).all(axis=1).sum())
        text = f"{latent.shape[1]} dimensions, observed for {observed} patients"
        try:
            from ._layout import LatentLayout

            layout = LatentLayout.from_mudata(mdata, latent_key)
            text += "; slices " + ", ".join(f"{s.name} ({s.dim} d, {s.strategy})" for s in layout)
        except InvalidInputError:
            pass
        rows.append((f"latent `.obsm['{latent_key}']`", text))
    if split_key in mdata.obs:
        counts = mdata.obs[split_key].astype(str).value_counts()
        rows.append((f"split `.obs['{split_key}']`", ", ".join(f"{k} {int(v)}" for k, v in counts.items())))
    return rows


def _markdown_rows(rows: Sequence[tuple[str, str]], header: tuple[str, str] = ("item", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {a} | {str(b).replace('|', '/')} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return str(path)


def benchmark_report(
    path: str | Path,
    *,
    command: str,
    input_path: str | Path,
    cohort: Sequence[tuple[str, str]],
    settings: Mapping[str, object],
    result: Mapping[str, pd.DataFrame],
    figures: FigureSet,
    tables: Sequence[Path],
    timings: Mapping[str, float],
    loco: Mapping | None = None,
) -> Path:
    """Write the one-page Markdown report of ``cfmd benchmark``.

    Parameters
    ----------
    path
        The report file (``report.md``); figure and table links are relative to its folder.
    command
        The command line that was run.
    input_path
        The input ``.h5mu``.
    cohort
        :func:`describe_cohort` of the input.
    settings
        What was run (methods, seeds, epochs, bootstrap, LOCO mode, data keys).
    result
        What :func:`cfmd.tl.benchmark` returned.
    figures
        What :func:`benchmark_figures` wrote.
    tables
        The table files written (:func:`cfmd.tl.write_benchmark` and the LOCO tables).
    timings
        Wall-clock seconds per step (``{"benchmark": ..., "total": ...}``).
    loco
        ``mdata.uns["cfmd_loco"]`` when the audit was run.

    Returns
    -------
    The report's path.
    """
    from . import __version__
    from .tl import METHODS, format_markdown

    path = Path(path)
    root = path.parent
    table3 = result["table3"]
    lines = [
        "# cfmd benchmark report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by cfmd {__version__} (Python {platform.python_version()}, "
        f"{platform.platform(terse=True)}).",
        "",
        f"Command: `{command}`",
        "",
        "## What was run",
        "",
        "Every method was trained on the `train` patients of the split (monitored on `validation`) once per seed and "
        "imputed the held-out `test` patients from RNA alone; all methods are scored on the same test patients and "
        "the same bootstrap resamples (stratified by cancer type), and averaged over seeds.",
        "",
        _markdown_rows(
            [(str(k), f"`{v}`" if isinstance(v, str) else str(v)) for k, v in settings.items()], ("setting", "value")
        ),
        "## Input",
        "",
        f"`{input_path}`",
        "",
        _markdown_rows(cohort),
        "## Results",
        "",
    ]
    if not table3.empty:
        methods = list(table3["method"]) if "method" in table3 else []
        reference = "cfmd" if "cfmd" in methods else (methods[0] if methods else "")  # as cfmd.tl.benchmark
        lines += [
            "### Downstream utility (Table 3)",
            "",
            f"Latent R\u00b2 over the whole latent, Harrell's C of the frozen survival head; differences are to "
            f"`{reference}` (paired bootstrap, Bonferroni-adjusted p)."
            + (
                " The `delta_c_index_vs_cfmd` columns hold the difference to this reference (CFMD was not run)."
                if reference != "cfmd"
                else ""
            ),
            "",
            format_markdown(table3),
        ]
    for name, title in (
        ("table1", "Per-slice fidelity of CFMD (Table 1)"),
        ("table2", "Reconstruction-utility paradox (Table 2)"),
    ):
        table = result.get(name)
        if table is not None and not table.empty:
            lines += [f"### {title}", "", format_markdown(table)]
    slices = result.get("slices")
    if slices is not None and not slices.empty:
        wide = slices.pivot_table(index="method", columns="slice", values="r2", sort=False)
        wide = wide.reindex(list(dict.fromkeys(slices["method"])))
        wide.insert(0, "label", [METHODS[m].label if m in METHODS else m for m in wide.index])
        lines += [
            "### Per-slice R\u00b2 of every method",
            "",
            "Point estimates (intervals in `tables/slices.csv`); `macro`: mean over the imputed slices, `full`: the "
            "whole latent.",
            "",
            format_markdown(wide.reset_index()),
        ]
    if loco is not None:
        summary = loco.get("summary", {})
        lines += [
            "### Leave-one-chromosome-out audit",
            "",
            _markdown_rows(
                [(k, f"{v:.4f}" if isinstance(v, float | np.floating) else str(v)) for k, v in summary.items()],
                ("summary", "value"),
            ),
        ]
    lines += ["## Figures", ""]
    for name, figure in figures.paths.items():
        lines += [f"![{name}]({_relative(figure, root)})", ""]
    for name, reason in figures.skipped.items():
        lines += [f"- `{name}` not drawn: {reason}", ""]
    if not figures.paths and not figures.skipped:
        lines += ["(none)", ""]
    lines += ["## Tables", ""]
    lines += [f"- [{_relative(t, root)}]({_relative(t, root)})" for t in tables]
    lines += ["", "## Timings", ""]
    timing_rows = [(step, f"{seconds:.1f} s") for step, seconds in timings.items()]
    per_method = result.get("timing")
    if per_method is not None and not per_method.empty:
        for method, seconds in per_method.groupby("method", sort=False)["seconds"].sum().items():
            timing_rows.append((f"method `{method}` (all seeds)", f"{seconds:.1f} s"))
    lines += [_markdown_rows(timing_rows, ("step", "wall time"))]
    path.write_text("\n".join(lines))
    return path
