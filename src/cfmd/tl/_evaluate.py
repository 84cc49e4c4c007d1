"""``cfmd.tl.evaluate``: slice fidelity and survival utility of imputed latents on held-out patients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._layout import LatentLayout, layout_uns_key
from .._validation import InvalidInputError, check_obs_columns, check_obsm, check_survival, describe_examples
from ._bootstrap import (
    _percentile_interval,
    bonferroni,
    bootstrap_p_value,
    make_strata,
    resampled_slice_metrics,
    stratified_bootstrap_indices,
)
from ._metrics import default_macro_slices, slice_metrics
from ._split import split_indices
from ._survival import SurvivalHead, _c_distribution, concordance_index

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["SurvivalData", "evaluate", "score_methods"]


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


def _interval(distribution: np.ndarray, ci: float) -> tuple[float, float]:
    return _percentile_interval(np.asarray(distribution, dtype=float), ci)


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
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Score methods on the same held-out patients and the same bootstrap resamples.

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

    if survival is not None:
        head = SurvivalHead().fit(
            survival.train_latent,
            survival.train_time,
            survival.train_event,
            survival.train_cancer,
            validation=survival.validation,
        )
        time, event = survival.test_time, survival.test_event
        c_indices = stratified_bootstrap_indices(make_strata(cancer_type, event.astype(int)), n_boot, seed=seed + 1)
        c_point, c_dist = {}, {}
        for name in names:
            risks = [head.predict_risk(np.asarray(p), survival.test_cancer) for p in predictions[name]]
            c_point[name] = float(np.mean([concordance_index(time, event, r) for r in risks]))
            c_dist[name] = np.mean([_c_distribution(time, event, r, c_indices) for r in risks], axis=0)
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
        summary.attrs["survival_head"] = {"alpha": float(head.alpha_), "n_train": int(len(survival.train_time))}
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
    for part in ("train", "validation", "test"):
        rows = parts[part]
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
    return SurvivalData(train[0], train[1], train[2], train[3], out["validation"], test[1], test[2], test[3])


def evaluate(
    mdata: MuData,
    *,
    predicted_keys: str | Sequence[str] | Mapping[str, str] = "X_cfmd",
    truth_key: str = "X_structured",
    split_key: str = "cfmd_split",
    subset: str = "test",
    reference: str | None = None,
    survival: bool = True,
    time_key: str = "os_time",
    event_key: str = "os_event",
    cancer_type_key: str = "cancer_type",
    macro_slices: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    key_added: str = "cfmd_evaluation",
    copy: bool = False,
) -> MuData | None:
    """Slice fidelity and survival utility of imputed latents on held-out patients.

    Per-slice multivariate :math:`R^2` (variance-weighted over the slice's dimensions), Pearson :math:`r` for 1-d
    slices, macro :math:`R^2` over the imputed slices, full-latent :math:`R^2`, each with a 95% interval from
    ``n_boot`` patient-level resamples stratified by cancer type, and a per-cancer-type breakdown. Survival
    utility: a penalised Cox head (:class:`~cfmd.tl.SurvivalHead`) trained once on the training split's observed
    latents plus cancer type (penalty chosen on the validation split), frozen, and scored by Harrell's C on the
    imputed latents of ``subset``; intervals from resamples stratified by cancer type and event; paired
    differences to ``reference`` with Bonferroni-adjusted p-values.

    Parameters
    ----------
    mdata
        MuData with the observed latent (``truth_key``), the imputed latents (``predicted_keys``, e.g. written by
        :func:`~cfmd.tl.impute` with ``fill="all"``) and the split column.
    predicted_keys
        ``.obsm`` key(s) of imputed latents, or ``{method name: key}``.
    truth_key
        ``.obsm`` key of the observed latent; its layout is read from ``.uns``.
    split_key
        ``.obs`` column with the patient split.
    subset
        Split to score (``"test"``; ``"validation"`` for model selection).
    reference
        Method the others are compared with (default: the first).
    survival
        Also score survival utility.
    time_key, event_key, cancer_type_key
        ``.obs`` columns of survival time, event indicator and cancer type.
    macro_slices
        Slices of the macro :math:`R^2` (default: those not zero-masked and not ``rna``).
    n_boot, ci, seed
        Bootstrap settings.
    key_added
        ``.uns`` key of the results.
    copy
        Return a copy instead of writing in place.

    Returns
    -------
    ``None`` (or the copy). Fields written: ``.uns[key_added]`` with DataFrames ``slices`` (method, slice, kind,
    dims, r2, r2_low, r2_high, pearson_r, pearson_r_low, pearson_r_high, n_seeds), ``per_cancer_type`` and
    ``summary`` (method, latent_r2 and interval, macro_r2, c_index and interval, delta_c_index and interval,
    p_value, p_adjusted), and ``params``.
    """
    keys = {k: k for k in ([predicted_keys] if isinstance(predicted_keys, str) else predicted_keys)}
    if isinstance(predicted_keys, Mapping):
        keys = dict(predicted_keys)
    truth_all = check_obsm(mdata, truth_key, field="mdata")
    layout = LatentLayout.from_mudata(mdata, truth_key)
    layout.check_width(truth_all.shape[1], field=f"mdata.obsm[{truth_key!r}]")
    for key in keys.values():
        pred = check_obsm(mdata, key, field="mdata", n_cols=layout.n_dims)
        if layout_uns_key(key) in mdata.uns and LatentLayout.from_mudata(mdata, key) != layout:
            raise InvalidInputError(
                f"The layout of .obsm[{key!r}] differs from that of .obsm[{truth_key!r}]; they must describe the same "
                "slices to be compared."
            )
        del pred
    parts = split_indices(mdata, split_key)
    if subset not in ("train", "validation", "test"):
        raise InvalidInputError(f"`subset` must be 'train', 'validation' or 'test'; got {subset!r}.")
    rows = parts[subset]
    rows = rows[np.isfinite(truth_all[rows]).all(axis=1)]
    if rows.size < 3:
        raise InvalidInputError(f"The {subset!r} split has {rows.size} patient(s) with an observed latent; need >= 3.")
    predictions = {}
    for name, key in keys.items():
        pred = np.asarray(mdata.obsm[key], dtype=np.float64)[rows]
        if not np.isfinite(pred).all():
            raise InvalidInputError(
                f"mdata.obsm[{key!r}] has NaN for {subset} patients; impute them (cfmd.tl.impute(..., fill='all'))."
            )
        predictions[name] = [pred]
    check_obs_columns(mdata.obs, [cancer_type_key])
    surv = None
    if survival:
        train_rows = parts["train"][np.isfinite(truth_all[parts["train"]]).all(axis=1)]
        val_rows = parts["validation"][np.isfinite(truth_all[parts["validation"]]).all(axis=1)]
        surv = survival_data(
            mdata, truth_key, {"train": train_rows, "validation": val_rows, "test": rows}, time_key=time_key,
            event_key=event_key, cancer_type_key=cancer_type_key,
        )  # fmt: skip
    result = score_methods(
        truth_all[rows], predictions, layout, cancer_type=mdata.obs[cancer_type_key].astype(str).to_numpy()[rows],
        survival=surv, reference=reference, macro_slices=macro_slices, n_boot=n_boot, ci=ci, seed=seed,
    )  # fmt: skip
    target = mdata.copy() if copy else mdata
    target.uns[key_added] = {
        **result,
        "params": {
            "truth_key": truth_key,
            "predicted_keys": dict(keys),
            "split_key": split_key,
            "subset": subset,
            "n_patients": int(rows.size),
            "n_boot": int(n_boot),
            "ci": float(ci),
            "seed": int(seed),
        },
    }
    return target if copy else None
