"""The frozen downstream model of :func:`cfmd.tl.prioritize_assays`.

A survival head or a logistic classifier trained once on the training patients' observed latents, and the macro F1 it is
scored with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import (
    InvalidInputError,
    check_survival,
    describe_examples,
)
from ._downstream_rescue_tables import point_classification

#: The cancer type of every patient when no ``cancer_type_key`` is given.
_NO_CANCER_TYPE = "all"


class _Downstream:
    """A frozen downstream model: ``predict(latent, rows) -> (n,)`` risk or ``(n, K)`` probabilities, ``metric``."""

    def __init__(self, mdata, checked, rows, *, task, label_key, time_key, event_key, cancer_type_key):
        obs = mdata.obs
        latent = checked["latent"]
        self.task = task
        if cancer_type_key is not None:
            self.cancer = obs[cancer_type_key].astype(object).to_numpy()
            self.cancer = np.where(pd.isna(self.cancer), "<missing>", self.cancer).astype(str)
        else:
            self.cancer = np.full(mdata.n_obs, _NO_CANCER_TYPE, dtype=object)
        train, val, test = rows["train"], rows["validation"], rows["test"]
        if task == "survival":
            from ..metrics import SurvivalHead

            time, event = {}, {}
            for part, r in rows.items():
                time[part], event[part] = check_survival(
                    obs[time_key].iloc[r], obs[event_key].iloc[r], time_field=time_key, event_field=event_key,
                    index=obs.index[r],
                )  # fmt: skip
            if not event["train"].any():
                raise InvalidInputError(f"No training patient has an event in mdata.obs[{event_key!r}].")
            if event["test"].sum() < 1:
                raise InvalidInputError(f"No test patient has an event in mdata.obs[{event_key!r}]: no C-index.")
            validation = None
            if val.size and event["validation"].any():
                validation = (latent[val], time["validation"], event["validation"], self.cancer[val])
            self.head = SurvivalHead().fit(
                latent[train], time["train"], event["train"], self.cancer[train],
                validation=validation if validation is not None else "inner_cv",
            )  # fmt: skip
            self.time, self.event = time["test"], event["test"]
            self.metric_name = "c_index"
            self.description = (
                f"SurvivalHead (Cox, alpha {self.head.alpha_:.3g}, {self.head.selection_.get('penalty_by')})"
            )
        else:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            labels = obs[label_key].astype(str).to_numpy()
            self.one_hot = cancer_type_key is not None and cancer_type_key != label_key
            self.categories = sorted(set(self.cancer[train])) if self.one_hot else []
            classes = sorted(set(labels[train]))
            if len(classes) < 2:
                raise InvalidInputError(
                    f"mdata.obs[{label_key!r}] has {len(classes)} class among the training patients; need >= 2."
                )
            unseen = sorted(set(labels[test]) - set(classes))
            if unseen:
                raise InvalidInputError(
                    f"Test patients have class(es) {describe_examples(unseen)} of mdata.obs[{label_key!r}] that no "
                    "training patient has."
                )
            self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
            self.model.fit(self._features(latent[train], train), labels[train])
            self.classes = np.asarray(self.model.classes_)
            self.labels = labels[test]
            self.codes = np.searchsorted(self.classes, self.labels)  # every test class was seen in training
            self.metric_name = "f1_macro"
            self.description = "logistic regression (standardised latent" + (
                " + one-hot cancer type)" if self.one_hot else ")"
            )

    def _features(self, latent, rows):
        if not self.one_hot:
            return latent
        onehot = (self.cancer[rows][:, None] == np.asarray(self.categories, dtype=object)[None]).astype(float)
        return np.hstack([latent, onehot])

    def predict(self, latent, rows):
        if self.task == "survival":
            return self.head.predict_risk(latent, self.cancer[rows])
        return self.model.predict_proba(self._features(latent, rows))

    def metric(self, prediction, positions=None):
        """The metric of predictions for the test patients at ``positions`` (within the test set; None: all)."""
        if self.task == "survival":
            from ..metrics import harrell_c

            time, event = self.time, self.event
            if positions is not None:
                time, event = time[positions], event[positions]
            return float(harrell_c(time, event, prediction))
        codes = self.codes if positions is None else self.codes[positions]
        if codes.size == 0:
            return np.nan
        return macro_f1(codes, np.argmax(prediction, axis=1), len(self.classes))


def macro_f1(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro F1 of integer class codes: :func:`sklearn.metrics.f1_score` (``average="macro"``, ``zero_division=0``).

    The same value (a test checks it against scikit-learn) from one confusion count
    (``point_classification`` of the downstream-rescue tables),
    without scikit-learn's input validation, which dominates when the acquisition experiment scores thousands of
    mixes. Classes absent from both ``true`` and ``predicted`` are left out, as scikit-learn does.
    """
    return point_classification(true, predicted, n_classes)["f1"]
