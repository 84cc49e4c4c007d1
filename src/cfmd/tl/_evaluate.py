"""``cfmd.tl.evaluate``: slice fidelity and survival utility of imputed latents on held-out patients."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import DEFAULT_LATENT_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY
from .._docs import DOC_COPY, DOC_SPLIT_KEY, DOC_UNS_KEY_ADDED, doc_params
from .._layout import LatentLayout, layout_uns_key
from .._transaction import unchanged_on_error
from .._validation import (
    InvalidInputError,
    check_choice,
    check_obs_columns,
    check_obsm,
    check_positive_int,
    describe_examples,
)
from ._scoring import IN_SAMPLE_SUFFIX, SurvivalData, check_ci, score_methods, survival_data
from ._split import split_indices

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["SurvivalData", "evaluate", "evaluation_settings", "score_methods"]


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
    truth_key: str = DEFAULT_LATENT_KEY,
    split_key: str = DEFAULT_SPLIT_KEY,
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
    seed: int = DEFAULT_SEED,
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
