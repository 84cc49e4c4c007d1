"""The frozen downstream predictors of :func:`cfmd.tl.downstream_rescue`.

A classifier and a survival model, trained once on the complete training patients.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..metrics import (
    SurvivalHead,
)


def _one_hot(cancer: np.ndarray, types: Sequence[str]) -> np.ndarray:
    known = {c: k for k, c in enumerate(types)}
    out = np.zeros((len(cancer), len(types)))
    out[np.arange(len(cancer)), [known[c] for c in cancer]] = 1.0
    return out


class _Classifier:
    """A frozen classifier on ``[latent, one-hot cancer type]`` (or on cancer type alone)."""

    def __init__(self, kind: str, *, n_estimators: int, seed: int, cancer_types: Sequence[str], with_latent: bool,
                 with_cancer: bool):  # fmt: skip
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if kind == "random_forest":
            self.model = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
        else:
            self.model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        self.cancer_types, self.with_latent, self.with_cancer = list(cancer_types), with_latent, with_cancer

    def _design(self, latent, cancer):
        parts = [latent] if self.with_latent else []
        if self.with_cancer:
            parts.append(_one_hot(cancer, self.cancer_types))
        return np.hstack(parts)

    def fit(self, latent, cancer, label):
        self.model.fit(self._design(latent, cancer), label)
        return self

    def predict(self, latent, cancer):
        return self.model.predict(self._design(latent, cancer))


class _SurvivalModel:
    """A frozen survival model: :class:`~cfmd.metrics.SurvivalHead` or a random survival forest.

    The forest's risk is its predicted cumulative hazard summed over the training event times (higher = shorter
    survival).
    """

    def __init__(self, kind: str, *, n_estimators: int, seed: int, cancer_types: Sequence[str], with_latent: bool):
        self.kind, self.n_estimators, self.seed = kind, n_estimators, seed
        self.cancer_types, self.with_latent = list(cancer_types), with_latent

    def _width(self, latent):
        return latent if self.with_latent else latent[:, :0]

    def fit(self, latent, time, event, cancer, validation):
        if self.kind == "cox_head":
            val_latent, val_time, val_event, val_cancer = validation
            with warnings.catch_warnings():
                if not self.with_latent:  # a cancer-type-only head has no latent to select, by design
                    warnings.filterwarnings("ignore", message="SurvivalHead selected no latent feature")
                    warnings.filterwarnings("ignore", message="SurvivalHead \\(Cox model\\): all coefficients")
                self.model = SurvivalHead().fit(
                    self._width(latent), time, event, cancer,
                    validation=(self._width(val_latent), val_time, val_event, val_cancer),
                )  # fmt: skip
            return self
        from sksurv.ensemble import RandomSurvivalForest
        from sksurv.util import Surv

        self.model = RandomSurvivalForest(
            n_estimators=self.n_estimators, min_samples_leaf=3, max_features="sqrt", random_state=self.seed, n_jobs=1
        )
        self.model.fit(self._design(latent, cancer), Surv.from_arrays(event=event, time=time))
        return self

    def _design(self, latent, cancer):
        return np.hstack([self._width(latent), _one_hot(cancer, self.cancer_types)])

    def predict_risk(self, latent, cancer):
        if self.kind == "cox_head":
            return self.model.predict_risk(self._width(latent), cancer)
        return self.model.predict(self._design(latent, cancer))
