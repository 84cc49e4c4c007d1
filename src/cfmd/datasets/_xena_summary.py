"""The summary of :func:`~cfmd.datasets.read_xena`: what was read, kept and dropped, per modality; its log lines."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import (
    describe_examples,
)
from ._barcodes import NORMAL_SAMPLE_TYPES
from ._xena_matrix import _Modality


def _summary(
    mods: list[_Modality],
    mode: str,
    scales: Mapping[str, str],
    duplicate_features: str,
    obs: pd.DataFrame,
    rna_key: str | None,
    survival_info: dict,
) -> dict:
    per_mod = {}
    for m in mods:
        n_missing = int(np.isnan(m.values).sum())
        per_mod[m.name] = {
            "source": m.source,
            "scale": scales.get(m.name, ""),
            "n_samples": m.n_samples_in_file,
            "n_patients": len(m.patients),
            "n_features_in_file": m.n_features_in_file,
            "n_features": len(m.var),
            "gene_level": bool(m.gene_level),
            "n_mapped": m.n_mapped,
            "n_located": m.n_located,
            "n_unmapped": len(m.unmapped),
            "unmapped_examples": np.asarray(m.unmapped[:10], dtype=object),
            "duplicate_features": duplicate_features,
            "n_duplicate_groups": m.n_duplicate_groups,
            "n_duplicated_features": m.n_duplicated_features,
            "dropped_samples": np.asarray(m.dropped_samples, dtype=object),
            "n_normal_samples_kept": int(sum(t in NORMAL_SAMPLE_TYPES for t in m.sample_types)),
            "n_missing_values": n_missing,
            "feature_type": m.feature_type,
            "n_without_symbol": len(m.without_symbol),
            "without_symbol_examples": np.asarray(m.without_symbol[:10], dtype=object),
            "n_repaired": len(m.repaired),
            "repaired_examples": np.asarray(m.repaired[:10], dtype=object),
            "n_aliased": len(m.aliased),
            "aliased_examples": np.asarray(m.aliased[:10], dtype=object),
            "binarized": bool(m.binarized),
            "probe_aggregation": m.probe_info.get("level", "none"),
        }
    rna_patients = set(next((m.patients for m in mods if m.name == rna_key), []))
    summary = {
        "barcodes": mode,
        "rna_key": rna_key or "",
        "n_patients": len(obs),
        "n_patients_without_rna": len(obs) - len(rna_patients) if rna_key is not None else len(obs),
        "modalities": per_mod,
    }
    summary.update(survival_info)
    return summary


def _log_summary(mods: list[_Modality], summary: dict) -> None:
    logger.info(
        "read_xena: %d patient(s) over %d modalities (barcodes=%r).",
        summary["n_patients"],
        len(mods),
        summary["barcodes"],
    )
    for m in mods:
        s = summary["modalities"][m.name]
        logger.info(
            "read_xena: %r: %d sample(s) -> %d patient(s), %d feature(s)%s.",
            m.name,
            s["n_samples"],
            s["n_patients"],
            s["n_features"],
            f", {s['n_mapped']} mapped to genes ({s['n_located']} with a position)"
            if m.gene_level
            else ", not gene-level",
        )
        if s["dropped_samples"].size:
            logger.info(
                "read_xena: %r: dropped %d extra sample(s) of repeated patients (kept the preferred sample type): %s.",
                m.name,
                s["dropped_samples"].size,
                describe_examples(s["dropped_samples"]),
            )
        if s["n_normal_samples_kept"]:
            logger.warning(
                "read_xena: %r: %d patient(s) are represented by a normal-tissue sample (no tumour sample in the file).",
                m.name,
                s["n_normal_samples_kept"],
            )
        if s["n_unmapped"]:
            logger.info(
                "read_xena: %r: %d feature(s) not mapped to a gene, e.g. %s.",
                m.name,
                s["n_unmapped"],
                describe_examples(m.unmapped),
            )
        if s["n_without_symbol"]:
            logger.info(
                "read_xena: %r: %d feature(s) with an empty gene symbol (e.g. %s); not counted as unmapped.",
                m.name,
                s["n_without_symbol"],
                describe_examples(m.without_symbol, limit=3),
            )
        if s["n_repaired"] or s["n_aliased"]:
            logger.info(
                "read_xena: %r: %d R-mangled symbol(s) repaired (e.g. %s) and %d mapped through `gene_aliases`.",
                m.name,
                s["n_repaired"],
                describe_examples(m.repaired, limit=3) if m.repaired else "none",
                s["n_aliased"],
            )
        if s["n_duplicated_features"]:
            action = {
                "keep": "kept apart with unique names",
                "mean": "averaged",
                "first": "reduced to the first",
            }[s["duplicate_features"]]
            logger.info(
                "read_xena: %r: %d feature(s) in %d duplicate group(s) %s.",
                m.name,
                s["n_duplicated_features"],
                s["n_duplicate_groups"],
                action,
            )
        if s["n_missing_values"]:
            logger.warning("read_xena: %r holds %d missing value(s) (NaN).", m.name, s["n_missing_values"])
    if summary["rna_key"] and summary["n_patients_without_rna"]:
        logger.info("read_xena: %d patient(s) have no RNA.", summary["n_patients_without_rna"])
