"""``cfmd.tl.benchmark``: the paper's Tables 1-3 on any cohort, every method on the identical split."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import (
    DEFAULT_GENE_EMBEDDING_KEY,
    DEFAULT_GENEFORMER_KEY,
    DEFAULT_LATENT_KEY,
    DEFAULT_RNA_KEY,
    DEFAULT_SEED,
    DEFAULT_SPLIT_KEY,
)
from .._layout import LatentLayout
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import InvalidInputError, check_obsm, check_positive_int, describe_examples
from ._methods import METHODS, MethodContext, get_method
from ._scoring import check_ci, score_methods, survival_data
from ._split import split_indices

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["DEFAULT_METHODS", "benchmark", "format_markdown", "write_benchmark"]

#: Methods of the paper's Tables 1-3, in run order.
DEFAULT_METHODS = (
    "zero_mask",
    "cfmd",
    "pesd",
    "ridge",
    "poe_rna_only",
    "matched_mlp",
    "cfmd_no_esm",
    "cfmd_no_geneformer",
    "cfmd_no_ortho",
    "cfmd_shared_trunk",
    "pointwise_meth_mlp",
)
_TEACHER = {
    "rna": "RNA-derived",
    "geneformer": "Geneformer",
    "esm": "ESM-2",
    "regional_methylation": "Regional Decoder",
    "zero": "Zero-mask",
}


def benchmark(
    mdata: MuData,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: Sequence[int] = (42, 123, 456),
    latent_key: str = DEFAULT_LATENT_KEY,
    split_key: str = DEFAULT_SPLIT_KEY,
    rna_key: str = DEFAULT_RNA_KEY,
    rna_layer: str | None = None,
    rna_scale: str = "counts",
    geneformer_key: str | None = DEFAULT_GENEFORMER_KEY,
    gene_embedding_key: str | None = DEFAULT_GENE_EMBEDDING_KEY,
    rna_only_key: str | None = None,
    time_key: str = "os_time",
    event_key: str = "os_event",
    cancer_type_key: str = "cancer_type",
    max_epochs: int = 200,
    cfmd_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    bootstrap_seed: int = DEFAULT_SEED,
    key_added: str | None = None,
    cv: int | None = None,
    cv_repeats: int = 1,
    cv_validation_fraction: float = 0.15,
    refit_latent: bool = False,
) -> dict[str, pd.DataFrame]:
    """Run CFMD, its ablations and the baselines on the identical split and score them like the paper.

    Every method is trained on the ``train`` patients of ``split_key`` (monitored on ``validation``) once per
    seed, and imputes the ``test`` patients from RNA alone. Scores are computed on the same test patients and
    bootstrap resamples for every method and averaged over seeds (:func:`score_methods`). Training happens on a
    copy of ``mdata``; only the results are written back.

    Parameters
    ----------
    mdata
        MuData with the observed latent (``latent_key`` + layout), teacher embeddings, the RNA-only posterior for
        the PoE baseline, survival and cancer type in ``.obs`` and the split column (:func:`split_patients`).
    methods
        Names from :data:`cfmd.tl.METHODS`; ``"matched_mlp"`` needs ``"cfmd"`` (for its parameter count).
    seeds
        Training seeds (the paper's 42, 123, 456).
    latent_key, split_key, rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key, rna_only_key
        Data locations (see :func:`impute` and :class:`MethodContext`).
    time_key, event_key, cancer_type_key
        ``.obs`` columns for the survival utility.
    max_epochs
        Maximum epochs of the neural methods (200 in the paper; early stopping, patience 40). It applies to the
        generative methods (``"diffusion"``, ``"coherent_denoising"``) too, whose own default is 2000
        (:meth:`~cfmd.models.LatentDiffusion.train`): capped at 200 they can be under-trained on real cohorts.
    cfmd_kwargs
        Extra keyword arguments of every :class:`~cfmd.models.CFMD` (e.g. ``{"rmd_kwargs": {...}}``).
    train_kwargs
        Extra keyword arguments of every ``train`` call.
    n_boot, ci, bootstrap_seed
        Bootstrap resamples (>= 1), confidence level (strictly between 0 and 1) and seed; checked before training.
    key_added
        ``.uns`` key of the results (default ``"cfmd_benchmark"``, with ``cv`` ``"cfmd_benchmark_cv"``).
    cv
        ``None`` (default): the single split of ``split_key``, as described above. An integer ``k >= 2``: repeated,
        patient-disjoint k-fold cross-validation over every patient with an observed latent (the ``rna_only``
        patients of ``split_key``, if that column exists, stay out of the folds but are given to the methods as
        ``rna_only``), stratified by cancer type x event. Inside each fold everything is refitted on the fold's
        training part only: its patients are split again into ``train`` / ``validation``
        (``cv_validation_fraction``, same strata) for early stopping, the ridge's and the survival head's penalties;
        normalisation statistics, every imputer and the survival head are fitted per fold. ``seeds[0]`` trains every
        fold's models and deals the folds (repeat ``r`` uses ``seeds[0] + r``'s draw). The structured latent
        (``latent_key``, the target) is **not** refitted per fold: it is given, fitted once by
        :func:`~cfmd.tl.fit_latent` (a refit per fold would change the target between folds, so pooled scores would
        compare different coordinate systems); for the same reason ``"poe_rna_only"`` (the posterior of that
        StructuredVAE, which trained on patients of every fold) is refused with ``cv``.
    cv_repeats
        Repeats of the k-fold deal (every patient is scored exactly once per repeat).
    cv_validation_fraction
        Fraction of each fold's training part used for validation (at least 3 patients).
    refit_latent
        Must be ``False``: refitting the latent per fold is not implemented (see ``cv``).

    Returns
    -------
    ``{"table1", "table2", "table3", "slices", "per_cancer_type", "timing"}`` DataFrames: Table 1 (per-slice
    fidelity of CFMD, with the point-wise methylation MLP), Table 2 (reconstruction-utility paradox: zero-mask vs
    PESD, difference to zero-mask), Table 3 (every method: latent :math:`R^2`, C-index, difference to CFMD with
    Bonferroni-adjusted p-values), all slices of all methods, the per-cancer-type breakdown and wall times.
    Also written to ``mdata.uns[key_added]`` (with ``params``, and ``students``: per seed and slice the validation
    :math:`R^2` of CFMD's student next to the ridge's, fitted on the same training patients); see
    :func:`write_benchmark` for CSV/Markdown.

    With ``cv``: ``{"table1", "table3", "slices", "per_cancer_type", "verdict", "folds", "students", "timing"}``.
    ``slices`` / ``table1`` / ``table3`` score the pooled out-of-fold predictions (every patient predicted by the
    fold that held it out, all scored together; with several repeats the repeat-averaged statistic) with bootstrap
    intervals (:func:`score_methods`); the C-index of ``table3`` is that of the pooled out-of-fold risks of the
    fold-wise survival heads (stratified bootstrap), NaN when fewer than 5 events. ``per_cancer_type`` adds, per
    method and cancer type, the pooled C-index (``c_index``, NaN below 5 events) next to the :math:`R^2`.
    ``verdict``: per slice, each method's pooled :math:`R^2`, the best method, CFMD minus ridge with a paired
    bootstrap interval, and the spread of the per-fold :math:`R^2` (``r2_fold_sd_*``). ``folds``: per repeat,
    fold, method and slice the held-out and validation :math:`R^2`, sizes, test events and the fold's C-index
    (NaN with ``c_index_note`` below 5 events). ``students``: per fold and slice the choice of ``"cfmd_auto"``
    and the validation scores it was made on. ``mdata.uns[key_added]`` also holds ``assignment`` (patient, repeat,
    fold), ``survival_heads`` (per fold: penalty, how it was chosen, non-zero coefficients) and ``params``.
    """
    with unchanged_on_error(mdata):
        return _benchmark(**locals())


def _benchmark(
    mdata, *, methods, seeds, latent_key, split_key, rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key,
    rna_only_key, time_key, event_key, cancer_type_key, max_epochs, cfmd_kwargs, train_kwargs, n_boot, ci,
    bootstrap_seed, key_added, cv, cv_repeats, cv_validation_fraction, refit_latent,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    if cv is not None:
        from ._benchmark_cv import benchmark_cv

        return benchmark_cv(
            mdata, methods=methods, seeds=seeds, latent_key=latent_key, split_key=split_key, rna_key=rna_key,
            rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key, time_key=time_key, event_key=event_key,
            cancer_type_key=cancer_type_key, max_epochs=max_epochs, cfmd_kwargs=cfmd_kwargs, train_kwargs=train_kwargs,
            n_boot=n_boot, ci=ci, bootstrap_seed=bootstrap_seed, key_added=key_added or "cfmd_benchmark_cv", cv=cv,
            cv_repeats=cv_repeats, cv_validation_fraction=cv_validation_fraction, refit_latent=refit_latent,
        )  # fmt: skip
    key_added = key_added or "cfmd_benchmark"
    n_boot = check_positive_int(n_boot, "n_boot")
    ci = check_ci(ci)
    if isinstance(bootstrap_seed, bool) or not isinstance(bootstrap_seed, int | np.integer):
        raise InvalidInputError(f"`bootstrap_seed` must be an integer; got {bootstrap_seed!r}.")
    methods, layout = check_benchmark_input(
        mdata, methods=methods, latent_key=latent_key, split_key=split_key, rna_key=rna_key,
        geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key,
        cfmd_kwargs=cfmd_kwargs,
    )  # fmt: skip
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidInputError("`seeds` must list at least one seed.")
    truth_all = check_obsm(mdata, latent_key, field="mdata")
    parts = split_indices(mdata, split_key)
    observed = np.isfinite(truth_all).all(axis=1)
    rows = {k: v[observed[v]] for k, v in parts.items() if k != "rna_only"}
    if min(len(v) for v in rows.values()) < 3:
        raise InvalidInputError(
            f"Each split needs >= 3 patients with an observed latent; got { ({k: len(v) for k, v in rows.items()}) }."
        )
    surv = survival_data(
        mdata, latent_key, rows, time_key=time_key, event_key=event_key, cancer_type_key=cancer_type_key
    )

    work = mdata.copy()
    predictions: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    timing, student_rows = [], []
    test = rows["test"]
    for seed in seeds:
        context = MethodContext(
            mdata=work, latent_key=latent_key, layout=layout, split_key=split_key, seed=seed, rna_key=rna_key,
            rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key, max_epochs=max_epochs,
            cfmd_kwargs=dict(cfmd_kwargs or {}), train_kwargs=dict(train_kwargs or {}),
        )  # fmt: skip
        validation_predictions = {}
        for name in methods:
            start = time.perf_counter()
            full = get_method(name).fit_predict(context)
            predictions[name].append(full[test])
            validation_predictions[name] = full[rows["validation"]]
            timing.append({"method": name, "seed": seed, "seconds": time.perf_counter() - start})
        student_rows += _student_rows(truth_all[rows["validation"]], validation_predictions, layout, seed=seed)
    cancer = mdata.obs[cancer_type_key].astype(str).to_numpy()[test]
    truth = truth_all[test]
    imputing = [m for m in methods if METHODS[m].imputes]
    main = [m for m in methods if m != "pointwise_meth_mlp"]
    reference = "cfmd" if "cfmd" in main else main[0]
    scored = score_methods(
        truth, {m: predictions[m] for m in main}, layout, cancer_type=cancer, survival=surv, reference=reference,
        imputing=imputing, n_boot=n_boot, ci=ci, seed=bootstrap_seed,
    )  # fmt: skip
    all_slices = scored["slices"]
    if "pointwise_meth_mlp" in methods:
        pointwise = score_methods(
            truth, {"pointwise_meth_mlp": predictions["pointwise_meth_mlp"]}, layout, cancer_type=cancer,
            n_boot=n_boot, ci=ci, seed=bootstrap_seed,
        )["slices"]  # fmt: skip
        all_slices = pd.concat([all_slices, pointwise], ignore_index=True)
    summary = scored["summary"]
    labels = {m: METHODS[m].label for m in methods}

    table2 = None
    if "zero_mask" in main and "pesd" in main:
        paradox = score_methods(
            truth, {m: predictions[m] for m in ("zero_mask", "pesd")}, layout, cancer_type=cancer, survival=surv,
            reference="zero_mask", imputing=["pesd"], n_boot=n_boot, ci=ci, seed=bootstrap_seed,
        )["summary"]  # fmt: skip
        table2 = _table(paradox, labels, delta_name="delta_c_index_vs_zero_mask", with_p=False)
    result = {
        "table1": _table1(all_slices, layout, methods),
        "table2": table2 if table2 is not None else pd.DataFrame(),
        "table3": _table(summary, labels, delta_name="delta_c_index_vs_cfmd", with_p=True),
        "slices": all_slices,
        "per_cancer_type": scored["per_cancer_type"],
        "timing": pd.DataFrame(timing),
    }
    mdata.uns[key_added] = {
        **result,
        "params": {
            "methods": np.array(methods, dtype=object),
            "seeds": np.array(seeds),
            "latent_key": latent_key,
            "split_key": split_key,
            "n_test": int(test.size),
            "n_train": int(rows["train"].size),
            "max_epochs": int(max_epochs),
            "n_boot": int(n_boot),
            "reference": reference,
        },
        "students": pd.DataFrame(student_rows),
    }
    logger.info("benchmark: %d methods x %d seeds done.", len(methods), len(seeds))
    return result


def check_method_names(methods: Sequence[str]) -> list[str]:
    """The benchmark's method names as a list: known (:data:`METHODS`), not repeated, ``"matched_mlp"`` after ``"cfmd"``.

    Parameters
    ----------
    methods
        Method names.

    Returns
    -------
    ``list(methods)``; an unknown, repeated or misordered name is an :class:`~cfmd.InvalidInputError`.
    """
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidInputError(
            f"`methods` has unknown method(s) {describe_examples(unknown)}; available: {describe_examples(list(METHODS), limit=20)}."
        )
    if len(set(methods)) != len(methods):
        raise InvalidInputError("`methods` must not repeat a method.")
    if "matched_mlp" in methods and ("cfmd" not in methods or methods.index("cfmd") > methods.index("matched_mlp")):
        raise InvalidInputError("'matched_mlp' needs 'cfmd' to run before it in `methods` (for its parameter count).")
    return methods


def check_benchmark_input(
    mdata: MuData,
    *,
    methods: Sequence[str],
    latent_key: str = DEFAULT_LATENT_KEY,
    split_key: str = DEFAULT_SPLIT_KEY,
    rna_key: str = DEFAULT_RNA_KEY,
    geneformer_key: str | None = DEFAULT_GENEFORMER_KEY,
    gene_embedding_key: str | None = DEFAULT_GENE_EMBEDDING_KEY,
    rna_only_key: str | None = None,
    cfmd_kwargs: Mapping | None = None,
) -> tuple[list[str], LatentLayout]:
    """What :func:`benchmark` checks before any method trains (also run by ``cfmd benchmark`` before its work).

    The method names (known, not repeated, ``"matched_mlp"`` after ``"cfmd"``), the observed latent and its
    layout, the patient split, and everything each method needs (:attr:`ImputationMethod.check`: teacher
    embeddings, the RNA-only posterior, ...).

    Parameters
    ----------
    mdata
        The cohort.
    methods
        Names from :data:`METHODS`.
    latent_key, split_key, rna_key, geneformer_key, gene_embedding_key, rna_only_key, cfmd_kwargs
        As in :func:`benchmark`.

    Returns
    -------
    The methods as a list, and the latent's layout. Raises :class:`~cfmd.InvalidInputError` naming what is missing.
    """
    methods = check_method_names(methods)
    truth_all = check_obsm(mdata, latent_key, field="mdata")
    layout = LatentLayout.from_mudata(mdata, latent_key)
    layout.check_width(truth_all.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    split_indices(mdata, split_key)
    check_method_needs(methods, MethodContext(
        mdata=mdata, latent_key=latent_key, layout=layout, split_key=split_key, rna_key=rna_key,
        geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key,
        cfmd_kwargs=dict(cfmd_kwargs or {}),
    ))  # fmt: skip
    return methods, layout


def check_method_needs(methods: Sequence[str], context: MethodContext) -> None:
    """Run each method's own input check (:attr:`ImputationMethod.check`) before any method trains.

    Parameters
    ----------
    methods
        Names from :data:`METHODS`.
    context
        The data locations the methods will read.
    """
    for name in methods:
        if METHODS[name].check is not None:
            METHODS[name].check(context)


def _student_rows(truth_val, predictions, layout, **extra) -> list[dict]:
    """Per slice the validation R^2 of CFMD's student and of the ridge (when both ran), the higher one named."""
    from ..metrics import multivariate_r2

    if "cfmd" not in predictions or "ridge" not in predictions:
        return []
    rows = []
    for s in layout:
        if s.strategy == "zero":
            continue
        scores = {
            m: float(multivariate_r2(truth_val[:, s.start : s.stop], predictions[m][:, s.start : s.stop]))
            for m in ("cfmd", "ridge")
        }
        rows.append(
            {**extra, "slice": s.name, **{f"validation_r2_{m}": v for m, v in scores.items()},
             "better": max(scores, key=lambda m: (scores[m], m == "cfmd"))}
        )  # fmt: skip
    return rows


def _table1(slices: pd.DataFrame, layout: LatentLayout, methods: Sequence[str]) -> pd.DataFrame:
    """Per-slice reconstruction fidelity (Table 1): CFMD's slices, the point-wise methylation MLP next to meth."""
    rows = []
    cfmd = slices[slices["method"] == "cfmd"].set_index("slice") if "cfmd" in methods else None
    for s in layout:
        if s.strategy == "regional_methylation" and "pointwise_meth_mlp" in methods:
            point = slices[(slices["method"] == "pointwise_meth_mlp") & (slices["slice"] == s.name)].iloc[0]
            rows.append(_slice_row(f"{s.name} (point)", s.dim, "Point-wise MLP", point))
        if cfmd is None:
            continue
        label = f"{s.name} (region)" if s.strategy == "regional_methylation" else s.name
        row = cfmd.loc[s.name]
        rows.append(_slice_row(label, s.dim, _TEACHER.get(s.strategy, s.strategy), row, pearson=s.dim == 1))
    if cfmd is not None:
        for kind, label in (("macro", "Macro (imputed slices)"), ("full", "Full latent")):
            row = slices[(slices["method"] == "cfmd") & (slices["kind"] == kind)].iloc[0]
            rows.append(_slice_row(label, row["dims"], "CFMD", row))
    return pd.DataFrame(rows)


def _slice_row(name, dims, method, row, *, pearson: bool = False) -> dict:
    out = {"slice": name, "dims": dims, "teacher_or_method": method, "r2": row["r2"], "r2_low": row["r2_low"]}
    out["r2_high"] = row["r2_high"]
    if pearson:
        out.update(pearson_r=row["pearson_r"], pearson_r_low=row["pearson_r_low"], pearson_r_high=row["pearson_r_high"])
    return out


def _table(summary: pd.DataFrame, labels: Mapping[str, str], *, delta_name: str, with_p: bool) -> pd.DataFrame:
    table = summary.copy()
    table.insert(1, "label", [labels.get(m, m) for m in table["method"]])
    rename = {
        "delta_c_index": delta_name,
        "delta_c_index_low": f"{delta_name}_low",
        "delta_c_index_high": f"{delta_name}_high",
    }
    table = table.rename(columns=rename)
    if not with_p:
        table = table.drop(columns=[c for c in ("p_value", "p_adjusted", "delta_latent_r2") if c in table])
    return table.reset_index(drop=True)


def _fmt(value, low=None, high=None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "N/A"
    text = f"{value:.{digits}f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def format_markdown(table: pd.DataFrame) -> str:
    """A Markdown rendering of a benchmark table, values with their intervals as ``0.774 [0.760, 0.788]``."""
    if table.empty:
        return "(empty)\n"
    columns, cells = [], []
    used = set()
    for col in table.columns:
        if col in used or col.endswith(("_low", "_high")):
            continue
        low, high = f"{col}_low", f"{col}_high"
        columns.append(col)
        used.add(col)
        if low in table and high in table:
            cells.append([_fmt(v, lo, hi) for v, lo, hi in zip(table[col], table[low], table[high])])
        elif col in ("p_value", "p_adjusted"):
            cells.append([_p(v) for v in table[col]])
        elif table[col].dtype.kind == "f" and np.all(np.isnan(table[col]) | (table[col] == np.round(table[col]))):
            cells.append(["—" if np.isnan(v) else str(int(v)) for v in table[col]])
        elif table[col].dtype.kind == "f":
            cells.append([_fmt(v) for v in table[col]])
        else:
            cells.append([str(v) for v in table[col]])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for i in range(len(table)):
        lines.append("| " + " | ".join(cell[i] for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.3g}"


def write_benchmark(
    result: Mapping[str, pd.DataFrame], directory: str | PathLike, *, overwrite: bool = False
) -> list[Path]:
    """Write every table of :func:`benchmark` as CSV and Markdown (``tables.md``) into ``directory``.

    Parameters
    ----------
    result
        What :func:`benchmark` returned (or ``mdata.uns[key]``).
    directory
        Output folder (created).
    overwrite
        Replace existing files.

    Returns
    -------
    The paths written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    titles = {
        "table1": "Table 1: per-slice reconstruction fidelity (held-out test patients)",
        "table2": "Table 2: the reconstruction-utility paradox",
        "table3": "Table 3: downstream utility and ablations (difference to CFMD, Bonferroni-adjusted p)",
    }
    markdown = []
    for name, table in result.items():
        if not isinstance(table, pd.DataFrame):
            continue
        path = directory / f"{name}.csv"
        if path.exists() and not overwrite:
            raise InvalidInputError(f"{path} exists; pass overwrite=True to replace it.")
        table.to_csv(path, index=False)
        written.append(path)
        if name in titles:
            markdown.append(f"## {titles[name]}\n\n{format_markdown(table)}")
    md_path = directory / "tables.md"
    if md_path.exists() and not overwrite:
        raise InvalidInputError(f"{md_path} exists; pass overwrite=True to replace it.")
    md_path.write_text("\n".join(markdown))
    written.append(md_path)
    return written
