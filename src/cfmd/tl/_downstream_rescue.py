"""``cfmd.tl.downstream_rescue``: does imputation help the clinic? (seed 004's Table 2 and Figure 3).

A downstream model is trained once on the complete training patients and frozen; the held-out test patients are
then scored under each missing-modality pattern in four conditions: full data, the modality removed (ablation),
the modality imputed (each imputer of :data:`~cfmd.tl.METHODS`) and cancer type only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import CFMD_MAX_EPOCHS, DIFFUSION_MAX_EPOCHS
from .._docs import DOC_COPY, DOC_SPLIT_KEY, DOC_UNS_KEY_ADDED, doc_params
from .._layout import LatentLayout
from .._logging import logger
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import (
    InvalidInputError,
    check_names,
    check_not_view,
    check_obs_columns,
    check_obsm,
    check_positive_int,
    describe_examples,
)
from ..metrics import (
    MIN_EVENTS_TO_SCORE,
    concordance_index,
    harrell_c,
    make_strata,
    multivariate_r2,
    percentile_interval,
    resampled_statistic,
    stratified_bootstrap_indices,
)
from ._downstream_patterns import _patterns, _slice_owners, pattern_label
from ._downstream_predictors import _Classifier, _SurvivalModel
from ._downstream_rescue_tables import (
    _classification_counts,
    _comparisons,
    _per_cancer_classification,
    _per_cancer_survival,
    _row,
    _ScoreCache,
    _scores_from_counts,
    _table2,
    point_classification,
)
from ._evaluate import _check_bool, _check_seed, check_ci, survival_data
from ._generate import GENERATIVE_MODELS
from ._methods import MethodContext, get_method
from ._split import split_indices

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["RESCUE_CLASSIFIERS", "RESCUE_CONDITIONS", "RESCUE_IMPUTERS", "RESCUE_SURVIVAL_MODELS", "downstream_rescue"]

#: Imputers run by default (names of :data:`~cfmd.tl.METHODS`): the ridge and PoE RNA-only baselines, CFMD and the
#: two generative imputers of seed 004.
RESCUE_IMPUTERS = ("ridge", "poe_rna_only", "cfmd", "diffusion", "coherent_denoising")
#: Classifiers of the classification task.
RESCUE_CLASSIFIERS = ("random_forest", "logistic")
#: Survival models of the survival task: the frozen Cox head of :mod:`cfmd.metrics` and a random survival forest.
RESCUE_SURVIVAL_MODELS = ("cox_head", "random_survival_forest")
#: The conditions every pattern is scored in (imputed conditions are ``"imputed:<imputer>"``).
RESCUE_CONDITIONS = ("full", "ablation", "imputed", "cancer_type_only")
#: Metrics of each task.
TASK_METRICS = {"classification": ("f1", "balanced_accuracy"), "survival": ("c_index",)}


# ---------------------------------------------------------------------------------------------- the tool
@doc_params(split_key=DOC_SPLIT_KEY, key_added=DOC_UNS_KEY_ADDED, copy=DOC_COPY)
def downstream_rescue(
    mdata: MuData,
    *,
    imputers: Sequence[str] = RESCUE_IMPUTERS,
    patterns: Sequence[str | Sequence[str]] | None = None,
    slice_modalities: Mapping[str, str] | None = None,
    label_key: str | None = "cancer_type",
    classifiers: Sequence[str] = RESCUE_CLASSIFIERS,
    survival_models: Sequence[str] = RESCUE_SURVIVAL_MODELS,
    latent_key: str = "X_structured",
    split_key: str = "cfmd_split",
    time_key: str = "os_time",
    event_key: str = "os_event",
    cancer_type_key: str = "cancer_type",
    rna_key: str = "rna",
    rna_layer: str | None = None,
    rna_scale: str = "counts",
    geneformer_key: str | None = "X_geneformer",
    gene_embedding_key: str | None = "X_esm2",
    rna_only_key: str | None = None,
    max_epochs: int | Mapping[str, int] | None = None,
    cfmd_kwargs: Mapping | None = None,
    generative_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    n_estimators: int = 200,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    key_added: str = "cfmd_downstream_rescue",
    copy: bool = False,
) -> MuData | None:
    """Does imputation help the clinic? A frozen downstream model scored on test patients with modalities missing.

    Seed 004's "Data Generation to Mitigate Predictive Degradation" experiment (its Table 2 and Figure 3) on any
    cohort. Downstream models are trained **once** on the complete training patients (``train`` of ``split_key``,
    observed latent ``.obsm[latent_key]``) and frozen: classification of ``label_key`` (cancer type by default; pass
    a stage column when there is one) by a random forest and an L2 logistic regression, scored by macro F1 and
    balanced accuracy; survival by the frozen Cox head of :class:`~cfmd.metrics.SurvivalHead` (penalty chosen on the
    validation split) and a random survival forest (scikit-survival), scored by Harrell's C. Their features are the
    whole structured latent plus one-hot cancer type (not for a cancer-type classifier). Each held-out ``test``
    patient is then scored, under each missing-modality pattern (the latent slices owned by the missing modalities,
    ``slice_modalities``), in four conditions:

    ``full``
        The observed latent.
    ``ablation``
        The missing slices replaced by the training patients' mean of those slices: what the frozen model sees of a
        patient about whom the missing modality tells it nothing (a model that needs a value for every feature cannot
        be given a gap; the mean is the fill that carries no patient-specific information. The PoE RNA-only posterior
        is a prediction from RNA, so it is one of the imputers rather than the ablation).
    ``imputed:<imputer>``
        The missing slices replaced by the imputer's prediction; the observed slices are kept. Every imputer is a
        :data:`~cfmd.tl.METHODS` entry run as :func:`~cfmd.tl.benchmark` runs it (``"cfmd"`` as
        :func:`~cfmd.tl.impute`, ``"ridge"``, ``"poe_rna_only"``, ``"diffusion"`` / ``"coherent_denoising"`` as
        :func:`~cfmd.tl.generate`: the mean of 10 generations), trained on the training split, monitored on the
        validation split, and imputing from RNA (plus the teacher embeddings and cancer type those methods use),
        never from the other observed modalities. On a working copy whose test-patient latents are replaced by the
        training mean before any imputer runs, so no imputer can see a test patient's latent.
    ``cancer_type_only``
        A model of the same kind trained on one-hot cancer type alone (seed 004's secondary baseline: what knowing the
        cancer type gives). Not defined (NaN) for a classifier of cancer type itself.

    Every condition of a pattern is scored on the same ``n_boot`` bootstrap resamples of the test patients (the one
    bootstrap of :mod:`cfmd.metrics`; stratified by cancer type and label for classification, by cancer type and
    event for survival), so the table's differences are paired: ``drop_from_ablation`` = ablation - full and
    ``gain_<imputer>`` = imputed - ablation (seed 004's "Ablation Drop" and "Gain from generated data"), each with a
    percentile interval and a two-sided bootstrap p-value (Bonferroni-adjusted over every comparison of one task,
    model and metric). The C-index is NaN (with a note) when the scored patients have fewer than
    :data:`~cfmd.metrics.MIN_EVENTS_TO_SCORE` events.

    Parameters
    ----------
    mdata
        MuData with the observed latent (and its layout), the split column, RNA, ``cancer_type_key`` and, for
        survival, ``time_key`` / ``event_key`` in ``.obs``; plus what each imputer needs (teacher embeddings for
        CFMD, the RNA-only posterior for ``"poe_rna_only"``).
    imputers
        Names from :data:`~cfmd.tl.METHODS` (``"zero_mask"``, ``"cfmd"``, ``"ridge"``, ``"poe_rna_only"``,
        ``"diffusion"``, ``"coherent_denoising"``, ...); empty: no imputed condition.
    patterns
        Missing-modality patterns, each a modality or a list of modalities (e.g. ``["meth", "cnv", ["meth",
        "cnv"]]``). Default: each modality owning slices alone, then all of them together.
    slice_modalities
        ``{latent slice: owning modality}``; default: what :func:`~cfmd.tl.fit_latent` recorded in
        ``.uns[latent_key]``.
    label_key
        ``.obs`` column to classify (e.g. ``"cancer_type"`` or a stage column); ``None``: no classification task.
        Patients with a missing label are left out of this task.
    classifiers
        Subset of :data:`RESCUE_CLASSIFIERS`.
    survival_models
        Subset of :data:`RESCUE_SURVIVAL_MODELS`; empty: no survival task.
    latent_key
        ``.obsm`` key of the observed latent.
    {split_key}
    time_key, event_key, cancer_type_key
        ``.obs`` columns of survival time, event indicator and cancer type.
    rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key, rna_only_key
        Data locations of the imputers (see :class:`~cfmd.tl.MethodContext`).
    max_epochs
        Maximum training epochs of the neural imputers (with their early stopping): one number for all, or
        ``{imputer: epochs}``, e.g. ``{"cfmd": 60, "diffusion": 300, "coherent_denoising": 300}``. An imputer not
        given a number gets its own default: 200 (CFMD and the other neural imputers), 2000 (the diffusion models,
        see :meth:`~cfmd.models.LatentDiffusion.train`).
    cfmd_kwargs
        Extra keyword arguments of every :class:`~cfmd.models.CFMD`.
    generative_kwargs
        Extra keyword arguments of :class:`~cfmd.models.LatentDiffusion` and :class:`~cfmd.models.CoherentDenoising`
        (e.g. ``{{"n_hidden": 64, "num_train_timesteps": 50}}``).
    train_kwargs
        Extra keyword arguments of every imputer's ``train``.
    n_estimators
        Trees of the random forest and of the random survival forest.
    n_boot
        Bootstrap resamples of the test patients (>= 1).
    ci
        Confidence level of the intervals, strictly between 0 and 1.
    seed
        Seed of the imputers, the forests and the resamples.
    {key_added}
    {copy}

    Returns
    -------
    ``None`` (or the copy). On error the caller's ``mdata`` is left unchanged. Fields written:

    ``.uns[key_added]["results"]``
        DataFrame, one row per task, model, metric, pattern and condition: task, model, metric, pattern, condition,
        imputer (``""`` unless imputed), value, value_low, value_high, n_patients, n_events (survival).
    ``.uns[key_added]["table"]``
        Seed 004's Table 2: one row per task, model, metric and pattern: full, ablation, cancer_type_only, each
        ``imputed_<imputer>``, drop_from_ablation and each ``gain_<imputer>``, all with ``_low`` / ``_high``.
    ``.uns[key_added]["comparisons"]``
        DataFrame of the paired differences: task, model, metric, pattern, comparison (``drop_from_ablation`` or
        ``gain_<imputer>``), delta, delta_low, delta_high, p_value, p_adjusted.
    ``.uns[key_added]["per_cancer_type"]``
        DataFrame: task, model, metric, pattern, condition, cancer_type, n_patients, n_events, value (C-index NaN
        below 5 events; for a cancer-type classifier, the F1 and recall of that class).
    ``.uns[key_added]["imputation_r2"]``
        DataFrame: imputer, pattern, n_dims, r2: how well each imputer reconstructs the missing slices of the test
        patients (multivariate :math:`R^2`, :func:`~cfmd.metrics.multivariate_r2`), next to what it does downstream.
    ``.uns[key_added]["settings"]``
        imputers, patterns, missing slices per pattern, ablation, label_key, classifiers, survival_models, n_test
        (per task), n_train, n_boot, ci, seed, notes.

    Examples
    --------
    >>> cfmd.tl.downstream_rescue(mdata, imputers=["ridge", "poe_rna_only"], n_boot=200)  # doctest: +SKIP
    >>> mdata.uns["cfmd_downstream_rescue"]["table"]  # doctest: +SKIP
    """
    if not copy:
        check_not_view(mdata, "mdata")
    with unchanged_on_error(mdata):
        return _downstream_rescue(**locals())


def _downstream_rescue(
    mdata, *, imputers, patterns, slice_modalities, label_key, classifiers, survival_models, latent_key, split_key,
    time_key, event_key, cancer_type_key, rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key,
    rna_only_key, max_epochs, cfmd_kwargs, generative_kwargs, train_kwargs, n_estimators, n_boot, ci, seed, key_added,
    copy,
):  # fmt: skip
    from ._benchmark import check_benchmark_input

    # ---- every argument and input first, before any training
    _check_bool(copy, "copy")
    n_boot = check_positive_int(n_boot, "n_boot")
    n_estimators = check_positive_int(n_estimators, "n_estimators")
    if isinstance(max_epochs, Mapping):
        max_epochs = {str(k): check_positive_int(v, f"max_epochs[{k!r}]") for k, v in max_epochs.items()}
    elif max_epochs is not None:
        max_epochs = check_positive_int(max_epochs, "max_epochs")
    ci = check_ci(ci)
    seed = _check_seed(seed)
    if seed < 0:
        raise InvalidInputError(f"`seed` must be a non-negative integer; got {seed}.")
    if not isinstance(key_added, str) or not key_added:
        raise InvalidInputError(f"`key_added` must be a non-empty string; got {key_added!r}.")
    classifiers = check_names(classifiers, "classifiers", RESCUE_CLASSIFIERS) if label_key is not None else []
    survival_models = check_names(survival_models, "survival_models", RESCUE_SURVIVAL_MODELS)
    if not classifiers and not survival_models:
        raise InvalidInputError(
            "Nothing to score: give a `label_key` with `classifiers`, or `survival_models` (both are empty)."
        )
    imputers = [imputers] if isinstance(imputers, str) else list(imputers or ())
    for name, value in (("cfmd_kwargs", cfmd_kwargs), ("generative_kwargs", generative_kwargs),
                        ("train_kwargs", train_kwargs)):  # fmt: skip
        if value is not None and not isinstance(value, Mapping):
            raise InvalidInputError(f"`{name}` must be a mapping of keyword arguments or None; got {value!r}.")
    latent_all = np.asarray(check_obsm(mdata, latent_key, field="mdata"), dtype=np.float64)
    layout = LatentLayout.from_mudata(mdata, latent_key)
    layout.check_width(latent_all.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    if imputers:
        imputers, _ = check_benchmark_input(
            mdata, methods=imputers, latent_key=latent_key, split_key=split_key, rna_key=rna_key,
            geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key,
            cfmd_kwargs=cfmd_kwargs,
        )  # fmt: skip
    if isinstance(max_epochs, dict):
        unknown = [k for k in max_epochs if k not in imputers]
        if unknown:
            raise InvalidInputError(
                f"`max_epochs` names {describe_examples(unknown)}, not among the `imputers` {describe_examples(imputers)}."
            )
    owners = _slice_owners(mdata, latent_key, layout, slice_modalities)
    patterns = _patterns(patterns, owners)
    check_obs_columns(mdata.obs, [cancer_type_key] + ([label_key] if classifiers else []))
    parts = split_indices(mdata, split_key)
    observed = np.isfinite(latent_all).all(axis=1)
    rows = {k: parts[k][observed[parts[k]]] for k in ("train", "validation", "test")}
    for part in ("train", "test"):
        if rows[part].size < 3:
            raise InvalidInputError(
                f"The {part!r} split of mdata.obs[{split_key!r}] has {rows[part].size} patient(s) with an observed "
                f"latent mdata.obsm[{latent_key!r}]; need >= 3."
            )
    cancer_all = mdata.obs[cancer_type_key]
    if cancer_all.iloc[np.concatenate(list(rows.values()))].isna().any():
        raise InvalidInputError(
            f"mdata.obs[{cancer_type_key!r}] is missing for some train / validation / test patient."
        )
    cancer_all = cancer_all.astype(str).to_numpy()
    cancer_types = sorted(set(cancer_all[rows["train"]]))
    unseen = sorted(set(cancer_all[rows["test"]]) - set(cancer_types))
    if unseen:
        raise InvalidInputError(
            f"Cancer type(s) {describe_examples(unseen)} occur among the test patients but not in training; the frozen "
            "models cannot condition on them. Re-split with stratification by cancer type."
        )
    surv = None
    if survival_models:
        surv = survival_data(mdata, latent_key, rows, time_key=time_key, event_key=event_key,
                             cancer_type_key=cancer_type_key)  # fmt: skip
    label_task = None
    if classifiers:
        label_task = _label_task(mdata, label_key, rows)

    # ---- the imputers, on a working copy that holds no test-patient latent
    train_mean = latent_all[rows["train"]].mean(axis=0)
    imputed = _run_imputers(
        mdata, imputers, rows=rows, train_mean=train_mean, layout=layout, latent_key=latent_key, split_key=split_key,
        rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
        gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key, max_epochs=max_epochs, seed=seed,
        cfmd_kwargs=cfmd_kwargs, generative_kwargs=generative_kwargs, train_kwargs=train_kwargs,
    )  # fmt: skip
    test = rows["test"]
    missing = {p: np.flatnonzero(layout.mask([s for s, m in owners.items() if m in p])) for p in patterns}
    for name, prediction in imputed.items():
        for p, dims in missing.items():
            same = (prediction[test][:, dims] == latent_all[test][:, dims]).all(axis=1)
            if same.any():
                raise InvalidInputError(
                    f"Imputer {name!r} returned the observed latent of {int(same.sum())} test patient(s) on the slices "
                    f"of {pattern_label(p)!r}: a copy of the truth is not an imputation."
                )

    # ---- the test inputs of every condition
    def inputs(pattern) -> dict[str, np.ndarray]:
        dims = missing[pattern]
        out = {"full": latent_all[test]}
        ablated = latent_all[test].copy()
        ablated[:, dims] = train_mean[dims]
        out["ablation"] = ablated
        for name, prediction in imputed.items():
            filled = latent_all[test].copy()
            filled[:, dims] = prediction[test][:, dims]
            out[f"imputed:{name}"] = filled
        return out

    condition_inputs = {p: inputs(p) for p in patterns}
    results, per_type, notes = [], [], []
    distributions: dict[tuple, np.ndarray] = {}
    test_cancer = cancer_all[test]
    train = rows["train"]

    # ---- classification
    if classifiers:
        keep_train, keep_test, codes, classes = label_task
        is_cancer = label_key == cancer_type_key
        true, kept_cancer = codes["test"], test_cancer[keep_test]
        indices = stratified_bootstrap_indices(make_strata(kept_cancer, true), n_boot, seed=seed)
        n_classes = len(classes)
        scored = _ScoreCache(
            lambda pred: (
                point_classification(true, pred, n_classes),
                _scores_from_counts(_classification_counts(true, pred, n_classes, indices)),
            )
        )
    for kind in classifiers:
        model = _Classifier(kind, n_estimators=n_estimators, seed=seed, cancer_types=cancer_types, with_latent=True,
                            with_cancer=not is_cancer).fit(
            latent_all[train][keep_train], cancer_all[train][keep_train], codes["train"])  # fmt: skip
        baseline = None
        if not is_cancer:
            baseline = _Classifier(kind, n_estimators=n_estimators, seed=seed, cancer_types=cancer_types,
                                   with_latent=False, with_cancer=True).fit(
                latent_all[train][keep_train], cancer_all[train][keep_train], codes["train"])  # fmt: skip
        for pattern in patterns:
            preds = {c: model.predict(x[keep_test], kept_cancer) for c, x in condition_inputs[pattern].items()}
            if baseline is not None:
                preds["cancer_type_only"] = baseline.predict(condition_inputs[pattern]["full"][keep_test], kept_cancer)
            for condition, pred in preds.items():
                point, dist = scored(pred)
                for metric in TASK_METRICS["classification"]:
                    low, high = percentile_interval(dist[metric], ci)
                    results.append(_row("classification", kind, metric, pattern, condition, point[metric], low, high,
                                        len(true), np.nan))  # fmt: skip
                    distributions[("classification", kind, metric, pattern_label(pattern), condition)] = dist[metric]
                per_type += _per_cancer_classification(
                    kind, pattern, condition, true, pred, kept_cancer, classes, is_cancer
                )
            if is_cancer:
                for metric in TASK_METRICS["classification"]:
                    results.append(_row("classification", kind, metric, pattern, "cancer_type_only", np.nan, np.nan,
                                        np.nan, len(true), np.nan))  # fmt: skip
        if is_cancer and kind == classifiers[0]:
            notes.append("cancer_type_only is not defined for a classifier of the cancer type itself (NaN).")

    # ---- survival
    if survival_models:
        keep = np.ones(test.size, dtype=bool) if surv.test_keep is None else surv.test_keep
        time, event = surv.test_time, surv.test_event
        n_events = int(event.sum())
        score = n_events >= MIN_EVENTS_TO_SCORE
        if not score:
            reason = (
                f"the {int(keep.sum())} test patients with survival have {n_events} event(s) (< {MIN_EVENTS_TO_SCORE}): "
                "too few for a C-index; reported as NaN"
            )
            warnings.warn(f"downstream_rescue: {reason}.", UserWarning, stacklevel=3)
            notes.append(reason)
        indices = stratified_bootstrap_indices(make_strata(test_cancer[keep], event.astype(int)), n_boot, seed=seed + 1)
        val_latent, val_time, val_event, val_cancer = surv.validation
        scored = _ScoreCache(
            lambda risk: (
                concordance_index(time, event, risk),
                resampled_statistic(harrell_c, (time, event, risk), indices),
            )
        )
        for kind in survival_models:
            fitted = {}
            for name, with_latent in (("model", True), ("cancer_type_only", False)):
                fitted[name] = _SurvivalModel(
                    kind, n_estimators=n_estimators, seed=seed, cancer_types=cancer_types, with_latent=with_latent
                ).fit(surv.train_latent, surv.train_time, surv.train_event, surv.train_cancer,
                      (val_latent, val_time, val_event, val_cancer))  # fmt: skip
            for pattern in patterns:
                risks = {c: fitted["model"].predict_risk(x[keep], test_cancer[keep])
                         for c, x in condition_inputs[pattern].items()}  # fmt: skip
                risks["cancer_type_only"] = fitted["cancer_type_only"].predict_risk(
                    condition_inputs[pattern]["full"][keep], test_cancer[keep]
                )
                for condition, risk in risks.items():
                    if score:
                        value, dist = scored(risk)
                        low, high = percentile_interval(dist, ci)
                    else:
                        value = low = high = np.nan
                        dist = np.full(n_boot, np.nan)
                    results.append(_row("survival", kind, "c_index", pattern, condition, value, low, high,
                                        int(keep.sum()), n_events))  # fmt: skip
                    distributions[("survival", kind, "c_index", pattern_label(pattern), condition)] = dist
                    per_type += _per_cancer_survival(kind, pattern, condition, time, event, risk, test_cancer[keep])

    results = pd.DataFrame(results)
    imputation_r2 = pd.DataFrame(
        [
            {"imputer": name, "pattern": pattern_label(p), "n_dims": int(dims.size),
             "r2": float(multivariate_r2(latent_all[test][:, dims], prediction[test][:, dims]))}
            for name, prediction in imputed.items()
            for p, dims in missing.items()
        ],
        columns=["imputer", "pattern", "n_dims", "r2"],
    )  # fmt: skip
    comparisons = _comparisons(results, distributions, imputers, ci)
    table = _table2(results, comparisons, imputers)
    settings = {
        "imputers": list(imputers),
        "patterns": [pattern_label(p) for p in patterns],
        "missing_slices": {
            pattern_label(p): [s for s, m in owners.items() if m in p and s in layout] for p in patterns
        },
        "ablation": "training mean of the missing slices",
        "label_key": label_key or "",
        "classifiers": list(classifiers),
        "survival_models": list(survival_models),
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_boot": int(n_boot),
        "ci": float(ci),
        "seed": int(seed),
        "notes": notes,
    }
    for frame in (results, table, comparisons):
        frame.attrs.update({"ci": float(ci), "n_boot": int(n_boot)})
    target = copy_mudata(mdata) if copy else mdata
    target.uns[key_added] = {
        "results": results,
        "table": table,
        "comparisons": comparisons,
        "per_cancer_type": pd.DataFrame(per_type),
        "imputation_r2": imputation_r2,
        "settings": settings,
    }
    logger.info(
        "downstream_rescue: %d pattern(s) x %d imputer(s) scored on %d test patients.", len(patterns), len(imputed),
        test.size,
    )  # fmt: skip
    return target if copy else None


def _label_task(mdata, label_key, rows):
    """Which train / test patients have a label, the labels as integer codes, and the classes."""
    labels = mdata.obs[label_key]
    out, keep = {}, {}
    for part in ("train", "test"):
        values = labels.iloc[rows[part]]
        keep[part] = values.notna().to_numpy()
        out[part] = values[keep[part]].astype(str).to_numpy()
    if keep["test"].sum() < 3:
        raise InvalidInputError(f"Fewer than 3 test patients have a label in mdata.obs[{label_key!r}].")
    classes = sorted(set(out["train"]))
    if len(classes) < 2:
        raise InvalidInputError(
            f"mdata.obs[{label_key!r}] has {len(classes)} class(es) among the training patients: nothing to classify. "
            "Pass another `label_key`, or label_key=None to score survival only."
        )
    classes = sorted(set(classes) | set(out["test"]))
    lookup = {c: k for k, c in enumerate(classes)}
    codes = {part: np.array([lookup[v] for v in out[part]], dtype=np.intp) for part in out}
    return keep["train"], keep["test"], codes, classes


def imputer_max_epochs(name: str, max_epochs: int | Mapping[str, int] | None) -> int:
    """Training epochs of imputer ``name``: the number given for it (or for all), else its own default."""
    if isinstance(max_epochs, Mapping):
        max_epochs = max_epochs.get(name)
    if max_epochs is not None:
        return int(max_epochs)
    return DIFFUSION_MAX_EPOCHS if name in GENERATIVE_MODELS else CFMD_MAX_EPOCHS


def _run_imputers(mdata, imputers, *, rows, train_mean, layout, latent_key, split_key, rna_key, rna_layer, rna_scale,
                  geneformer_key, gene_embedding_key, rna_only_key, max_epochs, seed, cfmd_kwargs, generative_kwargs,
                  train_kwargs) -> dict[str, np.ndarray]:  # fmt: skip
    """Every imputer's ``(n_patients, n_dims)`` prediction, trained on a copy whose test latents are blinded."""
    if not imputers:
        return {}
    work = copy_mudata(mdata)
    blinded = np.array(work.obsm[latent_key], dtype=np.float32)
    blinded[rows["test"]] = train_mean.astype(np.float32)  # no imputer can see a test patient's latent
    work.obsm[latent_key] = blinded
    context = MethodContext(
        mdata=work, latent_key=latent_key, layout=layout, split_key=split_key, seed=seed, rna_key=rna_key,
        rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
        gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key, cfmd_kwargs=dict(cfmd_kwargs or {}),
        train_kwargs=dict(train_kwargs or {}),
    )  # fmt: skip
    for kind in ("diffusion", "coherent_denoising"):
        context.state[f"{kind}_kwargs"] = dict(generative_kwargs or {})
    out = {}
    for name in imputers:
        context.max_epochs = imputer_max_epochs(name, max_epochs)
        out[name] = np.asarray(get_method(name).fit_predict(context), dtype=np.float64)
    return out
