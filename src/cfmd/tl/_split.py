"""``cfmd.tl.split_patients``: one patient-disjoint train / validation / test split that every step honours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._constants import DEFAULT_RNA_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY, DEFAULT_STRATIFY_KEY, SPLIT_LABELS
from .._docs import DOC_COPY, DOC_RNA_KEY, doc_params
from .._logging import logger
from .._patient_split import stratified_split_labels
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import (
    InvalidInputError,
    check_modality,
    check_not_view,
    check_obs_columns,
    check_unique,
    describe_examples,
)

if TYPE_CHECKING:
    from mudata import MuData

#: Stratum of patients whose ``stratify`` value is missing (NaN): they are split as one more stratum.
MISSING_STRATUM = "<missing>"


@doc_params(rna_key=DOC_RNA_KEY, copy=DOC_COPY)
def split_patients(
    mdata: MuData,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    stratify: str | None = DEFAULT_STRATIFY_KEY,
    require_modalities: Sequence[str] | None = None,
    rna_key: str = DEFAULT_RNA_KEY,
    seed: int = DEFAULT_SEED,
    key_added: str = DEFAULT_SPLIT_KEY,
    copy: bool = False,
) -> MuData | None:
    """Assign every patient to ``train``, ``validation``, ``test`` or ``rna_only``, patient-disjointly.

    Patients with every required modality (those whose structured latent can be observed) are split by
    ``fractions`` within each stratum (cancer type by default, so every split keeps the case mix); patients
    lacking a required modality are ``rna_only`` (they are what imputation is for, never evaluation targets).
    :func:`~cfmd.tl.fit_latent`, :func:`~cfmd.tl.impute`, :func:`~cfmd.tl.evaluate` and
    :func:`~cfmd.tl.benchmark` read this column when it exists, so test patients never reach a fit and
    normalisation statistics come from training patients only.

    Parameters
    ----------
    mdata
        MuData with RNA for every patient.
    fractions
        Train, validation and test fractions (summing to 1).
    stratify
        ``mdata.obs`` column to stratify by (``None``: no stratification). Patients whose value is missing (NaN,
        e.g. a cancer type the survival table lacks) form one more stratum, :data:`MISSING_STRATUM` (logged).
        Survival plays no part in the split: patients without survival (``read_xena(...,
        on_missing_survival="keep_nan")``) are split like the others; :func:`~cfmd.tl.evaluate` leaves them out
        of the survival head and the C-index.
    require_modalities
        Modalities a patient must have to be split (default: every modality except ``rna_key``).
    {rna_key}
    seed
        Random seed.
    key_added
        ``mdata.obs`` column to write.
    {copy}

    Returns
    -------
    ``None`` (or the copy when ``copy=True``). Fields written:

    ``.obs[key_added]``
        Categorical with categories ``train``, ``validation``, ``test``, ``rna_only``.
    ``.uns[key_added]``
        Parameters: fractions, stratify, required modalities, seed, ``n_missing_stratum`` (patients split in the
        missing-value stratum), counts per label.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=200, n_genes=300)
    >>> cfmd.tl.split_patients(mdata, seed=0)
    >>> int((mdata.obs["cfmd_split"] == "rna_only").sum())
    40
    """
    if not copy:
        check_not_view(mdata, "mdata")
    with unchanged_on_error(mdata):
        fractions = np.asarray(fractions, dtype=float)
        if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
            raise InvalidInputError(
                f"`fractions` must be three non-negative numbers summing to 1; got {list(fractions)}."
            )
        if fractions[0] == 0:
            raise InvalidInputError("`fractions` must give the training split a positive share.")
        check_modality(mdata, rna_key)
        check_unique(mdata.obs_names, "mdata.obs_names")
        if require_modalities is None:
            require_modalities = [m for m in mdata.mod if m != rna_key]
        for mod in require_modalities:
            check_modality(mdata, mod)
        n_missing_stratum = 0
        if stratify is not None:
            check_obs_columns(mdata.obs, [stratify])
            n_missing_stratum = int(mdata.obs[stratify].isna().sum())
        if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
            raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")

        complete = np.ones(mdata.n_obs, dtype=bool)
        for mod in require_modalities:
            complete &= mdata.obs_names.isin(mdata.mod[mod].obs_names)
        if complete.sum() < 3:
            raise InvalidInputError(
                f"Only {int(complete.sum())} patient(s) have every required modality ({describe_examples(require_modalities)}); "
                "at least 3 are needed for a train / validation / test split."
            )
        labels = np.full(mdata.n_obs, "rna_only", dtype=object)
        if stratify is not None:
            column = mdata.obs[stratify]
            strata = np.where(column.isna().to_numpy(), MISSING_STRATUM, column.astype(str).to_numpy()).astype(object)
            if n_missing_stratum:
                logger.info(
                    "split_patients: %d patient(s) with a missing mdata.obs[%r] split as their own stratum %r.",
                    n_missing_stratum,
                    stratify,
                    MISSING_STRATUM,
                )
        else:
            strata = np.zeros(mdata.n_obs, dtype=object)
        labels[complete] = stratified_split_labels(strata[complete], fractions, seed)

        target = copy_mudata(mdata) if copy else mdata
        target.obs[key_added] = pd.Categorical(labels, categories=SPLIT_LABELS)
        target.uns[key_added] = {
            "fractions": fractions,
            "stratify": stratify or "",
            "require_modalities": np.array(list(require_modalities), dtype=object),
            "seed": int(seed),
            "n_missing_stratum": n_missing_stratum,
            "counts": {label: int((labels == label).sum()) for label in SPLIT_LABELS},
        }
        return target if copy else None


def split_indices(mdata: MuData, split_key: str) -> dict[str, np.ndarray]:
    """Positions (in ``mdata.obs``) of each split label; validates the column."""
    check_obs_columns(mdata.obs, [split_key])
    values = mdata.obs[split_key].astype(str).to_numpy()
    unknown = sorted(set(values) - set(SPLIT_LABELS))
    if unknown:
        raise InvalidInputError(
            f"mdata.obs[{split_key!r}] has unknown label(s) {describe_examples(unknown)}; expected {list(SPLIT_LABELS)}."
        )
    return {label: np.flatnonzero(values == label) for label in SPLIT_LABELS}
