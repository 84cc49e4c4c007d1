"""One matrix of :func:`~cfmd.datasets.read_xena`: read, numeric, scale-checked, binarised, probes aggregated."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import (
    InvalidInputError,
    check_counts,
    describe_examples,
)
from ._probes import aggregate_probes, is_probe_id
from ._xena_files import _NA_VALUES, _existing_file, _is_gzip, _open_text

#: Fraction of Illumina probe IDs among a matrix's features from which it is probe-level (``feature_type="probe"``).
_PROBE_LEVEL_MIN_FRACTION = 0.5


@dataclass
class _Modality:
    """One matrix on its way into the MuData (internal)."""

    name: str
    source: str
    values: np.ndarray  # features x samples, float64
    features: list[str]
    samples: list[str]
    n_samples_in_file: int = 0
    n_features_in_file: int = 0
    patients: list[str] = field(default_factory=list)
    dropped_samples: list[str] = field(default_factory=list)
    sample_types: list[str] = field(default_factory=list)
    var: pd.DataFrame | None = None
    gene_level: bool = False
    n_mapped: int = 0
    n_located: int = 0
    unmapped: list[str] = field(default_factory=list)
    n_duplicate_groups: int = 0
    n_duplicated_features: int = 0
    without_symbol: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    aliased: list[str] = field(default_factory=list)
    binarized: dict = field(default_factory=dict)
    feature_type: str = "other"
    probe_info: dict = field(default_factory=dict)
    probe_map: pd.DataFrame | None = None
    extra_var: pd.DataFrame | None = None


# ---------------------------------------------------------------------- reading


def _read_matrix(mod: str, source) -> _Modality:
    """Read one features x samples matrix (path or DataFrame) and check that it is non-empty and numeric."""
    if isinstance(source, pd.DataFrame):
        where = f"modalities[{mod!r}] (DataFrame)"
        frame = source
        features = [str(f).strip() for f in frame.index]
        samples = [str(s).strip() for s in frame.columns]
        cells = frame
        source_name = "DataFrame"
    else:
        path = _existing_file(source, f"modalities[{mod!r}]")
        where = f"modalities[{mod!r}] ({path.name})"
        source_name = str(path)
        try:
            with _open_text(path) as fh:
                header = next(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), [])
        except (OSError, UnicodeDecodeError, EOFError) as err:
            raise InvalidInputError(f"{where}: cannot read the file as tab-separated text ({err}).") from None
        samples = [s.strip() for s in header[1:]]
        if samples:
            try:
                cells = pd.read_csv(
                    path,
                    sep="\t",
                    header=None,
                    skiprows=1,
                    dtype={0: str},
                    keep_default_na=False,
                    na_values=dict.fromkeys(range(1, len(samples) + 1), _NA_VALUES),
                    compression="gzip" if _is_gzip(path) else None,
                    quoting=csv.QUOTE_NONE,
                )
            except pd.errors.EmptyDataError:
                cells = pd.DataFrame(columns=range(len(samples) + 1))
            except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
                raise InvalidInputError(f"{where}: cannot parse the matrix ({err}).") from None
            if cells.shape[1] != len(samples) + 1:
                raise InvalidInputError(
                    f"{where}: the header names {len(samples)} sample(s) but rows have {cells.shape[1] - 1} value(s); "
                    "expected a features x samples matrix whose first column is the feature label."
                )
            features = [str(f).strip() for f in cells.iloc[:, 0]]
            cells = cells.iloc[:, 1:]
        else:
            features, cells = [], pd.DataFrame()

    if not samples:
        raise InvalidInputError(
            f"{where} has no samples: expected sample identifiers in the header after the feature column."
        )
    if not features:
        raise InvalidInputError(f"{where} has no features: expected one row per feature below the header.")
    empty_samples = [j for j, s in enumerate(samples) if not s]
    if empty_samples:
        raise InvalidInputError(
            f"{where}: sample identifier(s) in column(s) {describe_examples([j + 2 for j in empty_samples])} are empty."
        )
    empty_features = [i for i, f in enumerate(features) if not f or f == "nan"]
    if empty_features:
        raise InvalidInputError(
            f"{where}: feature label(s) of row(s) {describe_examples([i + 1 for i in empty_features])} are empty; "
            "expected a label (gene, probe, ...) in the first column of every row."
        )
    values = _numeric_values(cells, features, samples, where)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        i, j = np.argwhere(np.isinf(values))[0]
        raise InvalidInputError(
            f"{where} must not hold infinite values; found {n_inf} (e.g. feature {features[i]!r}, sample "
            f"{samples[j]!r}). Missing values may be NA or empty."
        )
    return _Modality(
        name=mod,
        source=source_name,
        values=values,
        features=features,
        samples=samples,
        n_samples_in_file=len(samples),
        n_features_in_file=len(features),
    )


def _numeric_values(cells: pd.DataFrame, features: list[str], samples: list[str], where: str) -> np.ndarray:
    """The matrix as float64, or an error naming the first non-numeric cell."""
    if all(pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt) for dt in cells.dtypes):
        return cells.to_numpy(dtype=np.float64, na_value=np.nan)
    columns = []
    for j in range(cells.shape[1]):
        col = cells.iloc[:, j]
        if pd.api.types.is_bool_dtype(col.dtype):
            raise InvalidInputError(f"{where} must be numeric; sample {samples[j]!r} holds booleans.")
        if pd.api.types.is_numeric_dtype(col.dtype):
            columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        raw = col.astype(object)
        as_text = raw.where(raw.isna(), raw.astype(str).str.strip())
        as_text = as_text.mask(as_text.isin(_NA_VALUES))
        numbers = pd.to_numeric(as_text, errors="coerce")
        bad = numbers.isna().to_numpy() & as_text.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"{where} must be numeric; found {int(bad.sum())} non-numeric value(s) in sample {samples[j]!r} "
                f"(e.g. {as_text.iloc[i]!r} for feature {features[i]!r}). Expected numbers, with NA or empty "
                "cells for missing values."
            )
        columns.append(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns)


# ---------------------------------------------------------------------- scales


def _check_scale(m: _Modality, scale: str | None) -> None:
    what = f"modalities[{m.name!r}] ({Path(m.source).name}, declared scale {scale!r})"
    values = m.values
    if scale in ("counts", "normalized"):
        check_counts(values, what, require_integer=False)
        if scale == "counts" and np.any(np.abs(values - np.round(values)) > 1e-6):
            logger.info(
                "read_xena: %r declared as counts holds non-integer values (e.g. RSEM expected counts).", m.name
            )
        return
    observed = values[~np.isnan(values)]
    if scale == "beta" and observed.size and (observed.min() < 0 or observed.max() > 1):
        raise InvalidInputError(
            f"{what} must hold beta values in [0, 1]; found values from {observed.min():g} to {observed.max():g}."
        )
    allowed = {"gistic": (-2.0, -1.0, 0.0, 1.0, 2.0), "binary": (0.0, 1.0)}.get(scale or "")
    if allowed is not None:
        bad = observed[~np.isin(observed, allowed)]
        if bad.size:
            hint = ""
            if scale == "binary" and bad.min() >= 0:
                hint = (
                    f" These look like counts (maximum {bad.max():g}): pass `binarize=[{m.name!r}]` to turn values "
                    "> 0 into 1."
                )
            raise InvalidInputError(
                f"{what} must hold only {describe_examples([int(a) for a in allowed])}; "
                f"found {bad.size} other value(s), e.g. {bad[0]:g}.{hint}"
            )


def _binarize(m: _Modality) -> None:
    """``binarize``: values > 0 -> 1 (mutation counts -> mutated); negative values are an error."""
    observed = m.values[~np.isnan(m.values)]
    if observed.size and observed.min() < 0:
        i, j = np.argwhere(m.values < 0)[0]
        raise InvalidInputError(
            f"modalities[{m.name!r}] ({Path(m.source).name}) is listed in `binarize` but holds negative values "
            f"(e.g. {m.values[i, j]:g} for feature {m.features[i]!r}); expected non-negative counts or calls."
        )
    changed = int(np.count_nonzero(~np.isin(observed, (0.0, 1.0))))
    m.binarized = {
        "rule": "value > 0 -> 1, 0 -> 0, NaN kept",
        "n_values_changed": changed,
        "max_value": float(observed.max()) if observed.size else 0.0,
    }
    m.values = np.where(np.isnan(m.values), np.nan, (m.values > 0).astype(np.float64))
    logger.info(
        "read_xena: %r binarised (values > 0 -> 1): %d value(s) other than 0/1 changed (maximum %g).",
        m.name,
        changed,
        m.binarized["max_value"],
    )


# ---------------------------------------------------------------------- methylation probes


def _detect_probes(m: _Modality, level: str | None, *, is_rna: bool) -> None:
    fraction = float(is_probe_id(m.features).mean())
    if fraction >= _PROBE_LEVEL_MIN_FRACTION and not is_rna:
        m.feature_type = "probe"
    if level not in (None, "none") and m.feature_type != "probe":
        raise InvalidInputError(
            f"`probe_aggregation[{m.name!r}]={level!r}` but modalities[{m.name!r}] ({Path(m.source).name}) is not "
            f"probe-level: {fraction:.0%} of its features (e.g. {describe_examples(m.features, limit=3)}) are "
            "Illumina probe IDs (cg00000029, ...); expected at least half."
        )


def _aggregate(m: _Modality, level: str, annotation, bin_size: int) -> None:
    where = f"modalities[{m.name!r}] ({Path(m.source).name})"
    m.values, var, m.probe_map, m.probe_info = aggregate_probes(
        m.values, m.features, level, annotation=annotation, bin_size=int(bin_size), field=where
    )
    m.features = var["feature"].tolist()
    m.extra_var = var.drop(columns=["feature"]).reset_index(drop=True)
    logger.info(
        "read_xena: %r: %d probe(s) averaged into %d %s feature(s) (%d probe(s) not in the probe table).",
        m.name,
        m.probe_info["n_probes_used"],
        len(m.features),
        level,
        m.probe_info["n_probes_unlocated"],
    )


def _add_extra_var(m: _Modality, *, explicit: bool) -> None:
    """Region columns of aggregated probes, or the chromosome of kept probes, into ``m.var``."""
    if m.extra_var is not None:
        for column in m.extra_var.columns:
            values = m.extra_var[column].to_numpy()
            if column == "chromosome":
                m.var["chromosome"] = pd.Categorical(values, categories=m.var["chromosome"].cat.categories)
            else:
                m.var[column] = values
        return
    if m.feature_type == "probe" and not m.gene_level:
        from ._probes import illumina_probe_locations

        chrom = illumina_probe_locations()["chromosome"].reindex(pd.Index(m.features, dtype=object))
        m.var["chromosome"] = pd.Categorical(
            chrom.to_numpy(dtype=object), categories=m.var["chromosome"].cat.categories
        )
        if explicit:
            return
        logger.warning(
            "read_xena: %r holds Illumina methylation probes (%d); kept probe-level (not gene-level). Pass "
            "`probe_aggregation={%r: 'gene'|'bin'|'arm'|'chromosome'}` to average them over regions.",
            m.name,
            len(m.features),
            m.name,
        )
