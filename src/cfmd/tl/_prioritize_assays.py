"""``cfmd.tl.prioritize_assays``: which patients should get an assay first? (seed 004's counterfactual analysis).

A frozen downstream model (the survival head of :mod:`cfmd.metrics` or a logistic classifier) is trained once on the
training patients' observed latents. For each test patient, the modality's slices are replaced by each of n
generated versions (:func:`cfmd.tl.generate` with ``return_samples=True``); the spread of the frozen model's
predictions is the patient's counterfactual score: high where the other modalities leave the prediction open, low
where the modality is reconstructible from them. The acquisition experiment then observes the modality for a growing
fraction of the test patients, chosen by descending score (informed) or at random, and scores the frozen model on
the mix (seed 004, Figure 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .._docs import DOC_COPY, doc_params
from .._layout import LatentLayout, layout_uns_key
from .._logging import logger
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import (
    InvalidInputError,
    check_choice,
    check_not_view,
    check_obs_columns,
    check_positive_int,
    describe_examples,
)
from ._prioritize_downstream import _Downstream

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["PRIORITIZE_SCORES", "PRIORITIZE_TASKS", "prioritize_assays"]

#: ``task=`` values: the frozen downstream model and its metric.
PRIORITIZE_TASKS = {"survival": "c_index", "classification": "f1_macro"}
#: ``score=`` values (see :func:`prioritize_assays`).
PRIORITIZE_SCORES = ("variance", "ablation")
_UNOBSERVED = ("imputed", "ablated")


@doc_params(copy=DOC_COPY)
def prioritize_assays(
    mdata: MuData,
    modality: str = "meth",
    *,
    generated_key: str = "X_diffusion",
    task: Literal["survival", "classification"] = "survival",
    label_key: str | None = None,
    time_key: str = "os_time",
    event_key: str = "os_event",
    cancer_type_key: str | None = "cancer_type",
    score: Literal["variance", "ablation"] = "variance",
    unobserved: Literal["imputed", "ablated"] = "imputed",
    n_repeats: int = 10,
    n_random: int = 20,
    n_steps: int = 21,
    seed: int = 0,
    key_added: str = "cfmd_prioritize",
    copy: bool = False,
) -> MuData | None:
    """Counterfactual score per test patient and the acquisition curve: informed vs random (seed 004, Figure 4).

    Reads the generations :func:`cfmd.tl.generate` wrote with ``return_samples=True``
    (``.obsm[f"{generated_key}_samples"]``) and the patient split it recorded (``.uns[generated_key]["split"]``), so
    the generative model and the downstream model see the same training patients and every scored patient is a test
    patient neither was trained or validated on.

    1. **Frozen downstream model**, trained once on the training patients' observed latents (all slices), then
       frozen: ``task="survival"``: :class:`cfmd.metrics.SurvivalHead` (elastic-net Cox on latent + one-hot cancer
       type; penalty chosen on the validation patients), metric Harrell's C; ``task="classification"``: a
       standardised multinomial logistic regression (scikit-learn) of ``.obs[label_key]`` on the latent (+ one-hot
       cancer type unless that is the label), metric macro F1.
    2. **Counterfactual score** per test patient and repeat: the modality's slices (``modality``: a slice or a
       modality that owns slices) are replaced by each generation of the repeat's share and the frozen model predicts
       (risk score, or class probabilities). ``score="variance"``: the variance of the predictions across the
       generations (summed over classes); ``score="ablation"``: the mean squared difference between the predictions
       and the prediction with the modality ablated (its slices at the training mean; the authors' code).
    3. **Acquisition experiment**: for ``n_steps`` fractions from 0 to 1, the modality is observed (the real latent)
       for that fraction of the test patients, chosen by descending score (*informed*; ties in random order) or at
       random (*random*: the mean of ``n_random`` random orders), and the frozen model is scored on all test patients;
       the others get ``unobserved``: ``"imputed"`` (the mean of the repeat's generations) or ``"ablated"`` (the
       training mean; the seed's Figure 4). Each repeat uses its own share of the generations (``S // n_repeats`` of
       the ``S`` per patient) and its own random orders, seeded by ``seed``.
    4. **Area between the curves**: per repeat, the area under each curve over the observed fraction (trapezoid
       rule); the informed minus random areas are tested with the Wilcoxon signed-rank test and the paired t-test
       (:func:`scipy.stats.wilcoxon`, :func:`scipy.stats.ttest_rel`) over the repeats, two-sided.

    Parameters
    ----------
    mdata
        MuData after :func:`cfmd.tl.generate` (``return_samples=True``, the target covering ``modality``), with the
        outcome in ``.obs``.
    modality
        A slice of the latent or a modality owning slices (as :func:`cfmd.tl.generate`'s ``target``).
    generated_key
        The ``key_added`` of :func:`cfmd.tl.generate`.
    task
        ``"survival"`` or ``"classification"``.
    label_key
        ``.obs`` column of the class labels (``task="classification"`` only; required there).
    time_key, event_key
        ``.obs`` columns of survival time and event (``task="survival"``).
    cancer_type_key
        ``.obs`` column of the cancer type (one-hot input of the downstream model and per-cancer-type results);
        ``None``: none.
    score
        ``"variance"`` (the spread across generations) or ``"ablation"`` (the distance from the ablated prediction).
    unobserved
        What the downstream model sees for patients whose modality is not observed: ``"imputed"`` or ``"ablated"``.
    n_repeats
        Repeats of the experiment (>= 2; each needs 2 generations per patient at least).
    n_random
        Random orders averaged into each repeat's random curve.
    n_steps
        Fractions of observed patients, evenly spaced from 0 to 1 (21: steps of 5%).
    seed
        Seed of the random orders and of tie-breaking.
    key_added
        ``.uns`` key of the results and prefix of the ``.obs`` columns.
    {copy}

    Returns
    -------
    ``None`` (or the copy when ``copy=True``). Fields written:

    ``.obs[f"{key_added}_score"]``
        Counterfactual score of each test patient, averaged over repeats (NaN for other patients).
    ``.obs[f"{key_added}_rank"]``
        Acquisition order by that mean score (1 = observe first; NaN for other patients).
    ``.uns[key_added]["curves"]``
        Tidy DataFrame: ``strategy`` (``informed`` / ``random``), ``repeat``, ``fraction`` (observed), ``value`` (the
        metric; for ``random`` the mean over the random orders).
    ``.uns[key_added]["summary"]``
        Per strategy and fraction: ``mean``, ``sd``, ``low`` / ``high`` (95% t-interval of the mean over repeats).
    ``.uns[key_added]["areas"]``
        Per repeat: ``informed``, ``random`` (areas under the curves) and ``difference``.
    ``.uns[key_added]["scores"]``
        DataFrame, test patients x repeats: the score of each repeat.
    ``.uns[key_added]["per_cancer_type"]``
        Per cancer type (the metric on its test patients; NaN where undefined): ``n_patients``, ``none`` / ``all``
        (modality observed for no / every patient; mean over repeats), ``area_informed``, ``area_random``
        (the curves restricted to its patients, orders from the whole test set).
    ``.uns[key_added]["test"]``
        ``area_difference`` (mean), ``area_difference_low`` / ``_high`` (95% t-interval), ``p_wilcoxon``, ``p_ttest``,
        ``n_repeats``.
    ``.uns[key_added]["settings"]``
        ``modality``, ``slices``, ``generated_key``, ``latent_key``, ``task``, ``metric``, ``score``, ``unobserved``,
        ``n_generations`` (per score), ``n_repeats``, ``n_random``, ``n_steps``, ``seed``, ``n_train``, ``n_test``,
        ``label_key``, ``cancer_type_key``, ``downstream`` (model description).

    Examples
    --------
    >>> cfmd.tl.generate(mdata, model="diffusion", target="meth", n_samples=50, return_samples=True)  # doctest: +SKIP
    >>> cfmd.tl.prioritize_assays(mdata, "meth", generated_key="X_diffusion", n_repeats=10)  # doctest: +SKIP
    >>> cfmd.pl.acquisition_curve(mdata)  # doctest: +SKIP
    """
    if not copy:
        check_not_view(mdata, "mdata")
    target = copy_mudata(mdata) if copy else mdata
    with unchanged_on_error(target):
        _prioritize(
            target, modality=modality, generated_key=generated_key, task=task, label_key=label_key,
            time_key=time_key, event_key=event_key, cancer_type_key=cancer_type_key, score=score,
            unobserved=unobserved, n_repeats=n_repeats, n_random=n_random, n_steps=n_steps, seed=seed,
            key_added=key_added,
        )  # fmt: skip
    return target if copy else None


# ---------------------------------------------------------------------------------------------- checks
def _check_inputs(mdata, *, modality, generated_key, task, label_key, time_key, event_key, cancer_type_key, score,
                  unobserved, n_repeats, n_random, n_steps, seed, key_added):  # fmt: skip
    from ..models._latent_diffusion import resolve_target

    check_choice(task, "task", tuple(PRIORITIZE_TASKS))
    check_choice(score, "score", PRIORITIZE_SCORES)
    check_choice(unobserved, "unobserved", _UNOBSERVED)
    n_repeats = check_positive_int(n_repeats, "n_repeats", minimum=2)
    n_random = check_positive_int(n_random, "n_random")
    n_steps = check_positive_int(n_steps, "n_steps", minimum=2)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise InvalidInputError(f"`key_added` must be a non-empty string; got {key_added!r}.")
    record = mdata.uns.get(generated_key)
    samples_key = f"{generated_key}_samples"
    if not hasattr(record, "get") or samples_key not in mdata.obsm:
        raise InvalidInputError(
            f"No generations under `generated_key` {generated_key!r}: expected mdata.uns[{generated_key!r}] and "
            f"mdata.obsm[{samples_key!r}]; run cfmd.tl.generate(mdata, key_added={generated_key!r}, "
            "return_samples=True, ...) first."
        )
    for field in ("split", "target_slices", "latent_key"):
        if field not in record:
            raise InvalidInputError(
                f"mdata.uns[{generated_key!r}] lacks {field!r}; it is not a cfmd.tl.generate record."
            )
    latent_key = str(record["latent_key"])
    if latent_key not in mdata.obsm:
        raise InvalidInputError(
            f"mdata.obsm has no observed latent {latent_key!r} (the latent cfmd.tl.generate trained on); the "
            "acquisition experiment needs the real latent of the test patients."
        )
    if layout_uns_key(generated_key) in mdata.uns:
        layout = LatentLayout.from_mudata(mdata, generated_key)
    else:
        layout = LatentLayout.from_mudata(mdata, latent_key)
    latent = np.asarray(mdata.obsm[latent_key], dtype=float)
    layout.check_width(latent.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    if not isinstance(modality, str):
        raise InvalidInputError(f"`modality` must be a slice or modality name (str); got {modality!r}.")
    slices = resolve_target(mdata, latent_key, layout, modality)
    generated_slices = [str(s) for s in record["target_slices"]]
    missing = [s for s in slices if s not in generated_slices]
    if missing:
        raise InvalidInputError(
            f"`modality` {modality!r} covers slice(s) {missing} that mdata.obsm[{samples_key!r}] does not hold "
            f"(generated: {generated_slices}); generate them with cfmd.tl.generate(target={modality!r}, ...)."
        )
    samples = np.asarray(mdata.obsm[samples_key])
    target_index = np.concatenate([layout[s].indices for s in generated_slices])
    if samples.ndim != 3 or samples.shape[0] != mdata.n_obs or samples.shape[2] != target_index.size:
        raise InvalidInputError(
            f"mdata.obsm[{samples_key!r}] must be (n_patients, n_samples, {target_index.size}); got {samples.shape}."
        )
    if samples.shape[1] < 2 * n_repeats:
        raise InvalidInputError(
            f"`n_repeats` {n_repeats} needs at least {2 * n_repeats} generations per patient (2 per repeat); "
            f"mdata.obsm[{samples_key!r}] holds {samples.shape[1]}: rerun cfmd.tl.generate with n_samples >= "
            f"{2 * n_repeats} or lower `n_repeats`."
        )
    split = {}
    for part in ("train", "validation", "test"):
        names = pd.Index([str(n) for n in record["split"].get(part, [])])
        rows = mdata.obs_names.get_indexer(names)
        if (rows < 0).any():
            raise InvalidInputError(
                f"mdata.uns[{generated_key!r}]['split'][{part!r}] names patients absent from mdata "
                f"({describe_examples(names[rows < 0])}); use the MuData cfmd.tl.generate wrote into."
            )
        split[part] = rows
    for part in ("train", "test"):
        bad = ~np.isfinite(latent[split[part]]).all(axis=1)
        if bad.any():
            raise InvalidInputError(
                f"{int(bad.sum())} {part} patient(s) lack the observed latent mdata.obsm[{latent_key!r}] "
                f"({describe_examples(mdata.obs_names[split[part][bad]])})."
            )
    dims = np.concatenate([layout[s].indices for s in slices])
    take = np.array([int(np.flatnonzero(target_index == d)[0]) for d in dims])
    generated = samples[split["test"]][:, :, take].astype(float)
    if not np.isfinite(generated).all():
        raise InvalidInputError(f"mdata.obsm[{samples_key!r}] has NaN or infinite generations for test patients.")

    obs = mdata.obs
    if cancer_type_key is not None:
        check_obs_columns(obs, [cancer_type_key])
    if task == "survival":
        check_obs_columns(obs, [time_key, event_key])
    else:
        if label_key is None:
            raise InvalidInputError(
                "`label_key` (the .obs column of the class labels) is required for task='classification'."
            )
        check_obs_columns(obs, [label_key])
    return {
        "latent_key": latent_key, "layout": layout, "latent": latent, "slices": slices, "dims": dims,
        "generated": generated, "split": split, "n_repeats": n_repeats, "n_random": n_random, "n_steps": n_steps,
    }  # fmt: skip


def _outcome_rows(obs, rows, task, label_key, time_key, event_key, part):
    """Rows of ``part`` with an outcome (missing outcomes are left out, logged)."""
    if task == "survival":
        keep = obs[time_key].iloc[rows].notna().to_numpy() & obs[event_key].iloc[rows].notna().to_numpy()
    else:
        keep = obs[label_key].iloc[rows].notna().to_numpy()
    if not keep.all():
        logger.info("prioritize_assays: %d %s patient(s) without an outcome are left out.", int((~keep).sum()), part)
    return rows[keep]


# ---------------------------------------------------------------------------------------------- experiment
def _spread(pred_gen, pred_ablated, score):
    """Per-patient score from ``(n, G)`` or ``(n, G, K)`` predictions."""
    if score == "variance":
        value = pred_gen.var(axis=1, ddof=1)
    else:
        diff = pred_gen - pred_ablated[:, None]
        value = np.mean(diff**2, axis=1)
    return value.sum(axis=-1) if value.ndim == 2 else value


def _curve(model, pred_true, pred_fill, order, counts, positions=None):
    """Metric at each count of observed patients (the first ``count`` of ``order`` observed).

    ``pred_true`` / ``pred_fill``: predictions with the modality observed / not, for the test patients at
    ``positions`` (None: all); ``order``: positions within those rows.
    """
    values = np.empty(len(counts))
    observed = np.zeros(pred_true.shape[0], dtype=bool)
    for k, count in enumerate(counts):
        observed[:] = False
        observed[order[:count]] = True
        shape = (-1,) + (1,) * (pred_true.ndim - 1)
        mixed = np.where(observed.reshape(shape), pred_true, pred_fill)
        values[k] = model.metric(mixed, positions)
    return values


def _t_interval(values, axis=0):
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    sd = values.std(axis=axis, ddof=1)
    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    return mean, sd, mean - half, mean + half


def _paired_tests(informed, random):
    import warnings

    from scipy import stats

    diff = np.asarray(informed) - np.asarray(random)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            p_wilcoxon = float(stats.wilcoxon(informed, random).pvalue) if np.any(diff != 0) else 1.0
        except ValueError:
            p_wilcoxon = np.nan
        p_ttest = float(stats.ttest_rel(informed, random).pvalue) if np.ptp(diff) > 0 else np.nan
    return p_wilcoxon, p_ttest


def _prioritize(mdata, *, modality, generated_key, task, label_key, time_key, event_key, cancer_type_key, score,
                unobserved, n_repeats, n_random, n_steps, seed, key_added):  # fmt: skip
    checked = _check_inputs(
        mdata, modality=modality, generated_key=generated_key, task=task, label_key=label_key, time_key=time_key,
        event_key=event_key, cancer_type_key=cancer_type_key, score=score, unobserved=unobserved,
        n_repeats=n_repeats, n_random=n_random, n_steps=n_steps, seed=seed, key_added=key_added,
    )  # fmt: skip
    n_repeats, n_random, n_steps = checked["n_repeats"], checked["n_random"], checked["n_steps"]
    split = checked["split"]
    obs = mdata.obs
    rows = {part: _outcome_rows(obs, split[part], task, label_key, time_key, event_key, part) for part in split}
    keep_test = np.isin(split["test"], rows["test"])
    generated = checked["generated"][keep_test]  # (n_test, S, d)
    test = rows["test"]
    if test.size < 2 or rows["train"].size < 2:
        raise InvalidInputError(
            f"Too few patients with an outcome: {rows['train'].size} training and {test.size} test patient(s)."
        )
    model = _Downstream(
        mdata, checked, rows, task=task, label_key=label_key, time_key=time_key, event_key=event_key,
        cancer_type_key=cancer_type_key,
    )  # fmt: skip
    latent, dims = checked["latent"], checked["dims"]
    true_latent = latent[test]
    ablated_latent = true_latent.copy()
    ablated_latent[:, dims] = latent[rows["train"]][:, dims].mean(axis=0)
    pred_true = model.predict(true_latent, test)
    pred_ablated = model.predict(ablated_latent, test)

    n_test, n_total = generated.shape[0], generated.shape[1]
    per_repeat = n_total // n_repeats
    fractions = np.linspace(0.0, 1.0, n_steps)
    counts = np.round(fractions * n_test).astype(int)
    cancer = model.cancer[test]
    types = sorted(set(cancer))
    members = {t: np.flatnonzero(cancer == t) for t in types}
    rng = np.random.default_rng(int(seed))
    scores = np.empty((n_test, n_repeats))
    curves = {"informed": np.empty((n_repeats, n_steps)), "random": np.empty((n_repeats, n_steps))}
    by_type = {t: {"none": [], "all": [], "informed": [], "random": []} for t in types}
    for r in range(n_repeats):
        share = generated[:, r * per_repeat : (r + 1) * per_repeat]  # (n_test, G, d)
        stacked = np.repeat(true_latent[:, None, :], per_repeat, axis=1)
        stacked[:, :, dims] = share
        pred_gen = model.predict(stacked.reshape(n_test * per_repeat, -1), np.repeat(test, per_repeat))
        pred_gen = pred_gen.reshape((n_test, per_repeat) + pred_gen.shape[1:])
        scores[:, r] = _spread(pred_gen, pred_ablated, score)
        if unobserved == "imputed":
            filled = true_latent.copy()
            filled[:, dims] = share.mean(axis=1)
            pred_fill = model.predict(filled, test)
        else:
            pred_fill = pred_ablated
        order = np.lexsort((rng.random(n_test), -scores[:, r]))  # descending score, ties in random order
        random_orders = [rng.permutation(n_test) for _ in range(n_random)]
        curves["informed"][r] = _curve(model, pred_true, pred_fill, order, counts)
        curves["random"][r] = np.mean([_curve(model, pred_true, pred_fill, o, counts) for o in random_orders], axis=0)
        if cancer_type_key is not None:
            for t, idx in members.items():
                local = np.searchsorted(idx, order[np.isin(order, idx)])
                local_counts = np.round(fractions * idx.size).astype(int)
                sub_true, sub_fill = pred_true[idx], pred_fill[idx]
                informed = _curve(model, sub_true, sub_fill, local, local_counts, idx)
                random = np.mean(
                    [_curve(model, sub_true, sub_fill, np.searchsorted(idx, o[np.isin(o, idx)]), local_counts, idx)
                     for o in random_orders], axis=0,
                )  # fmt: skip
                by_type[t]["none"].append(informed[0])
                by_type[t]["all"].append(informed[-1])
                by_type[t]["informed"].append(_area(fractions, informed))
                by_type[t]["random"].append(_area(fractions, random))

    areas = pd.DataFrame(
        {
            "repeat": np.arange(n_repeats),
            "informed": [_area(fractions, c) for c in curves["informed"]],
            "random": [_area(fractions, c) for c in curves["random"]],
        }
    )
    areas["difference"] = areas["informed"] - areas["random"]
    p_wilcoxon, p_ttest = _paired_tests(areas["informed"].to_numpy(), areas["random"].to_numpy())
    mean_diff, _, low_diff, high_diff = _t_interval(areas["difference"].to_numpy())
    long, summary = [], []
    for strategy, values in curves.items():
        mean, sd, low, high = _t_interval(values)
        for r in range(n_repeats):
            long.append(pd.DataFrame({"strategy": strategy, "repeat": r, "fraction": fractions, "value": values[r]}))
        summary.append(pd.DataFrame({"strategy": strategy, "fraction": fractions, "mean": mean, "sd": sd,
                                     "low": low, "high": high}))  # fmt: skip
    curves_table = pd.concat(long, ignore_index=True)
    curves_table["strategy"] = pd.Categorical(curves_table["strategy"], categories=["informed", "random"])
    summary_table = pd.concat(summary, ignore_index=True)
    summary_table["strategy"] = pd.Categorical(summary_table["strategy"], categories=["informed", "random"])
    per_type = pd.DataFrame(
        [
            {"cancer_type": t, "n_patients": int(members[t].size), "none": _mean(v["none"]),
             "all": _mean(v["all"]), "area_informed": _mean(v["informed"]), "area_random": _mean(v["random"])}
            for t, v in by_type.items() if v["none"]
        ],
        columns=["cancer_type", "n_patients", "none", "all", "area_informed", "area_random"],
    )  # fmt: skip
    test_names = mdata.obs_names[test]
    mean_score = scores.mean(axis=1)
    rank = np.empty(n_test)
    rank[np.lexsort((np.arange(n_test), -mean_score))] = np.arange(1, n_test + 1)
    score_column = np.full(mdata.n_obs, np.nan)
    score_column[test] = mean_score
    rank_column = np.full(mdata.n_obs, np.nan)
    rank_column[test] = rank

    settings = {
        "modality": modality, "slices": list(checked["slices"]), "generated_key": generated_key,
        "latent_key": checked["latent_key"], "task": task, "metric": model.metric_name, "score": score,
        "unobserved": unobserved, "n_generations": int(per_repeat), "n_repeats": int(n_repeats),
        "n_random": int(n_random), "n_steps": int(n_steps), "seed": int(seed), "n_train": int(rows["train"].size),
        "n_test": int(n_test), "label_key": "" if label_key is None else label_key,
        "cancer_type_key": "" if cancer_type_key is None else cancer_type_key, "downstream": model.description,
    }  # fmt: skip
    mdata.obs[f"{key_added}_score"] = score_column
    mdata.obs[f"{key_added}_rank"] = rank_column
    mdata.uns[key_added] = {
        "curves": curves_table,
        "summary": summary_table,
        "areas": areas,
        "scores": pd.DataFrame(
            scores, index=pd.Index(test_names.astype(str)), columns=[str(r) for r in range(n_repeats)]
        ),
        "per_cancer_type": per_type,
        "test": {
            "area_difference": float(mean_diff),
            "area_difference_low": float(low_diff),
            "area_difference_high": float(high_diff),
            "p_wilcoxon": p_wilcoxon,
            "p_ttest": p_ttest,
            "n_repeats": int(n_repeats),
        },
        "settings": settings,
    }
    logger.info(
        "prioritize_assays: %s on %d test patients; area informed - random %.4f (95%% CI %.4f to %.4f), "
        "Wilcoxon p = %.3g over %d repeats.",
        model.metric_name, n_test, mean_diff, low_diff, high_diff, p_wilcoxon, n_repeats,
    )  # fmt: skip


def _mean(values) -> float:
    """Mean of the finite values (NaN, without a warning, when there is none: e.g. no comparable pair)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else np.nan


def _area(fractions, values):
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).all():
        return np.nan
    return float(np.trapezoid(values, fractions))
