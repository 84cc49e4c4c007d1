"""Patients of :func:`~cfmd.datasets.read_xena`: barcodes -> patients, primary samples, patients without RNA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import (
    InvalidInputError,
    describe_examples,
)
from ._barcodes import is_tcga_barcode, select_primary_samples
from ._xena_matrix import _Modality


def _patients_without_rna(mods: list[_Modality], rna_key: str | None, how: str) -> list[str]:
    if rna_key is None:
        return []
    rna = set(next(m.patients for m in mods if m.name == rna_key))
    without = list(dict.fromkeys(p for m in mods for p in m.patients if p not in rna))
    if not without or how == "keep":
        if without:
            logger.warning(
                "read_xena: %d patient(s) have other modalities but no RNA (e.g. %s); kept. The models need RNA for "
                "every patient: pass `patients_without_rna='drop'` to leave them out.",
                len(without),
                describe_examples(without, limit=3),
            )
        return []
    if how == "error":
        raise InvalidInputError(
            f"{len(without)} patient(s) have other modalities but no RNA in modalities[{rna_key!r}] "
            f"({describe_examples(without)}); every patient needs RNA. Pass `patients_without_rna='drop'` to leave "
            "them out, or 'keep' to keep them."
        )
    drop = set(without)
    for m in mods:
        keep = np.array([p not in drop for p in m.patients], dtype=bool)
        if keep.all():
            continue
        m.values = m.values[:, keep]
        m.patients = [p for p, k in zip(m.patients, keep) if k]
        m.samples = [s for s, k in zip(m.samples, keep) if k]
        m.sample_types = [t for t, k in zip(m.sample_types, keep) if k]
        if not m.patients:
            raise InvalidInputError(
                f"modalities[{m.name!r}] has no patient with RNA: `patients_without_rna='drop'` would leave it empty."
            )
    logger.warning(
        "read_xena: dropped %d patient(s) without RNA (`patients_without_rna='drop'`), e.g. %s.",
        len(without),
        describe_examples(without, limit=3),
    )
    return without


# ---------------------------------------------------------------------- barcodes


def _barcode_mode(mods: list[_Modality], barcodes: str) -> str:
    tcga = {m.name: is_tcga_barcode(m.samples) for m in mods}
    for m in mods:
        if barcodes != "none" and not tcga[m.name].any() and is_tcga_barcode(m.features[:1000]).mean() > 0.5:
            raise InvalidInputError(
                f"modalities[{m.name!r}]: the feature column holds TCGA barcodes and the header does not; the "
                "matrix looks transposed. Expected features x samples (samples as columns)."
            )
    if barcodes == "none":
        return "none"
    if barcodes == "tcga":
        for m in mods:
            bad = [s for s, ok in zip(m.samples, tcga[m.name]) if not ok]
            if bad:
                raise InvalidInputError(
                    f"modalities[{m.name!r}]: `barcodes='tcga'` but sample identifier(s) {describe_examples(bad)} are "
                    "not TCGA barcodes (TCGA-XX-XXXX...); pass `barcodes='none'` to keep identifiers as they are."
                )
        return "tcga"
    if all(t.all() for t in tcga.values()):
        return "tcga"
    if not any(t.any() for t in tcga.values()):
        return "none"
    mixed = [
        f"{m.name!r} ({int(tcga[m.name].sum())} TCGA, e.g. non-TCGA "
        f"{describe_examples([s for s, ok in zip(m.samples, tcga[m.name]) if not ok], limit=3)})"
        for m in mods
        if not tcga[m.name].all()
    ]
    raise InvalidInputError(
        "`barcodes='auto'` found TCGA barcodes in some sample identifiers but not all: "
        f"{'; '.join(mixed)}. Pass `barcodes='tcga'` (after removing non-TCGA columns) or `barcodes='none'`."
    )


def _assign_patients(m: _Modality, mode: str) -> None:
    where = f"sample columns of modalities[{m.name!r}] ({Path(m.source).name})"
    if mode == "none":
        index = pd.Index(m.samples)
        if not index.is_unique:
            dups = index[index.duplicated()].unique()
            raise InvalidInputError(
                f"{where} must be unique with `barcodes='none'`; repeated patient(s) {describe_examples(dups)}."
            )
        m.patients = list(m.samples)
        m.sample_types = [""] * len(m.samples)
        return
    table = select_primary_samples(m.samples, field=where)
    keep = table["selected"].to_numpy()
    m.dropped_samples = [s for s, k in zip(m.samples, keep) if not k]
    m.values = m.values[:, keep]
    m.patients = table["patient_barcode"].to_numpy()[keep].tolist()
    m.sample_types = table["sample_type"].to_numpy()[keep].tolist()
    m.samples = [s for s, k in zip(m.samples, keep) if k]
