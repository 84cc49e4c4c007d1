"""Scoring imputed latents on held-out patients: slice fidelity, the survival head and its C-index.

The engine behind :func:`cfmd.tl.evaluate`, :func:`cfmd.tl.benchmark` and the cross-validated benchmark; plain
arrays in, tables out (no MuData is written here).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import DEFAULT_SEED
from .._layout import LatentLayout
from .._logging import logger
from .._validation import (
    InvalidInputError,
    check_obs_columns,
    check_positive_int,
    check_survival,
    describe_examples,
)
from ..metrics import (
    MIN_EVENTS_TO_SCORE,
    SurvivalHead,
    bonferroni,
    bootstrap_p_value,
    concordance_index,
    default_macro_slices,
    harrell_c,
    make_strata,
    percentile_interval,
    resampled_slice_metrics,
    resampled_statistic,
    slice_metrics,
    stratified_bootstrap_indices,
)

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["IN_SAMPLE_SUFFIX", "SurvivalData", "check_ci", "score_methods", "survival_data"]

#: Appended to the method name of scores computed on patients a model (or the survival head) was fitted on.
IN_SAMPLE_SUFFIX = " (in-sample)"


@dataclass
class SurvivalData:
    """Survival outcomes and cancer types of the training, validation and test patients."""

    train_latent: np.ndarray
    train_time: np.ndarray
    train_event: np.ndarray
    train_cancer: np.ndarray
    validation: tuple
    test_time: np.ndarray
    test_event: np.ndarray
    test_cancer: np.ndarray
    test_keep: np.ndarray | None = None  # test patients with survival (None: all); the others are not C-index scored


def _interval(distribution: np.ndarray, ci: float) -> tuple[float, float]:
    return percentile_interval(np.asarray(distribution, dtype=float), ci)


def score_methods(
    truth: np.ndarray,
    predictions: Mapping[str, Sequence[np.ndarray]],
    layout: LatentLayout,
    *,
    cancer_type: np.ndarray,
    survival: SurvivalData | None = None,
    reference: str | None = None,
    imputing: Sequence[str] | None = None,
    macro_slices: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> dict[str, pd.DataFrame]:
    """Score methods on the same held-out patients and the same bootstrap resamples.

    With fewer than :data:`~cfmd.metrics.MIN_EVENTS_TO_SCORE` (5) events among the scored patients, the
    C-index columns are NaN, ``summary.attrs["c_index_note"]`` says why and a ``UserWarning`` is raised (a C-index
    on a handful of events is noise, not a result). The survival head warns when its validation split is too small
    to choose the penalty (inner-CV fallback) or when it selects no latent feature
    (see :class:`~cfmd.metrics.SurvivalHead`).

    Parameters
    ----------
    truth
        ``(n_test, n_dims)`` observed latents of the held-out patients.
    predictions
        ``{method: [prediction per seed]}``, each ``(n_test, n_dims)`` in latent units.
    layout
        The layout of truth and predictions.
    cancer_type
        ``(n_test,)`` cancer types (bootstrap strata; per-cancer-type breakdown).
    survival
        Survival data; ``None`` skips the survival utility.
    reference
        Method the others are compared with (paired bootstrap, Bonferroni-adjusted); default the first.
    imputing
        Methods that produce a latent (others, such as zero-masking, get N/A latent :math:`R^2`); default all.
    macro_slices
        Slices of the macro :math:`R^2` (default: the non-zero, non-``rna`` slices).
    n_boot, ci, seed
        Bootstrap resamples (stratified by cancer type for :math:`R^2`, by cancer type and event for the C-index),
        confidence level and seed. Every method and seed is scored on the same resamples; with several seeds the
        reported value and interval are those of the seed-averaged statistic.

    Returns
    -------
    ``slices`` (per method and slice: ``r2``, ``pearson_r`` and intervals), ``per_cancer_type`` (per method,
    cancer type and slice), ``summary`` (per method: full-latent :math:`R^2`, macro :math:`R^2`, C-index with
    intervals, paired difference to the reference with interval and raw / Bonferroni-adjusted p-values).
    """
    if not predictions:
        raise InvalidInputError("`predictions` must name at least one method.")
    n_boot = check_positive_int(n_boot, "n_boot")
    ci = check_ci(ci)
    names = list(predictions)
    reference = names[0] if reference is None else reference
    if reference not in predictions:
        raise InvalidInputError(f"`reference` {reference!r} is not one of the methods {describe_examples(names)}.")
    imputing = names if imputing is None else list(imputing)
    macro = default_macro_slices(layout) if macro_slices is None else list(macro_slices)
    truth = np.asarray(truth, dtype=np.float64)
    cancer_type = np.asarray(cancer_type).astype(str)
    r2_indices = stratified_bootstrap_indices(make_strata(cancer_type), n_boot, seed=seed)

    slice_rows, cancer_rows, summary_rows = [], [], []
    for name in names:
        per_seed = [np.asarray(p, dtype=np.float64) for p in predictions[name]]
        tables = [slice_metrics(truth, p, layout, macro_slices=macro) for p in per_seed]
        resampled = [resampled_slice_metrics(truth, p, layout, r2_indices, macro_slices=macro) for p in per_seed]
        point = pd.concat(tables).groupby(["slice", "kind"], sort=False)[["r2", "pearson_r"]].mean()
        dist = pd.concat(resampled).groupby(["resample", "slice", "kind"], sort=False)[["r2", "pearson_r"]].mean()
        for (slice_name, kind), values in point.iterrows():
            boot = dist.xs((slice_name, kind), level=("slice", "kind"))
            r2_low, r2_high = _interval(boot["r2"].to_numpy(), ci)
            p_low, p_high = _interval(boot["pearson_r"].to_numpy(), ci)
            slice_rows.append(
                {
                    "method": name,
                    "slice": slice_name,
                    "kind": kind,
                    "dims": layout.n_dims
                    if kind == "full"
                    else (layout[slice_name].dim if kind == "slice" else np.nan),
                    "r2": values["r2"],
                    "r2_low": r2_low,
                    "r2_high": r2_high,
                    "pearson_r": values["pearson_r"],
                    "pearson_r_low": p_low,
                    "pearson_r_high": p_high,
                    "n_seeds": len(per_seed),
                }
            )
        for cancer in sorted(set(cancer_type)):
            rows = cancer_type == cancer
            if rows.sum() < 3:
                continue
            tab = pd.concat([slice_metrics(truth[rows], p[rows], layout, macro_slices=macro) for p in per_seed])
            for (slice_name, kind), values in (
                tab.groupby(["slice", "kind"], sort=False)[["r2", "pearson_r"]].mean().iterrows()
            ):
                cancer_rows.append(
                    {
                        "method": name,
                        "cancer_type": cancer,
                        "slice": slice_name,
                        "kind": kind,
                        "n_patients": int(rows.sum()),
                        **values,
                    }
                )

    slices_df = pd.DataFrame(slice_rows)
    full = slices_df[slices_df["kind"] == "full"].set_index("method")
    macro_df = slices_df[slices_df["kind"] == "macro"].set_index("method")
    for name in names:
        row = {"method": name}
        if name in imputing:
            row.update(
                latent_r2=full.loc[name, "r2"],
                latent_r2_low=full.loc[name, "r2_low"],
                latent_r2_high=full.loc[name, "r2_high"],
                macro_r2=macro_df.loc[name, "r2"] if name in macro_df.index else np.nan,
            )
        else:
            row.update(latent_r2=np.nan, latent_r2_low=np.nan, latent_r2_high=np.nan, macro_r2=np.nan)
        summary_rows.append(row)
    summary = pd.DataFrame(summary_rows).set_index("method")

    n_test_events = int(np.sum(survival.test_event)) if survival is not None else 0
    if survival is not None and n_test_events < MIN_EVENTS_TO_SCORE:
        reason = (
            f"the scored patients have {n_test_events} event(s) (< {MIN_EVENTS_TO_SCORE}): too few for a C-index; "
            "reported as NaN"
        )
        warnings.warn(f"score_methods: {reason}.", UserWarning, stacklevel=2)
        for column in ("c_index", "c_index_low", "c_index_high"):
            summary[column] = np.nan
        summary.attrs["c_index_note"] = reason
        survival = None
    if survival is not None:
        head = SurvivalHead().fit(
            survival.train_latent,
            survival.train_time,
            survival.train_event,
            survival.train_cancer,
            validation=survival.validation,
        )
        time, event = survival.test_time, survival.test_event
        keep = np.ones(len(cancer_type), dtype=bool) if survival.test_keep is None else survival.test_keep
        c_indices = stratified_bootstrap_indices(
            make_strata(cancer_type[keep], event.astype(int)), n_boot, seed=seed + 1
        )
        c_point, c_dist = {}, {}
        for name in names:
            risks = [head.predict_risk(np.asarray(p)[keep], survival.test_cancer) for p in predictions[name]]
            c_point[name] = float(np.mean([concordance_index(time, event, r) for r in risks]))
            c_dist[name] = np.mean([resampled_statistic(harrell_c, (time, event, r), c_indices) for r in risks], axis=0)
        p_values = {}
        for name in names:
            low, high = _interval(c_dist[name], ci)
            summary.loc[name, ["c_index", "c_index_low", "c_index_high"]] = [c_point[name], low, high]
            if name == reference:
                continue
            diff = c_dist[name] - c_dist[reference]
            d_low, d_high = _interval(diff, ci)
            p_values[name] = bootstrap_p_value(diff)
            summary.loc[name, ["delta_c_index", "delta_c_index_low", "delta_c_index_high", "p_value"]] = [
                c_point[name] - c_point[reference], d_low, d_high, p_values[name],
            ]  # fmt: skip
            if name in imputing and reference in imputing:
                summary.loc[name, "delta_latent_r2"] = full.loc[name, "r2"] - full.loc[reference, "r2"]
        if p_values:
            adjusted = bonferroni(pd.Series(p_values))
            for name, value in adjusted.items():
                summary.loc[name, "p_adjusted"] = value
        summary.attrs["survival_head"] = {
            "alpha": float(head.alpha_),
            "n_train": int(len(survival.train_time)),
            "coef": head.coef,
            "penalty_by": head.selection_.get("penalty_by", ""),
            "n_nonzero_latent": int(head.selection_.get("n_nonzero_latent", 0)),
        }
    summary.attrs.update({"reference": reference, "n_boot": int(n_boot), "ci": float(ci), "seed": int(seed)})
    summary = summary.reset_index()
    return {"slices": slices_df, "per_cancer_type": pd.DataFrame(cancer_rows), "summary": summary}


def survival_data(
    mdata: MuData,
    truth_key: str,
    parts: Mapping[str, np.ndarray],
    *,
    time_key: str,
    event_key: str,
    cancer_type_key: str,
) -> SurvivalData:
    """Validated survival outcomes of the training, validation and test patients (errors name the problem)."""
    check_obs_columns(mdata.obs, [time_key, event_key, cancer_type_key])
    latent = np.asarray(mdata.obsm[truth_key], dtype=np.float64)
    obs = mdata.obs
    out = {}
    has = obs[time_key].notna().to_numpy() & obs[event_key].notna().to_numpy()
    keep = has[parts["test"]]
    if not has[np.concatenate([parts[p] for p in ("train", "validation", "test")])].all():
        logger.warning(
            "evaluate: patients without survival (missing mdata.obs[%r] / [%r]) left out of the survival head and the "
            "C-index: %s.", time_key, event_key,
            ", ".join(f"{p} {int((~has[parts[p]]).sum())} of {len(parts[p])}" for p in ("train", "validation", "test")),
        )  # fmt: skip
    for part in ("train", "validation", "test"):
        rows = parts[part][has[parts[part]]]
        time, event = check_survival(
            obs[time_key].to_numpy()[rows], obs[event_key].to_numpy()[rows], time_field=time_key,
            event_field=event_key, index=obs.index[rows],
        )  # fmt: skip
        if not event.any():
            raise InvalidInputError(
                f"The {part} split has no event in mdata.obs[{event_key!r}] ({len(rows)} patients): the C-index is "
                "undefined. Use a larger cohort or another split."
            )
        out[part] = (latent[rows], time, event, obs[cancer_type_key].astype(str).to_numpy()[rows])
    seen = set(out["train"][3])
    for part in ("validation", "test"):
        unseen = sorted(set(out[part][3]) - seen)
        if unseen:
            raise InvalidInputError(
                f"Cancer type(s) {describe_examples(unseen)} occur in the {part} split but not in training; the frozen "
                "survival head cannot condition on them. Re-split with stratification by cancer type."
            )
    train, test = out["train"], out["test"]
    return SurvivalData(
        train[0], train[1], train[2], train[3], out["validation"], test[1], test[2], test[3], None if keep.all() else keep
    )  # fmt: skip


def check_ci(ci, field: str = "ci") -> float:
    """Require a confidence level strictly between 0 and 1 and return it as :class:`float`."""
    message = f"`{field}` must be a confidence level strictly between 0 and 1 (e.g. 0.95); got {ci!r}."
    if isinstance(ci, bool) or not isinstance(ci, int | float | np.integer | np.floating):
        raise InvalidInputError(message)
    if not 0 < float(ci) < 1:
        raise InvalidInputError(message)
    return float(ci)
