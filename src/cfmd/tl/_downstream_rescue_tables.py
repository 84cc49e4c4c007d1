"""Scores and tables of :func:`cfmd.tl.downstream_rescue`.

Classification scores from confusion matrices, the result rows, per-cancer-type scores, the paired comparisons
and Table 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import (
    MIN_EVENTS_TO_SCORE,
    bonferroni,
    bootstrap_p_value,
    harrell_c,
    percentile_interval,
)
from ._downstream_patterns import pattern_label


def _classification_counts(true: np.ndarray, pred: np.ndarray, n_classes: int, indices: np.ndarray) -> np.ndarray:
    """``(n_boot, K, K)`` confusion matrices (rows: true class, columns: predicted) of every resample."""
    n_boot = indices.shape[0]
    cells = (np.arange(n_boot)[:, None] * n_classes + true[indices]) * n_classes + pred[indices]
    counts = np.bincount(cells.ravel(), minlength=n_boot * n_classes * n_classes)
    return counts.reshape(n_boot, n_classes, n_classes)


def _scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Macro F1 and balanced accuracy of confusion matrices, as scikit-learn defines them.

    Macro F1 averages ``2 TP / (support + predicted)`` over the classes that occur among the true or the predicted
    labels (:func:`sklearn.metrics.f1_score`, ``average="macro"``); balanced accuracy averages the recall over the
    classes that occur among the true labels (:func:`sklearn.metrics.balanced_accuracy_score`). The test suite checks
    both against scikit-learn on resamples.
    """
    tp = np.diagonal(counts, axis1=1, axis2=2).astype(float)
    support, predicted = counts.sum(axis=2).astype(float), counts.sum(axis=1).astype(float)
    present = (support + predicted) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / (support + predicted), 0.0).sum(1) / present.sum(1)
        recall = np.where(support > 0, tp / support, 0.0).sum(1) / (support > 0).sum(1)
    return {"f1": f1, "balanced_accuracy": recall}


def point_classification(true: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Macro F1 and balanced accuracy of one set of predictions (the formulas of :func:`_scores_from_counts`)."""
    scores = _scores_from_counts(_classification_counts(true, pred, n_classes, np.arange(len(true))[None, :]))
    return {metric: float(values[0]) for metric, values in scores.items()}


class _ScoreCache:
    """Bootstrap distributions computed once per distinct prediction (conditions often predict identically)."""

    def __init__(self, compute):
        self.compute, self.store = compute, {}

    def __call__(self, values: np.ndarray):
        key = np.ascontiguousarray(values).tobytes()
        if key not in self.store:
            self.store[key] = self.compute(values)
        return self.store[key]


def _row(task, model, metric, pattern, condition, value, low, high, n_patients, n_events) -> dict:
    imputer = condition.split(":", 1)[1] if condition.startswith("imputed:") else ""
    return {
        "task": task, "model": model, "metric": metric, "pattern": pattern_label(pattern), "condition": condition,
        "imputer": imputer, "value": float(value), "value_low": float(low), "value_high": float(high),
        "n_patients": int(n_patients), "n_events": float(n_events),
    }  # fmt: skip


def _per_cancer_classification(kind, pattern, condition, true, pred, cancer, classes, is_cancer) -> list[dict]:
    out = []
    everyone = _classification_counts(true, pred, len(classes), np.arange(len(true))[None, :])[0]
    for cancer_type in sorted(set(cancer)):
        rows = cancer == cancer_type
        if is_cancer:  # one true class per cancer type: that class's F1 and recall over all test patients
            code = classes.index(cancer_type)
            tp, support, predicted = everyone[code, code], everyone[code].sum(), everyone[:, code].sum()
            values = {
                "f1": 2 * tp / (support + predicted) if support + predicted else np.nan,
                "balanced_accuracy": tp / support if support else np.nan,
            }
        else:
            values = point_classification(true[rows], pred[rows], len(classes))
        for metric, value in values.items():
            out.append({
                "task": "classification", "model": kind, "metric": metric, "pattern": pattern_label(pattern),
                "condition": condition, "cancer_type": cancer_type, "n_patients": int(rows.sum()), "n_events": np.nan,
                "value": float(value),
            })  # fmt: skip
    return out


def _per_cancer_survival(kind, pattern, condition, time, event, risk, cancer) -> list[dict]:
    out = []
    for cancer_type in sorted(set(cancer)):
        rows = cancer == cancer_type
        n_events = int(event[rows].sum())
        value = harrell_c(time[rows], event[rows], risk[rows]) if n_events >= MIN_EVENTS_TO_SCORE else np.nan
        out.append({
            "task": "survival", "model": kind, "metric": "c_index", "pattern": pattern_label(pattern),
            "condition": condition, "cancer_type": cancer_type, "n_patients": int(rows.sum()), "n_events": n_events,
            "value": float(value),
        })  # fmt: skip
    return out


def _comparisons(results: pd.DataFrame, distributions, imputers, ci) -> pd.DataFrame:
    """Paired bootstrap differences: ablation - full, and imputed - ablation for each imputer."""
    rows = []
    keys = results[["task", "model", "metric", "pattern"]].drop_duplicates().itertuples(index=False)
    point = results.set_index(["task", "model", "metric", "pattern", "condition"])["value"]
    for task, model, metric, pattern in keys:
        pairs = [("drop_from_ablation", "ablation", "full")]
        pairs += [(f"gain_{name}", f"imputed:{name}", "ablation") for name in imputers]
        for comparison, a, b in pairs:
            diff = distributions[(task, model, metric, pattern, a)] - distributions[(task, model, metric, pattern, b)]
            low, high = percentile_interval(diff, ci)
            rows.append({
                "task": task, "model": model, "metric": metric, "pattern": pattern, "comparison": comparison,
                "delta": float(point[(task, model, metric, pattern, a)] - point[(task, model, metric, pattern, b)]),
                "delta_low": low, "delta_high": high, "p_value": bootstrap_p_value(diff),
            })  # fmt: skip
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_adjusted"] = np.nan
    for _, group in out.groupby(["task", "model", "metric"], sort=False):
        valid = group["p_value"].dropna()
        if not valid.empty:
            out.loc[valid.index, "p_adjusted"] = bonferroni(valid).to_numpy()
    return out


def _table2(results: pd.DataFrame, comparisons: pd.DataFrame, imputers) -> pd.DataFrame:
    """Seed 004's Table 2: one row per task, model, metric and pattern; values and paired differences with CIs."""
    rows = []
    index = ["task", "model", "metric", "pattern"]
    by_key = results.set_index(index + ["condition"])
    deltas = comparisons.set_index(index + ["comparison"]) if not comparisons.empty else None
    for key in results[index].drop_duplicates().itertuples(index=False):
        row = dict(zip(index, key))
        conditions = ["full", "ablation", "cancer_type_only"] + [f"imputed:{n}" for n in imputers]
        for condition in conditions:
            column = condition.replace("imputed:", "imputed_")
            entry = by_key.loc[(*key, condition)]
            row.update({column: entry["value"], f"{column}_low": entry["value_low"],
                        f"{column}_high": entry["value_high"]})  # fmt: skip
        for comparison in ["drop_from_ablation"] + [f"gain_{n}" for n in imputers]:
            entry = deltas.loc[(*key, comparison)]
            row.update({comparison: entry["delta"], f"{comparison}_low": entry["delta_low"],
                        f"{comparison}_high": entry["delta_high"]})  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)
