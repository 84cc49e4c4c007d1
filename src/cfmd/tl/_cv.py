"""Repeated, patient-disjoint, stratified k-fold cross-validation for :func:`cfmd.tl.benchmark` (``cv=k``).

Per repeat, the patients with an observed latent are dealt into ``k`` folds within strata of cancer type x
event (patients without survival form their own stratum per cancer type). For each fold a fresh copy of the
MuData gets a split column: the fold is ``test``; the other patients are split again (same strata) into
``train`` and ``validation`` (``cv_validation_fraction``); patients without an observed latent stay
``rna_only``. Every method of :data:`~cfmd.tl.METHODS` then runs unchanged on that copy, so everything it fits
(normalisation statistics, the imputer, early stopping, the ridge's penalty) comes from the fold's training part;
the survival head is trained on the fold's ``train`` latents with its penalty chosen on ``validation`` (or by inner
CV when the validation part has too few events, see :class:`~cfmd.metrics.SurvivalHead`). The structured latent
(the target) is given: the StructuredVAE is **not** refitted per fold.
"""

from __future__ import annotations

import time as _time
import warnings

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import InvalidInputError
from ..metrics import MIN_EVENTS_TO_SCORE, SurvivalHead, harrell_c, resampled_statistic

__all__ = ["cv_assignments"]

CV_SPLIT_COLUMN = "_cfmd_cv_split"


def _strata(cancer: np.ndarray, event: np.ndarray) -> np.ndarray:
    ev = np.where(np.isnan(event), "na", np.where(event > 0, "1", "0"))
    return np.array([f"{c}|{e}" for c, e in zip(cancer, ev)], dtype=object)


def _deal(strata: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold labels 0..k-1, every stratum dealt round-robin from a random start (sizes differ by <= 1 per stratum)."""
    fold = np.empty(len(strata), dtype=int)
    offset = 0
    for label in sorted(set(strata)):
        members = rng.permutation(np.flatnonzero(strata == label))
        fold[members] = (offset + np.arange(members.size)) % k
        offset = (offset + members.size) % k
    return fold


def cv_assignments(strata: np.ndarray, k: int, repeats: int, seed: int) -> np.ndarray:
    """``(repeats, n)`` fold labels: every row in exactly one fold per repeat, stratified by ``strata``."""
    rng = np.random.default_rng(seed)
    return np.stack([_deal(np.asarray(strata, dtype=object), k, rng) for _ in range(repeats)])


def _validation_mask(strata: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    n_val = max(3, int(round(fraction * len(strata))))
    k = max(2, int(round(len(strata) / n_val)))
    return _deal(strata, k, rng) == 0


def run_cv(
    mdata, *, methods, seed, cv, cv_repeats, cv_validation_fraction, latent_key, layout, truth_all, scored,
    cancer, time, event, make_context,
):  # fmt: skip
    """Fit every method in every fold; return the out-of-fold predictions, risks and per-fold rows.

    ``scored``: indices (into ``mdata``) of the patients dealt into folds. ``make_context(work, seed)`` builds a
    :class:`~cfmd.tl.MethodContext` on a fold's copy.
    """
    from ..metrics import slice_metrics
    from ._methods import get_method

    strata = _strata(cancer[scored], event[scored])
    assignment = cv_assignments(strata, cv, cv_repeats, seed)
    n = scored.size
    oof = {m: np.full((cv_repeats, n, layout.n_dims), np.nan, dtype=np.float32) for m in methods}
    risk = {m: np.full((cv_repeats, n), np.nan) for m in methods}
    fold_rows, student_rows, timing, heads = [], [], [], []
    rng = np.random.default_rng(seed + 1)
    for r in range(cv_repeats):
        for f in range(cv):
            test_local = np.flatnonzero(assignment[r] == f)
            rest_local = np.flatnonzero(assignment[r] != f)
            val_mask = _validation_mask(strata[rest_local], cv_validation_fraction, rng)
            labels = np.full(mdata.n_obs, "rna_only", dtype=object)
            labels[scored[rest_local[~val_mask]]] = "train"
            labels[scored[rest_local[val_mask]]] = "validation"
            labels[scored[test_local]] = "test"
            work = mdata.copy()
            work.obs[CV_SPLIT_COLUMN] = pd.Categorical(labels, categories=["train", "validation", "test", "rna_only"])
            context = make_context(work, seed)
            test_rows, train_rows = scored[test_local], scored[rest_local[~val_mask]]
            val_rows = scored[rest_local[val_mask]]
            head, note = _fold_head(truth_all, cancer, time, event, train_rows, val_rows)
            heads.append({"repeat": r, "fold": f, **note})
            for name in methods:
                start = _time.perf_counter()
                prediction = get_method(name).fit_predict(context)
                timing.append({"method": name, "repeat": r, "fold": f, "seconds": _time.perf_counter() - start})
                oof[name][r, test_local] = prediction[test_rows]
                table = slice_metrics(truth_all[test_rows], prediction[test_rows], layout)
                fold_c, c_note = np.nan, note.get("note", "")
                if head is not None:
                    known = np.isin(cancer[test_rows], head.cancer_types)  # types absent from the fold's training
                    has = np.isfinite(time[test_rows]) & known  # part cannot be scored by its head
                    scores = np.full(test_rows.size, np.nan)
                    scores[known] = head.predict_risk(prediction[test_rows][known], cancer[test_rows][known])
                    risk[name][r, test_local] = scores
                    n_ev = int(event[test_rows][has].sum())
                    if n_ev >= MIN_EVENTS_TO_SCORE:
                        fold_c = harrell_c(time[test_rows][has], event[test_rows][has] > 0, scores[has])
                    else:
                        c_note = f"{n_ev} events in the test fold (< {MIN_EVENTS_TO_SCORE}): C-index not scored"
                val_table = slice_metrics(truth_all[val_rows], prediction[val_rows], layout)
                for row, vrow in zip(table.itertuples(), val_table.itertuples()):
                    fold_rows.append(
                        {
                            "repeat": r, "fold": f, "method": name, "slice": row.slice, "kind": row.kind,
                            "r2": row.r2, "validation_r2": vrow.r2, "n_train": train_rows.size,
                            "n_validation": val_rows.size, "n_test": test_rows.size,
                            "n_test_events": int(np.nansum(event[test_rows])), "c_index": fold_c, "c_index_note": c_note,
                        }
                    )  # fmt: skip
            if "students" in context.state:
                choice = context.state["students"]
                for slice_name, per in choice["scores"].items():
                    student_rows.append(
                        {
                            "repeat": r, "fold": f, "slice": slice_name, "chosen": choice["chosen"][slice_name],
                            **{f"validation_r2_{k}": v for k, v in per.items()},
                        }
                    )  # fmt: skip
            logger.info("benchmark cv: repeat %d fold %d done (%d test patients).", r + 1, f + 1, test_local.size)
    return {
        "assignment": assignment,
        "oof": oof,
        "risk": risk,
        "folds": pd.DataFrame(fold_rows),
        "students": pd.DataFrame(student_rows),
        "heads": pd.DataFrame(heads),
        "timing": pd.DataFrame(timing),
    }


def _fold_head(truth_all, cancer, time, event, train_rows, val_rows):
    """The fold's survival head (train latents; penalty on validation, or inner CV), or None with the reason."""
    tr = train_rows[np.isfinite(time[train_rows])]
    va = val_rows[np.isfinite(time[val_rows])]
    n_train_events = int(event[tr].sum()) if tr.size else 0
    if n_train_events < MIN_EVENTS_TO_SCORE:
        reason = f"{n_train_events} events in the fold's training part (< {MIN_EVENTS_TO_SCORE}): no survival head"
        warnings.warn(f"benchmark cv: {reason}; C-index reported as NaN.", UserWarning, stacklevel=4)
        return None, {"note": reason, "alpha": np.nan, "n_nonzero": 0, "penalty_by": ""}
    unseen = sorted(set(cancer[va]) - set(cancer[tr]))
    va = va[~np.isin(cancer[va], unseen)]
    validation = "inner_cv"  # no event in the validation part: the head's penalty comes from inner CV
    if va.size and event[va].sum() > 0:
        validation = (truth_all[va], time[va], event[va] > 0, cancer[va])
    head = SurvivalHead()
    head.fit(truth_all[tr], time[tr], event[tr] > 0, cancer[tr], validation=validation)
    info = head.selection_
    return head, {
        "note": "",
        "alpha": head.alpha_,
        "n_nonzero": int(np.count_nonzero(head.coef)),
        "penalty_by": info["penalty_by"],
    }


def pooled_c_index(time, event, risks, strata, n_boot, ci, seed):
    """Pooled out-of-fold C-index (averaged over repeats) with a bootstrap interval; NaN with a reason if too few events."""
    from ..metrics import make_strata, percentile_interval, stratified_bootstrap_indices

    has = np.isfinite(time) & np.isfinite(risks).all(axis=0)
    n_events = int(event[has].sum())
    if n_events < MIN_EVENTS_TO_SCORE:
        return np.nan, np.nan, np.nan, f"{n_events} events (< {MIN_EVENTS_TO_SCORE}): C-index not scored"
    t, e = time[has], event[has] > 0
    point = float(np.mean([harrell_c(t, e, r[has]) for r in risks]))
    idx = stratified_bootstrap_indices(make_strata(strata[has], e.astype(int)), n_boot, seed=seed)
    dist = np.mean([resampled_statistic(harrell_c, (t, e, r[has]), idx) for r in risks], axis=0)
    low, high = percentile_interval(dist, ci)
    return point, low, high, ""


def _check_refit(refit_latent) -> None:
    if refit_latent:
        raise InvalidInputError(
            "refit_latent=True is not implemented: the structured latent (the target) is fitted once by "
            "cfmd.tl.fit_latent and is the same in every fold. Refitting it per fold would change the target between "
            "folds, so the folds' R^2 could not be pooled."
        )
