"""TCGA barcode helpers: harmonise sample identifiers to patients and pick one sample per patient.

A TCGA barcode reads ``TCGA-<TSS>-<participant>-<sample type><vial>-<portion><analyte>-<plate>-<centre>``,
e.g. ``TCGA-OR-A5J1-01A-11R-A29S-07``. Its first 12 characters (``TCGA-OR-A5J1``) name the patient; the
two digits after them name the sample type (``01`` primary solid tumour, ``11`` solid tissue normal, ...)
and the following letter the vial. Matrices from UCSC Xena and Bioconductor packages also carry
patient-level barcodes (``TCGA-29-1701``) or dotted ones (``TCGA.A6.2670``, from R's ``make.names``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .._validation import InvalidInputError, describe_examples

__all__ = [
    "SAMPLE_TYPE_PREFERENCE",
    "harmonise_tcga_barcodes",
    "is_tcga_barcode",
    "select_primary_samples",
    "tcga_patient_barcodes",
]

#: TCGA sample-type codes in order of preference when one patient has several samples in one matrix:
#: tumours first (primary solid tumour, primary blood-derived cancer from peripheral blood / bone
#: marrow, recurrent solid tumour, additional new primary, metastatic, additional metastatic,
#: recurrent blood-derived cancer from bone marrow / peripheral blood, cell lines / xenografts),
#: then normals (solid tissue, blood, buccal, EBV-immortalised, bone marrow). Codes not listed rank
#: after all listed ones, by code.
SAMPLE_TYPE_PREFERENCE: tuple[str, ...] = (
    "01", "03", "09", "02", "05", "06", "07", "04", "40", "08", "50", "60", "61",
    "11", "10", "12", "13", "14",
)  # fmt: skip

#: Sample-type codes of normal (non-tumour) tissue.
NORMAL_SAMPLE_TYPES: frozenset[str] = frozenset({"10", "11", "12", "13", "14", "15", "16", "20"})

_TCGA = re.compile(
    r"^TCGA-(?P<tss>[A-Z0-9]{2})-(?P<participant>[A-Z0-9]{4})"
    r"(?:-(?P<sample_type>\d{2})(?P<vial>[A-Z])?(?:-.*)?)?$"
)
_SEPARATORS = re.compile(r"[._]")


def _as_strings(ids: Iterable) -> list[str]:
    return [str(i).strip() for i in ids]


def harmonise_tcga_barcodes(ids: Iterable[str]) -> pd.Index:
    """Write TCGA barcodes canonically: dots and underscores become dashes, letters upper case.

    Parameters
    ----------
    ids
        Sample or patient identifiers.

    Returns
    -------
    The identifiers, TCGA barcodes canonical (``"TCGA.a6.2670"`` -> ``"TCGA-A6-2670"``); identifiers that
    are not TCGA barcodes are returned unchanged.

    Examples
    --------
    >>> cfmd.datasets.harmonise_tcga_barcodes(["TCGA.A6.2670", "TCGA-OR-A5J1-01A-11R-A29S-07", "S1"]).tolist()
    ['TCGA-A6-2670', 'TCGA-OR-A5J1-01A-11R-A29S-07', 'S1']
    """
    out = []
    for raw in _as_strings(ids):
        canonical = _SEPARATORS.sub("-", raw).upper()
        out.append(canonical if _TCGA.match(canonical) else raw)
    return pd.Index(out, dtype=object)


def is_tcga_barcode(ids: Iterable[str]) -> np.ndarray:
    """Whether each identifier is a TCGA patient or sample barcode (dashes, dots or underscores).

    Parameters
    ----------
    ids
        Sample or patient identifiers.

    Returns
    -------
    Boolean array, one entry per identifier.

    Examples
    --------
    >>> cfmd.datasets.is_tcga_barcode(["TCGA.A6.2670", "TCGA-OR-A5J1-01A", "MIMAT0000062"]).tolist()
    [True, True, False]
    """
    return np.array([bool(_TCGA.match(_SEPARATORS.sub("-", i).upper())) for i in _as_strings(ids)], dtype=bool)


def tcga_patient_barcodes(ids: Iterable[str]) -> pd.Index:
    """Patient barcodes (first 12 characters, canonical form) of TCGA patient or sample barcodes.

    Parameters
    ----------
    ids
        TCGA barcodes.

    Returns
    -------
    One patient barcode per identifier.

    Raises
    ------
    InvalidInputError
        If an identifier is not a TCGA barcode.

    Examples
    --------
    >>> cfmd.datasets.tcga_patient_barcodes(["TCGA.A6.2670", "TCGA-OR-A5J1-01A-11R-A29S-07"]).tolist()
    ['TCGA-A6-2670', 'TCGA-OR-A5J1']
    """
    ids = _as_strings(ids)
    bad = [i for i, ok in zip(ids, is_tcga_barcode(ids)) if not ok]
    if bad:
        raise InvalidInputError(
            f"expected TCGA barcodes (TCGA-XX-XXXX...); got non-TCGA identifier(s) {describe_examples(bad)}."
        )
    return pd.Index([b[:12] for b in harmonise_tcga_barcodes(ids)], dtype=object)


def _sample_type_rank(code: str) -> tuple[int, str]:
    if code in SAMPLE_TYPE_PREFERENCE:
        return SAMPLE_TYPE_PREFERENCE.index(code), code
    return len(SAMPLE_TYPE_PREFERENCE), code


def select_primary_samples(ids: Iterable[str], *, field: str = "sample identifiers") -> pd.DataFrame:
    """Pick one sample per patient among TCGA barcodes.

    Where a patient has several samples, the one kept is chosen by, in order:

    1. sample type, following :data:`SAMPLE_TYPE_PREFERENCE` (primary tumour ``01`` first, normals last);
    2. vial letter (``A`` before ``B``; a barcode without a vial letter after those with one);
    3. the canonical barcode, lexicographically smallest first.

    Parameters
    ----------
    ids
        TCGA barcodes as found in a matrix (any mix of patient- and sample-level, dots or dashes).
    field
        What ``ids`` are, for error messages (e.g. ``"sample columns of 'rna' (rna.tsv.gz)"``).

    Returns
    -------
    One row per identifier, in input order, indexed by the identifier as given, with columns
    ``patient_barcode``, ``sample_type`` (two-digit code, ``""`` for a patient-level barcode), ``vial``
    (``""`` when absent) and ``selected`` (boolean: the sample kept for its patient).

    Raises
    ------
    InvalidInputError
        If an identifier is not a TCGA barcode, or a patient's samples cannot be ranked: two identical
        barcodes after harmonisation (e.g. ``TCGA.A6.2670`` and ``TCGA-A6-2670``), or a patient-level barcode
        next to other barcodes of the same patient. The message names the patient(s).

    Examples
    --------
    >>> table = cfmd.datasets.select_primary_samples(
    ...     ["TCGA-OR-A5J1-11A-11R-A29S-07", "TCGA-OR-A5J1-01B-11R-A29S-07", "TCGA-OR-A5J2-01A-11R-A29S-07"]
    ... )
    >>> table["selected"].tolist()
    [False, True, True]
    """
    ids = _as_strings(ids)
    patients = tcga_patient_barcodes(ids)
    canonical = harmonise_tcga_barcodes(ids)
    parts = [_TCGA.match(c) for c in canonical]
    table = pd.DataFrame(
        {
            "patient_barcode": patients.to_numpy(),
            "sample_type": [m.group("sample_type") or "" for m in parts],
            "vial": [m.group("vial") or "" for m in parts],
            "selected": True,
        },
        index=pd.Index(ids, dtype=object),
    )
    repeated = patients[patients.duplicated(keep=False)].unique()
    if len(repeated) == 0:
        return table

    unresolved = []
    selected = np.ones(len(ids), dtype=bool)
    for patient in repeated:
        rows = np.flatnonzero(patients == patient)
        codes = table["sample_type"].to_numpy()[rows]
        ranked_canonical = [canonical[r] for r in rows]
        if (codes == "").any() or len(set(ranked_canonical)) < len(rows):
            unresolved.append(patient)
            continue
        keys = [
            (*_sample_type_rank(codes[k]), table["vial"].iloc[r] or "~", ranked_canonical[k])
            for k, r in enumerate(rows)
        ]
        best = rows[min(range(len(rows)), key=keys.__getitem__)]
        selected[rows] = False
        selected[best] = True
    if unresolved:
        examples = {p: [ids[r] for r in np.flatnonzero(patients == p)] for p in unresolved}
        shown = "; ".join(f"{p}: {describe_examples(v)}" for p, v in list(examples.items())[:5])
        more = f" ({len(unresolved)} patients in total)" if len(unresolved) > 5 else ""
        raise InvalidInputError(
            f"{field}: cannot tell which sample to keep for patient(s) {shown}{more}. A patient may appear several "
            "times only with distinct sample-level barcodes (TCGA-XX-XXXX-01A...), which are ranked by sample "
            "type, vial and barcode; identical or patient-level barcodes cannot be ranked. Remove the extra "
            "column(s) or rename them to their sample barcodes."
        )
    table["selected"] = selected
    return table
