"""Per-slice students: the ridge baseline as plain arrays, and the choice of a student per slice.

CFMD fills every slice with its own student. On real cohorts a ridge on standardised RNA can beat a student by a
wide margin, so :func:`cfmd.tl.impute` (``students="auto"``) and :func:`cfmd.tl.benchmark` (method
``"cfmd_auto"``) compare, per slice, CFMD's student with a ridge fitted on the same training patients and keep the
one with the higher validation :math:`R^2`. The ridge is stored as arrays (JSON), so a composite model can be
saved and loaded without pickles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from .._layout import LatentLayout
from .._validation import InvalidInputError, describe_examples

__all__ = ["AUTO_INNER_CV_BELOW", "RIDGE_ALPHAS", "STUDENTS_FILE", "choose_students", "fit_ridge", "predict_ridge"]

#: Penalties searched by the ridge (efficient leave-one-out CV on the training patients).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))
#: ``students="auto"``: with fewer training patients than this, choose by inner CV rather than the validation split.
AUTO_INNER_CV_BELOW = 200
#: File of the ridge students next to a saved CFMD (``{prefix}students.json``).
STUDENTS_FILE = "students.json"
_FORMAT = "cfmd-students"


def ridge_log_expression(mdata, rna_key: str, rna_layer: str | None, rna_scale: str) -> np.ndarray:
    """``(n_obs, n_genes)`` log-expression of every patient, in the units CFMD's students read."""
    from .._expression import log_normalise
    from .._validation import get_matrix
    from ..models._unpaired import align_to_global

    X = align_to_global(mdata, rna_key, get_matrix(mdata.mod[rna_key], rna_layer))
    # computed in float32, the precision of the students' torch input, then widened for the ridge's solver
    return log_normalise(X, rna_scale, dtype=np.float32).astype(np.float64)


def fit_ridge(log_expr: np.ndarray, latent: np.ndarray, layout: LatentLayout, *, slices: Sequence[str] | None = None):
    """One ridge per slice on standardised log-expression; every statistic from the rows given (training patients).

    Parameters
    ----------
    log_expr
        ``(n_train, n_genes)`` log-expression of the training patients.
    latent
        ``(n_train, n_dims)`` their observed latents.
    layout
        The latent's layout.
    slices
        Slices to fit (default: every slice).

    Returns
    -------
    ``{"mean", "scale", "slices": {name: {"alpha", "coef", "intercept"}}}`` (plain arrays).
    """
    from sklearn.linear_model import RidgeCV

    log_expr = np.asarray(log_expr, dtype=np.float64)
    latent = np.asarray(latent, dtype=np.float64)
    if log_expr.shape[0] < 3 or not np.isfinite(latent).all():
        raise InvalidInputError(
            f"The ridge needs >= 3 training patients with an observed latent; got {log_expr.shape[0]} (NaN rows: "
            f"{int((~np.isfinite(latent).all(axis=1)).sum())})."
        )
    mean, scale = log_expr.mean(0), log_expr.std(0) + 1e-3
    features = (log_expr - mean) / scale
    out = {}
    for s in layout:
        if slices is not None and s.name not in slices:
            continue
        target = latent[:, s.start : s.stop]
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(features, target)
        coef = np.atleast_2d(model.coef_).reshape(s.dim, -1)
        out[s.name] = {
            "alpha": float(model.alpha_),
            "coef": coef,
            "intercept": np.atleast_1d(model.intercept_).astype(float),
        }
    return {"mean": mean, "scale": scale, "slices": out}


def predict_ridge(state: Mapping, log_expr: np.ndarray, layout: LatentLayout) -> np.ndarray:
    """``(n, n_dims)`` ridge predictions; slices without a ridge are 0."""
    features = (np.asarray(log_expr, dtype=np.float64) - state["mean"]) / state["scale"]
    out = np.zeros((features.shape[0], layout.n_dims))
    for name, fitted in state["slices"].items():
        s = layout[name]
        out[:, s.start : s.stop] = features @ np.asarray(fitted["coef"]).T + np.asarray(fitted["intercept"])
    return out


def choose_students(
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    layout: LatentLayout,
    *,
    slices: Sequence[str] | None = None,
    default: str = "cfmd",
) -> dict:
    """Per slice, the candidate with the highest :math:`R^2` on held-out rows (ties: ``default``).

    Parameters
    ----------
    truth
        ``(n, n_dims)`` observed latents of the patients that choose (validation, or inner-CV out-of-fold).
    predictions
        ``{candidate: (n, n_dims) prediction}`` on the same patients.
    layout
        The latent's layout.
    slices
        Slices to choose for (default: every non-``zero`` slice); the others keep ``default``.
    default
        The candidate kept on ties and for slices not chosen for.

    Returns
    -------
    ``{"chosen": {slice: candidate}, "scores": {slice: {candidate: R^2}}, "n_patients": n}``.
    """
    from ..metrics import multivariate_r2

    truth = np.asarray(truth, dtype=np.float64)
    names = [s.name for s in layout if s.strategy != "zero"] if slices is None else list(slices)
    chosen, scores = {}, {}
    for s in layout:
        if s.name not in names:
            chosen[s.name] = default
            continue
        per = {
            k: float(multivariate_r2(truth[:, s.start : s.stop], np.asarray(p, dtype=np.float64)[:, s.start : s.stop]))
            for k, p in predictions.items()
        }
        scores[s.name] = per
        best = max(per, key=lambda k: (np.nan_to_num(per[k], nan=-np.inf), k == default))
        chosen[s.name] = best
    return {"chosen": chosen, "scores": scores, "n_patients": int(truth.shape[0])}


def compose(predictions: Mapping[str, np.ndarray], chosen: Mapping[str, str], layout: LatentLayout) -> np.ndarray:
    """The latent with each slice taken from its chosen candidate."""
    out = np.array(predictions[chosen.get(layout.names[0], "cfmd")], dtype=np.float32, copy=True)
    for s in layout:
        out[:, s.start : s.stop] = np.asarray(predictions[chosen.get(s.name, "cfmd")])[:, s.start : s.stop]
    return out


def save_students(folder: str | PathLike, record: Mapping, ridge: Mapping, *, prefix: str | None = None) -> Path:
    """Write the choice and the ridge arrays to ``{prefix}students.json`` in a saved model's folder."""
    path = Path(folder) / f"{prefix or ''}{STUDENTS_FILE}"
    payload = {
        "format": _FORMAT,
        "version": 1,
        "chosen": dict(record["chosen"]),
        "scores": {k: dict(v) for k, v in record["scores"].items()},
        "rule": record.get("rule", ""),
        "genes": [str(g) for g in record["genes"]],
        "ridge": {
            "mean": np.asarray(ridge["mean"]).tolist(),
            "scale": np.asarray(ridge["scale"]).tolist(),
            "slices": {
                k: {
                    "alpha": v["alpha"],
                    "coef": np.asarray(v["coef"]).tolist(),
                    "intercept": np.asarray(v["intercept"]).tolist(),
                }
                for k, v in ridge["slices"].items()
            },
        },
    }
    path.write_text(json.dumps(payload))
    return path


def load_students(folder: str | PathLike, *, prefix: str | None = None) -> tuple[dict, dict] | None:
    """Read ``{prefix}students.json`` (``None`` when the folder has none); no code is run, only JSON parsed."""
    path = Path(folder) / f"{prefix or ''}{STUDENTS_FILE}"
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"{path} is not a readable students file: {err}") from None
    if payload.get("format") != _FORMAT:
        raise InvalidInputError(f"{path} is not a cfmd students file (format {payload.get('format')!r}).")
    ridge = payload["ridge"]
    state = {
        "mean": np.asarray(ridge["mean"], dtype=np.float64),
        "scale": np.asarray(ridge["scale"], dtype=np.float64),
        "slices": {
            k: {"alpha": float(v["alpha"]), "coef": np.asarray(v["coef"]), "intercept": np.asarray(v["intercept"])}
            for k, v in ridge["slices"].items()
        },
    }
    record = {k: payload[k] for k in ("chosen", "scores", "rule", "genes")}
    unknown = sorted(set(record["chosen"].values()) - {"cfmd", "ridge"})
    if unknown:
        raise InvalidInputError(f"{path} chooses unknown student(s) {describe_examples(unknown)}.")
    return record, state
