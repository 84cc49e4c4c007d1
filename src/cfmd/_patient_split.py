"""The one stratified patient splitter behind :func:`cfmd.tl.split_patients` and the models' drawn splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._constants import FITTED_SPLIT_LABELS

__all__ = ["stratified_split_labels"]


def stratified_split_labels(strata: Sequence, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Label each item ``train``, ``validation`` or ``test``, by ``fractions`` within each stratum.

    Strata are visited in sorted order; within one, the items (in the order given) are permuted by one generator
    seeded with ``seed``, and the first ``round(fractions[2] * n)`` go to ``test``, the next
    ``round(fractions[1] * n)`` to ``validation`` and the rest to ``train``. Same strata, fractions and seed give
    the same labels.

    Parameters
    ----------
    strata
        One stratum label per item (e.g. the cancer type); a single value for an unstratified split.
    fractions
        Train, validation and test fractions (checked by the caller).
    seed
        Seed of the permutation.

    Returns
    -------
    ``(n_items,)`` object array of labels from :data:`~cfmd._constants.FITTED_SPLIT_LABELS`.
    """
    strata = np.asarray(strata, dtype=object)
    labels = np.empty(strata.size, dtype=object)
    train, validation, test = FITTED_SPLIT_LABELS
    rng = np.random.default_rng(int(seed))
    for stratum in sorted(set(strata)):
        members = np.flatnonzero(strata == stratum)
        members = members[rng.permutation(members.size)]
        n_val, n_test = int(round(fractions[1] * members.size)), int(round(fractions[2] * members.size))
        labels[members[:n_test]] = test
        labels[members[n_test : n_test + n_val]] = validation
        labels[members[n_test + n_val :]] = train
    return labels
