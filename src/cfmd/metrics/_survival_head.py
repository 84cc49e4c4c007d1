"""The frozen survival head: an elastic-net Cox model on the latent plus one-hot cancer type, trained once.

The paper (Section 3.5) measures the clinical utility of an imputed latent by passing it through a survival head
that was trained once on the training split's observed latents (with cancer-type conditioning) and then frozen. The
paper's head is a "Hypernet" we do not have; :class:`SurvivalHead` is an elastic-net Cox model (scikit-survival's
:class:`~sksurv.linear_model.CoxnetSurvivalAnalysis`) playing the same role. Its C-index is scored with
:mod:`cfmd.metrics._concordance`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import (
    InvalidInputError,
    check_latent_matrix,
    check_positive_int,
    check_positive_number,
    describe_examples,
)
from ._bootstrap import _check_labels
from ._concordance import _check_time_event, _has_comparable_pair, harrell_c

#: Fewer validation events than this: :class:`SurvivalHead` chooses its penalty by inner CV on the training split.
MIN_VALIDATION_EVENTS = 10

__all__ = ["MIN_VALIDATION_EVENTS", "SurvivalHead"]


def _check_latent_matrix(latent, field: str, n_cols: int | None = None) -> np.ndarray:
    def check_width(width: int) -> None:
        if n_cols is not None and width != n_cols:
            raise InvalidInputError(
                f"{field} has {width} dimensions but the survival head was trained on {n_cols}-d latents."
            )

    return check_latent_matrix(latent, field, check_width=check_width, missing_hint="pass only patients with a latent.")


def _cancer_labels(cancer_type, n: int, field: str) -> np.ndarray:
    labels = _check_labels(cancer_type, field)
    if len(labels) != n:
        raise InvalidInputError(f"`{field}` has {len(labels)} entries but the latent has {n} rows: one per patient.")
    return np.array([str(x) for x in labels], dtype=object)


class SurvivalHead:
    r"""A Cox survival model on the latent plus one-hot cancer type, trained once and then frozen.

    The paper's protocol (Section 3.5): the head is trained on the training split's *observed* latents with
    cancer-type conditioning, then frozen; every method's imputed test latents go through the same head, so
    differences in C-index measure the latents, not the head. Here the head is an elastic-net penalised Cox
    proportional-hazards model (:class:`~sksurv.linear_model.CoxnetSurvivalAnalysis`) on the features
    ``[latent, one-hot(cancer type)]``, each standardised with the training split's mean and standard deviation
    (stored; constant columns are left unscaled). The risk score is the linear predictor
    :math:`\eta = \beta^\top (x - \mu) / \sigma` (higher = shorter survival).

    The penalty :math:`\alpha` (in Coxnet's convention: mean negative partial log-likelihood plus
    :math:`\alpha(\rho \lVert\beta\rVert_1 + \tfrac{1-\rho}{2} \lVert\beta\rVert_2^2)`, with :math:`\rho` =
    ``l1_ratio``) is either fixed (``alpha=``) or, by default, chosen on a validation split: the regularisation
    path of ``n_alphas`` values from the smallest penalty that zeroes every coefficient down to ``alpha_min_ratio``
    times it is fitted on the training split, and the :math:`\alpha` with the highest validation Harrell's C is
    kept (the largest such :math:`\alpha` on ties), the counterpart of the paper's early stopping on validation
    loss. The fit is deterministic (coordinate descent, no random state).

    Small validation splits (real cohorts): with fewer than :data:`MIN_VALIDATION_EVENTS` (10) validation events,
    or ``validation="inner_cv"``, the penalty is chosen by ``inner_cv``-fold cross-validation on the training split
    instead (folds dealt within event strata; the path's penalties fitted on the other folds, scored by Harrell's C
    on the held-out fold, averaged; largest penalty on ties), with a ``UserWarning`` naming the cause. A head whose
    chosen penalty zeroes every latent coefficient warns too (``UserWarning``): its risk is the cancer-type term
    only, so every latent scores the same C-index (0.5 with one cancer type). :attr:`selection_` records how the
    penalty was chosen (``penalty_by``: ``"fixed"``, ``"validation"`` or ``"inner_cv"``; ``n_validation_events``;
    ``n_nonzero_latent``).

    Once fitted, :meth:`predict_risk` only uses the stored plain arrays (:meth:`to_dict`), so predicting never
    changes the head, and a head saved into ``.uns`` and restored with :meth:`from_dict` predicts identically.

    Parameters
    ----------
    alpha
        Fixed penalty strength; ``None`` chooses it on the validation split passed to :meth:`fit`.
    l1_ratio
        Elastic-net mixing :math:`\rho` in ``(0, 1]`` (1 = lasso; small = close to ridge).
    n_alphas
        Length of the regularisation path searched when ``alpha`` is ``None``.
    alpha_min_ratio
        Smallest penalty of the path, as a fraction of the largest.
    max_iter
        Iteration limit of the coordinate descent.
    tol
        Convergence tolerance of the coordinate descent.
    inner_cv
        Folds of the inner cross-validation that chooses the penalty when the validation split is too small.
    min_validation_events
        Fewest validation events for the validation split to choose the penalty (default 10).

    Examples
    --------
    >>> head = SurvivalHead().fit(
    ...     z_train, time_train, event_train, cancer_train, validation=(z_val, t_val, e_val, c_val)
    ... )  # doctest: +SKIP
    >>> risk = head.predict_risk(z_test_imputed, cancer_test)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        alpha: float | None = None,
        l1_ratio: float = 0.5,
        n_alphas: int = 50,
        alpha_min_ratio: float = 0.01,
        max_iter: int = 100_000,
        tol: float = 1e-7,
        inner_cv: int = 5,
        min_validation_events: int = MIN_VALIDATION_EVENTS,
    ):
        alpha = check_positive_number(alpha, "alpha", allow_none=True)
        try:
            l1_ratio = float(l1_ratio)
            alpha_min_ratio = float(alpha_min_ratio)
            tol = float(tol)
        except (TypeError, ValueError):
            raise InvalidInputError("`l1_ratio`, `alpha_min_ratio` and `tol` must be numbers.") from None
        if not 0 < l1_ratio <= 1:
            raise InvalidInputError(f"`l1_ratio` must be in (0, 1]; got {l1_ratio!r}.")
        if not 0 < alpha_min_ratio < 1:
            raise InvalidInputError(f"`alpha_min_ratio` must be in (0, 1); got {alpha_min_ratio!r}.")
        if not tol > 0:
            raise InvalidInputError(f"`tol` must be positive; got {tol!r}.")
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.n_alphas = check_positive_int(n_alphas, "n_alphas", minimum=2)
        self.alpha_min_ratio = alpha_min_ratio
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = tol
        self.inner_cv = check_positive_int(inner_cv, "inner_cv", minimum=2)
        self.min_validation_events = check_positive_int(min_validation_events, "min_validation_events")
        self._state: dict[str, Any] | None = None
        self.selection_: dict[str, Any] = {}

    # ------------------------------------------------------------------ parameters and state
    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters."""
        return {
            "alpha": self.alpha,
            "l1_ratio": self.l1_ratio,
            "n_alphas": self.n_alphas,
            "alpha_min_ratio": self.alpha_min_ratio,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "inner_cv": self.inner_cv,
            "min_validation_events": self.min_validation_events,
        }

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_dict`) has set the head's coefficients."""
        return self._state is not None

    @property
    def cancer_types(self) -> list[str]:
        """The cancer types seen in training (the one-hot columns, in order)."""
        return list(self._fitted_state()["cancer_types"])

    @property
    def coef(self) -> np.ndarray:
        """Coefficients of the standardised features: latent dimensions, then one column per cancer type."""
        return self._fitted_state()["coef"].copy()

    @property
    def alpha_(self) -> float:
        """The penalty the head was fitted with (fixed or chosen on the validation split)."""
        return float(self._fitted_state()["alpha"])

    def _fitted_state(self) -> dict[str, Any]:
        if self._state is None:
            raise InvalidInputError("The SurvivalHead is not fitted: call `fit` (or `SurvivalHead.from_dict`) first.")
        return self._state

    def to_dict(self) -> dict[str, Any]:
        """The fitted head as plain arrays and numbers (storable in ``.uns``, writable to ``.h5ad``/``.h5mu``/NPZ).

        Returns
        -------
        ``coef`` (coefficients of the standardised features), ``feature_mean``, ``feature_scale`` (training
        standardisation), ``cancer_types`` (one-hot column labels), ``n_latent`` (latent width), ``alpha`` (the
        penalty used), ``alphas`` and ``validation_c_index`` (the searched path and its validation C; empty for a
        fixed ``alpha``) and ``params`` (the constructor parameters; ``alpha`` stored as NaN when it was None).
        """
        state = self._fitted_state()
        params = {k: (np.nan if v is None else v) for k, v in self.get_params().items()}
        return {
            "coef": state["coef"].copy(),
            "feature_mean": state["feature_mean"].copy(),
            "feature_scale": state["feature_scale"].copy(),
            "cancer_types": np.array(state["cancer_types"], dtype=object),
            "n_latent": int(state["n_latent"]),
            "alpha": float(state["alpha"]),
            "alphas": state["alphas"].copy(),
            "validation_c_index": state["validation_c_index"].copy(),
            "params": params,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> SurvivalHead:
        """Restore a fitted head from :meth:`to_dict` (also what an ``.h5ad``/``.h5mu`` round trip gives back).

        Parameters
        ----------
        state
            The dictionary written by :meth:`to_dict`.

        Returns
        -------
        The frozen head.
        """
        required = ("coef", "feature_mean", "feature_scale", "cancer_types", "n_latent", "alpha")
        missing = [k for k in required if k not in state]
        if missing:
            raise InvalidInputError(f"Stored SurvivalHead lacks the field(s) {describe_examples(missing)}.")
        params = dict(state.get("params", {}) or {})
        alpha = params.get("alpha", np.nan)
        params["alpha"] = None if alpha is None or not np.isfinite(float(alpha)) else float(alpha)
        for key in ("n_alphas", "max_iter", "inner_cv", "min_validation_events"):
            if key in params:
                params[key] = int(params[key])
        head = cls(**params)
        coef = np.asarray(state["coef"], dtype=float).ravel()
        mean = np.asarray(state["feature_mean"], dtype=float).ravel()
        scale = np.asarray(state["feature_scale"], dtype=float).ravel()
        cancer_types = [
            x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(state["cancer_types"]).ravel()
        ]
        n_latent = int(np.asarray(state["n_latent"]))
        if not len(coef) == len(mean) == len(scale) == n_latent + len(cancer_types):
            raise InvalidInputError(
                "Stored SurvivalHead is inconsistent: `coef`, `feature_mean` and `feature_scale` must each have "
                f"n_latent + n_cancer_types = {n_latent + len(cancer_types)} entries; got {len(coef)}, {len(mean)}, "
                f"{len(scale)}."
            )
        head._state = {
            "coef": coef,
            "feature_mean": mean,
            "feature_scale": scale,
            "cancer_types": cancer_types,
            "n_latent": n_latent,
            "alpha": float(np.asarray(state["alpha"])),
            "alphas": np.asarray(state.get("alphas", np.empty(0)), dtype=float).ravel(),
            "validation_c_index": np.asarray(state.get("validation_c_index", np.empty(0)), dtype=float).ravel(),
        }
        return head

    # ------------------------------------------------------------------ fit / predict
    def _design(self, latent: np.ndarray, cancer: np.ndarray, cancer_types: Sequence[str], field: str) -> np.ndarray:
        known = {c: k for k, c in enumerate(cancer_types)}
        unseen = sorted({c for c in cancer if c not in known})
        if unseen:
            raise InvalidInputError(
                f"`{field}` has cancer type(s) {describe_examples(unseen)} that the survival head never saw in "
                f"training (trained on {describe_examples(list(cancer_types), limit=40)}); the head has no "
                "conditioning for them. Evaluate only cancer types present in the training split."
            )
        onehot = np.zeros((len(cancer), len(cancer_types)))
        onehot[np.arange(len(cancer)), [known[c] for c in cancer]] = 1.0
        return np.hstack([latent, onehot])

    def _check_split(self, latent, time, event, cancer_type, name: str, n_cols: int | None = None):
        latent = _check_latent_matrix(latent, f"{name} latent", n_cols)
        time_arr, event_arr = np.asarray(time), np.asarray(event)
        if not len(time_arr) == len(event_arr) == latent.shape[0]:
            raise InvalidInputError(
                f"The {name} latent, time and event must have one entry per patient; got {latent.shape[0]}, "
                f"{len(time_arr)} and {len(event_arr)}."
            )
        what = "a Cox model cannot be fitted" if name == "training" else "the validation C-index"
        time_arr, event_arr = _check_time_event(time_arr, event_arr, what=what)
        cancer = _cancer_labels(cancer_type, latent.shape[0], f"{name} cancer_type")
        return latent, time_arr, event_arr, cancer

    def fit(self, latent, time, event, cancer_type, *, validation: Sequence | None = None) -> SurvivalHead:
        """Train the head once on the training split's observed latents, then freeze it.

        Parameters
        ----------
        latent
            ``(n_train, n_dims)`` observed latents of the training patients (no NaN rows).
        time
            ``(n_train,)`` follow-up times.
        event
            ``(n_train,)`` event indicators; at least one event.
        cancer_type
            ``(n_train,)`` cancer type labels (the one-hot conditioning).
        validation
            ``(latent, time, event, cancer_type)`` of the validation split, used only to choose the penalty when
            ``alpha`` is None (required then; ignored otherwise). Its cancer types must occur in training.

        Returns
        -------
        The fitted head (``self``). Refitting an already fitted head is an error: a head is trained once.
        """
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        if self._state is not None:
            raise InvalidInputError(
                "This SurvivalHead is already fitted and frozen; create a new SurvivalHead to train another."
            )
        latent, time, event, cancer = self._check_split(latent, time, event, cancer_type, "training")
        penalty_by = "fixed" if self.alpha is not None else "validation"
        n_val_events = 0
        if self.alpha is None and isinstance(validation, str):
            if validation != "inner_cv":
                raise InvalidInputError(
                    f"`validation` must be a tuple (latent, time, event, cancer_type) or 'inner_cv'; got {validation!r}."
                )
            penalty_by = "inner_cv"
            warnings.warn(
                f"SurvivalHead: no validation split given (validation='inner_cv'): the penalty is chosen by "
                f"{self.inner_cv}-fold inner CV on the {len(time)} training patients.",
                UserWarning,
                stacklevel=2,
            )
        elif self.alpha is None:
            if validation is None:
                raise InvalidInputError(
                    "SurvivalHead(alpha=None) chooses the penalty on a validation split: pass "
                    "`validation=(latent, time, event, cancer_type)`, or fix `alpha`."
                )
            if not isinstance(validation, Sequence) or len(validation) != 4:
                raise InvalidInputError("`validation` must be a tuple (latent, time, event, cancer_type).")
            val = self._check_split(*validation, "validation", n_cols=latent.shape[1])
            if not _has_comparable_pair(val[1], val[2]):
                raise InvalidInputError(
                    "The validation split has no comparable pair of patients (no event before another patient's "
                    "follow-up time): its C-index cannot choose the penalty."
                )
            n_val_events = int(val[2].sum())
            if n_val_events < self.min_validation_events:
                penalty_by = "inner_cv"
                warnings.warn(
                    f"SurvivalHead: the validation split has {n_val_events} event(s) (< min_validation_events="
                    f"{self.min_validation_events}), too few for its C-index to choose the penalty; choosing it by "
                    f"{self.inner_cv}-fold inner CV on the {len(time)} training patients instead.",
                    UserWarning,
                    stacklevel=2,
                )
        cancer_types = sorted(set(cancer))
        if penalty_by == "validation":  # fail before any work on validation cancer types the training split lacks
            val_design = self._design(val[0], val[3], cancer_types, "validation cancer_type")
        design = self._design(latent, cancer, cancer_types, "cancer_type")
        mean = design.mean(axis=0)
        scale = design.std(axis=0)
        scale[scale == 0] = 1.0
        z = (design - mean) / scale

        y = Surv.from_arrays(event=event, time=time)
        model = CoxnetSurvivalAnalysis(
            l1_ratio=self.l1_ratio,
            alphas=None if self.alpha is None else [self.alpha],
            n_alphas=self.n_alphas,
            alpha_min_ratio=self.alpha_min_ratio,
            max_iter=self.max_iter,
            tol=self.tol,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(z, y)
        for w in caught:
            warnings.warn(f"SurvivalHead (Cox model): {w.message}", w.category, stacklevel=2)
        coefs = np.asarray(model.coef_, dtype=float)  # (n_features, n_alphas)
        alphas = np.asarray(model.alphas_, dtype=float)
        if penalty_by == "inner_cv":
            val_c = self._inner_cv_c(z, time, event, alphas)
            best = int(np.nanargmax(val_c)) if np.isfinite(val_c).any() else 0
            chosen, coef = alphas[best], coefs[:, best]
            searched, val_c_out = alphas, val_c
        elif self.alpha is None:
            _, val_time, val_event, _ = val
            val_risk = ((val_design - mean) / scale) @ coefs
            val_c = np.array(
                [harrell_c(val_time, val_event, val_risk[:, k]) for k in range(coefs.shape[1])], dtype=float
            )
            best = int(np.nanargmax(val_c))  # alphas decrease along the path: the first maximum is the largest alpha
            chosen = alphas[best]
            coef = coefs[:, best]
            searched, val_c_out = alphas, val_c
        else:
            chosen, coef = float(self.alpha), coefs[:, 0]
            searched, val_c_out = np.empty(0), np.empty(0)
        self._state = {
            "coef": coef.copy(),
            "feature_mean": mean,
            "feature_scale": scale,
            "cancer_types": cancer_types,
            "n_latent": latent.shape[1],
            "alpha": float(chosen),
            "alphas": searched.copy(),
            "validation_c_index": val_c_out,
        }
        n_nonzero = int(np.count_nonzero(coef[: latent.shape[1]]))
        self.selection_ = {
            "penalty_by": penalty_by,
            "n_validation_events": n_val_events,
            "n_nonzero_latent": n_nonzero,
            "alpha": float(chosen),
        }
        if n_nonzero == 0:
            warnings.warn(
                f"SurvivalHead selected no latent feature: all {latent.shape[1]} latent coefficients are zero at the "
                f"chosen penalty alpha={float(chosen):.4g} ({penalty_by}). Its risk is the cancer-type term only, so "
                "every latent gets the same C-index (0.500 with one cancer type): survival utility is not measured. "
                "Use more patients / events, a fixed smaller `alpha`, or a smaller `l1_ratio`.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _inner_cv_c(self, z: np.ndarray, time: np.ndarray, event: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Mean held-out Harrell's C of every penalty of the path over ``inner_cv`` event-stratified folds."""
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        k = int(min(self.inner_cv, max(2, event.sum())))
        fold = np.empty(len(time), dtype=int)
        offset = 0
        for label in (False, True):  # deal events and censored patients round-robin (deterministic)
            members = np.flatnonzero(event == label)
            members = members[np.argsort(time[members], kind="stable")]
            fold[members] = (offset + np.arange(members.size)) % k
            offset = (offset + members.size) % k
        scores = np.full((k, len(alphas)), np.nan)
        for f in range(k):
            tr, te = fold != f, fold == f
            if not event[tr].any() or not event[te].any():
                continue
            model = CoxnetSurvivalAnalysis(
                l1_ratio=self.l1_ratio, alphas=alphas, max_iter=self.max_iter, tol=self.tol
            )  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    model.fit(z[tr], Surv.from_arrays(event=event[tr], time=time[tr]))
                except ArithmeticError:
                    continue
            risk = z[te] @ np.asarray(model.coef_, dtype=float)
            for j in range(min(risk.shape[1], len(alphas))):
                scores[f, j] = harrell_c(time[te], event[te], risk[:, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(scores, axis=0)

    def predict_risk(self, latent, cancer_type) -> np.ndarray:
        """Risk scores of the frozen head (the Cox linear predictor; higher = shorter survival).

        Parameters
        ----------
        latent
            ``(n_patients, n_dims)`` latents (observed or imputed) of the training width; no NaN rows.
        cancer_type
            ``(n_patients,)`` cancer types; each must have been seen in training.

        Returns
        -------
        ``(n_patients,)`` risk scores.
        """
        state = self._fitted_state()
        latent = _check_latent_matrix(latent, "latent", state["n_latent"])
        cancer = _cancer_labels(cancer_type, latent.shape[0], "cancer_type")
        design = self._design(latent, cancer, state["cancer_types"], "cancer_type")
        return ((design - state["feature_mean"]) / state["feature_scale"]) @ state["coef"]

    def __repr__(self) -> str:
        if self._state is None:
            return f"SurvivalHead({self.get_params()}, not fitted)"
        s = self._state
        n_nonzero = int(np.count_nonzero(s["coef"]))
        return (
            f"SurvivalHead(frozen; {s['n_latent']}-d latent + {len(s['cancer_types'])} cancer types, "
            f"alpha={s['alpha']:.4g}, l1_ratio={self.l1_ratio}, {n_nonzero} non-zero coefficients)"
        )
