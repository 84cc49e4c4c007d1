"""``cfmd.tl.evaluate``: slice fidelity and survival utility of imputed latents on held-out patients."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import DOC_COPY, DOC_SPLIT_KEY, DOC_UNS_KEY_ADDED, doc_params
from .._layout import LatentLayout, layout_uns_key
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import (
    InvalidInputError,
    check_choice,
    check_obs_columns,
    check_obsm,
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
from ._split import split_indices

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["SurvivalData", "evaluate", "evaluation_settings", "score_methods"]

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
    seed: int = 0,
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


def _check_seed(seed, field: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidInputError(f"`{field}` must be an integer; got {seed!r}.")
    return int(seed)


def _check_bool(value, field: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise InvalidInputError(f"`{field}` must be True or False; got {value!r}.")


def _predicted_keys(predicted_keys) -> dict[str, str]:
    """``{method name: .obsm key}`` from a key, keys or a mapping (validated)."""
    if isinstance(predicted_keys, str):
        keys = {predicted_keys: predicted_keys}
    elif isinstance(predicted_keys, Mapping):
        keys = dict(predicted_keys)
    elif isinstance(predicted_keys, Sequence):
        keys = {k: k for k in predicted_keys}
        if len(keys) != len(predicted_keys):
            raise InvalidInputError(f"`predicted_keys` must not repeat a key; got {list(predicted_keys)}.")
    else:
        raise InvalidInputError(
            f"`predicted_keys` must be an .obsm key, a list of keys or {{method name: key}}; got {predicted_keys!r}."
        )
    if not keys:
        raise InvalidInputError("`predicted_keys` must name at least one .obsm key.")
    bad = [k for k in (*keys, *keys.values()) if not isinstance(k, str) or not k]
    if bad:
        raise InvalidInputError(f"`predicted_keys` must hold non-empty strings; got {describe_examples(bad)}.")
    return keys


def _split_record(mdata: MuData, key: str) -> Mapping | None:
    """The model split recorded next to ``.obsm[key]`` (``.uns[key]["split"]``, written by :func:`impute`)."""
    entry = mdata.uns.get(key)
    record = entry.get("split") if isinstance(entry, Mapping) else None
    return record if isinstance(record, Mapping) else None


def _refuse_dishonest(
    mdata: MuData,
    name: str,
    key: str,
    *,
    truth_key: str,
    truth: np.ndarray,
    rows: np.ndarray,
    subset: str,
    in_sample: bool,
) -> bool:
    """Refuse a prediction that is not one for the scored patients; return whether its scores are in-sample."""
    names = mdata.obs_names[rows]
    where = f"mdata.obsm[{key!r}]" + (f" (method {name!r})" if name != key else "")
    if key == truth_key:
        raise InvalidInputError(
            f"`predicted_keys` names the truth key {truth_key!r} itself{f' (method {name!r})' if name != key else ''}: "
            f"evaluate scores predictions against the observed latent of the {rows.size} {subset} patients, never "
            "the observed latent against itself. Impute first (cfmd.tl.impute(mdata, fill='all')) and pass its "
            "`key_added` (default 'X_cfmd')."
        )
    provenance_key = f"{key}_provenance"
    if provenance_key in mdata.obsm:
        provenance = mdata.obsm[provenance_key]
        values = provenance.astype(str).to_numpy() if isinstance(provenance, pd.DataFrame) else np.asarray(provenance)
        observed = (values.astype(str)[rows] == "observed").any(axis=1)
        if observed.any():
            raise InvalidInputError(
                f"{where} holds the observed latent, not a prediction, for {int(observed.sum())} of the {rows.size} "
                f"{subset} patients scored (provenance 'observed' in mdata.obsm[{provenance_key!r}], e.g. "
                f"{describe_examples(names[observed])}): scoring it would compare the observed latent with itself "
                "(R^2 = 1). Impute with cfmd.tl.impute(mdata, fill='all') so that every patient gets the model's "
                "prediction, then evaluate."
            )
    prediction = np.asarray(mdata.obsm[key], dtype=np.float64)[rows]
    identical = (prediction == truth).all(axis=1)
    if identical.any():
        raise InvalidInputError(
            f"{where} equals the observed latent mdata.obsm[{truth_key!r}] on {int(identical.sum())} of the "
            f"{rows.size} {subset} patients scored (e.g. {describe_examples(names[identical])}): a copy of the truth "
            "is not a prediction. Pass the key of an imputation made without these patients' latents (e.g. "
            "cfmd.tl.impute(mdata, fill='all'))."
        )
    record = _split_record(mdata, key)
    if record is None:
        warnings.warn(
            f"mdata.uns[{key!r}] has no record of the split of the model behind {where} ('split', written by "
            "cfmd.tl.impute): evaluate cannot check that this model never trained or validated on the "
            f"{rows.size} {subset} patients scored. Make sure it did not.",
            UserWarning,
            stacklevel=3,
        )
        return False
    seen = set()
    for part in ("train", "validation"):
        seen.update(str(v) for v in np.asarray(record.get(part, []), dtype=object).ravel())
    overlap = np.isin(np.asarray(names, dtype=str), list(seen)) if seen else np.zeros(rows.size, dtype=bool)
    if overlap.any() and not in_sample:
        raise InvalidInputError(
            f"{int(overlap.sum())} of the {rows.size} {subset} patients scored were in the train / validation split "
            f"of the model behind {where} (mdata.uns[{key!r}]['split']; e.g. {describe_examples(names[overlap])}): "
            "their scores would be in-sample, not held-out. Score the patients the model held out (restore the "
            "split column the model was trained with), or pass in_sample=True to score them knowingly (the results "
            "are then labelled in-sample)."
        )
    return bool(overlap.any())


@doc_params(split_key=DOC_SPLIT_KEY, key_added=DOC_UNS_KEY_ADDED, copy=DOC_COPY)
def evaluate(
    mdata: MuData,
    *,
    predicted_keys: str | Sequence[str] | Mapping[str, str] = "X_cfmd",
    truth_key: str = "X_structured",
    split_key: str = "cfmd_split",
    subset: str = "test",
    in_sample: bool = False,
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
    utility: a penalised Cox head (:class:`~cfmd.metrics.SurvivalHead`) trained once on the training split's observed
    latents plus cancer type (penalty chosen on the validation split), frozen, and scored by Harrell's C on the
    imputed latents of ``subset``; intervals from resamples stratified by cancer type and event; paired
    differences to ``reference`` with Bonferroni-adjusted p-values.

    Scores are honest by construction; evaluate refuses (:class:`~cfmd.InvalidInputError`), before any work:

    - a predicted key equal to ``truth_key``, or whose values on a scored patient equal the observed latent (a
      copy of the truth);
    - scored patients whose provenance (``.obsm[f"{key}_provenance"]``, written by :func:`~cfmd.tl.impute`) is
      ``observed``, i.e. :func:`~cfmd.tl.impute` with ``fill="missing"``: impute with ``fill="all"``;
    - scored patients that the model trained or validated on (``.uns[key]["split"]``, recorded by
      :func:`~cfmd.tl.impute`) and ``subset="train"`` / ``"validation"``, unless ``in_sample=True``: such scores
      are then computed with a warning and labelled in-sample (method names end in ``" (in-sample)"``, an
      ``in_sample`` column in every table, ``settings["in_sample"]``).

    A predicted key without a recorded split (your own latent) is scored with a warning that its model's training
    patients cannot be checked.

    Parameters
    ----------
    mdata
        MuData with the observed latent (``truth_key``), the imputed latents (``predicted_keys``, e.g. written by
        :func:`~cfmd.tl.impute` with ``fill="all"``) and the split column.
    predicted_keys
        ``.obsm`` key(s) of imputed latents, or ``{method name: key}``.
    truth_key
        ``.obsm`` key of the observed latent; its layout is read from ``.uns``.
    {split_key}
    subset
        Split to score: ``"test"``; ``"validation"`` or ``"train"`` only with ``in_sample=True``.
    in_sample
        Allow scoring patients the models (or the survival head) were fitted on; warns and labels the results.
    reference
        Method the others are compared with (default: the first).
    survival
        Also score survival utility.
    time_key, event_key, cancer_type_key
        ``.obs`` columns of survival time, event indicator and cancer type.
    macro_slices
        Slices of the macro :math:`R^2` (default: those not zero-masked and not ``rna``).
    n_boot
        Bootstrap resamples (>= 1).
    ci
        Confidence level of the intervals, strictly between 0 and 1.
    seed
        Seed of the bootstrap resamples.
    {key_added}
    {copy}

    Returns
    -------
    ``None`` (or the copy). On error the caller's ``mdata`` is left unchanged. Fields written:

    ``.uns[key_added]["slices"]``
        DataFrame: method, slice, kind, dims, r2, r2_low, r2_high, pearson_r, pearson_r_low, pearson_r_high,
        n_seeds, in_sample.
    ``.uns[key_added]["per_cancer_type"]``
        DataFrame: method, cancer_type, slice, kind, n_patients, r2, pearson_r, in_sample.
    ``.uns[key_added]["summary"]``
        DataFrame: method, latent_r2 and interval, macro_r2, c_index and interval, delta_c_index and interval,
        p_value, p_adjusted, delta_latent_r2, in_sample.
    ``.uns[key_added]["settings"]``
        Plain values that survive ``.h5mu`` writing (what ``summary.attrs`` holds in memory): reference, n_boot,
        ci, seed, subset, in_sample and, with ``survival``, ``survival_head`` (alpha: the penalty, n_train, coef).
    ``.uns[key_added]["params"]``
        truth_key, predicted_keys (method -> key), split_key, subset, in_sample, n_patients, n_boot, ci, seed.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300)
    >>> cfmd.tl.split_patients(mdata)
    >>> _ = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    >>> _ = cfmd.tl.impute(
    ...     mdata,
    ...     geneformer_key="transcriptomic_context",
    ...     gene_embedding_key="structural_features",
    ...     fill="all",
    ...     max_epochs=2,
    ...     model_kwargs={"rmd_kwargs": {"d_model": 16, "d_feedforward": 32}},
    ...     train_kwargs={"enable_progress_bar": False},
    ... )
    >>> cfmd.tl.evaluate(mdata, survival=False, n_boot=20)  # fill="missing" (the default) would be refused
    >>> mdata.uns["cfmd_evaluation"]["settings"]["in_sample"]
    False
    """
    with unchanged_on_error(mdata):
        return _evaluate(
            mdata, predicted_keys=predicted_keys, truth_key=truth_key, split_key=split_key, subset=subset,
            in_sample=in_sample, reference=reference, survival=survival, time_key=time_key, event_key=event_key,
            cancer_type_key=cancer_type_key, macro_slices=macro_slices, n_boot=n_boot, ci=ci, seed=seed,
            key_added=key_added, copy=copy,
        )  # fmt: skip


def _evaluate(
    mdata, *, predicted_keys, truth_key, split_key, subset, in_sample, reference, survival, time_key, event_key,
    cancer_type_key, macro_slices, n_boot, ci, seed, key_added, copy,
):  # fmt: skip
    # every argument first, before any data is read
    keys = _predicted_keys(predicted_keys)
    check_choice(subset, "subset", ("train", "validation", "test"))
    for value, field in ((in_sample, "in_sample"), (survival, "survival"), (copy, "copy")):
        _check_bool(value, field)
    n_boot = check_positive_int(n_boot, "n_boot")
    ci = check_ci(ci)
    seed = _check_seed(seed)
    if not isinstance(key_added, str) or not key_added:
        raise InvalidInputError(f"`key_added` must be a non-empty string; got {key_added!r}.")
    if reference is not None and reference not in keys:
        raise InvalidInputError(f"`reference` {reference!r} is not one of the methods {describe_examples(list(keys))}.")
    if not isinstance(split_key, str) or split_key not in mdata.obs.columns:
        raise InvalidInputError(
            f"`split_key` {split_key!r} is not a column of mdata.obs; available columns: "
            f"{describe_examples(list(mdata.obs.columns), limit=12)} (cfmd.tl.split_patients writes 'cfmd_split')."
        )
    if subset != "test" and not in_sample:
        raise InvalidInputError(
            f"`subset={subset!r}` scores patients the models or the survival head were fitted on (in-sample), not "
            "held-out ones. Use subset='test', or pass in_sample=True to score them knowingly (the results are then "
            "labelled in-sample)."
        )

    truth_all = check_obsm(mdata, truth_key, field="mdata")
    layout = LatentLayout.from_mudata(mdata, truth_key)
    layout.check_width(truth_all.shape[1], field=f"mdata.obsm[{truth_key!r}]")
    for key in keys.values():
        check_obsm(mdata, key, field="mdata", n_cols=layout.n_dims)
        if layout_uns_key(key) in mdata.uns and LatentLayout.from_mudata(mdata, key) != layout:
            raise InvalidInputError(
                f"The layout of .obsm[{key!r}] differs from that of .obsm[{truth_key!r}]; they must describe the same "
                "slices to be compared."
            )
    parts = split_indices(mdata, split_key)
    rows = parts[subset]
    truth_all = np.asarray(truth_all, dtype=np.float64)
    rows = rows[np.isfinite(truth_all[rows]).all(axis=1)]
    if rows.size < 3:
        raise InvalidInputError(f"The {subset!r} split has {rows.size} patient(s) with an observed latent; need >= 3.")
    flagged = {}
    for name, key in keys.items():
        pred = np.asarray(mdata.obsm[key], dtype=np.float64)[rows]
        if not np.isfinite(pred).all():
            raise InvalidInputError(
                f"mdata.obsm[{key!r}] has NaN for {subset} patients; impute them (cfmd.tl.impute(..., fill='all'))."
            )
        seen = _refuse_dishonest(
            mdata, name, key, truth_key=truth_key, truth=truth_all[rows], rows=rows, subset=subset, in_sample=in_sample
        )
        flagged[name] = seen or subset != "test"
    if any(flagged.values()):
        warnings.warn(
            f"evaluate: IN-SAMPLE scores for {describe_examples([n for n, f in flagged.items() if f])} "
            f"({subset} patients the model or the survival head was fitted on): not held-out results. They are "
            "labelled '(in-sample)' in every table.",
            UserWarning,
            stacklevel=3,
        )
    labels = {name: f"{name}{IN_SAMPLE_SUFFIX}" if flagged[name] else name for name in keys}
    predictions = {labels[name]: [np.asarray(mdata.obsm[key], dtype=np.float64)[rows]] for name, key in keys.items()}
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
        survival=surv, reference=None if reference is None else labels[reference], macro_slices=macro_slices,
        n_boot=n_boot, ci=ci, seed=seed,
    )  # fmt: skip
    flag_of = {labels[name]: bool(flagged[name]) for name in keys}
    for table in result.values():
        if "method" in table.columns:
            table["in_sample"] = table["method"].map(flag_of).astype(bool)
    settings = _plain(dict(result["summary"].attrs))
    settings.update(subset=subset, in_sample=bool(any(flagged.values())))
    result["summary"].attrs.update(settings)
    for table in result.values():
        table.attrs.update(settings)
    target = mdata.copy() if copy else mdata
    target.uns[key_added] = {
        **result,
        "settings": settings,
        "params": {
            "truth_key": truth_key,
            "predicted_keys": {labels[name]: key for name, key in keys.items()},
            "split_key": split_key,
            "subset": subset,
            "in_sample": bool(any(flagged.values())),
            "n_patients": int(rows.size),
            "n_boot": int(n_boot),
            "ci": float(ci),
            "seed": int(seed),
        },
    }
    return target if copy else None


def _plain(value):
    """``value`` as plain Python / NumPy values that ``.h5mu`` writing keeps (``None`` -> ``""``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None:
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def evaluation_settings(entry: Mapping) -> dict:
    """The settings of a stored evaluation (``.uns[key]["settings"]``, or the summary's ``attrs`` when absent).

    Parameters
    ----------
    entry
        ``mdata.uns[key_added]`` written by :func:`evaluate` (also after an ``.h5mu`` round trip).

    Returns
    -------
    ``{"reference", "n_boot", "ci", "seed", "subset", "in_sample", "survival_head", ...}`` as far as recorded.
    """
    settings = entry.get("settings") if isinstance(entry, Mapping) else None
    if isinstance(settings, Mapping):
        return dict(settings)
    summary = entry.get("summary") if isinstance(entry, Mapping) else None
    return dict(summary.attrs) if isinstance(summary, pd.DataFrame) else {}
