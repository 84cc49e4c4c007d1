"""Gene mapping of :func:`~cfmd.datasets.read_xena`: feature labels -> symbol, Ensembl ID, position; duplicates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import CHROMOSOMES
from .._validation import (
    InvalidInputError,
    describe_examples,
)
from ._reference import gene_annotation, geneformer_gene_name_id
from ._symbols import repair_r_symbol

if TYPE_CHECKING:
    from ._xena_matrix import _Modality


#: Fraction of a modality's features that must map to genes for ``gene_level="auto"`` to call it gene-level.
GENE_LEVEL_MIN_FRACTION = 0.5


_NO_SYMBOL = {""}


_ENSEMBL = re.compile(r"^(ENS[A-Z]*G\d{11})(?:\.\d+)?(?:_PAR_Y)?$")


_GENE_COLUMNS = ("gene_symbol", "ensembl_id", "chromosome", "start")


@cache
def _gene_tables() -> tuple[pd.DataFrame, dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    ann = gene_annotation()
    by_ensembl = ann.set_index("ensembl_id")[["symbol", "chromosome", "start"]]
    ensembl_to_symbol = dict(zip(ann["ensembl_id"], ann["symbol"]))
    symbol_to_ensembl = dict(zip(ann["symbol"], ann["ensembl_id"]))
    geneformer = geneformer_gene_name_id()
    ensembl_to_geneformer_symbol: dict[str, str] = {}
    for symbol, ensembl in geneformer.items():
        ensembl_to_geneformer_symbol.setdefault(ensembl, symbol)
    return by_ensembl, ensembl_to_symbol, symbol_to_ensembl, geneformer, ensembl_to_geneformer_symbol


def _lookup_genes(
    labels: list[str], *, aliases: Mapping[str, str] | None = None, repair: bool = False
) -> tuple[pd.DataFrame, dict[int, tuple[str, str]]]:
    """``gene_symbol``, ``ensembl_id``, ``chromosome``, ``start`` for each label (missing where unmapped).

    Also returns ``{row: (symbol, how)}`` for labels mapped through ``aliases`` (how ``"alias"``) or an R-mangling
    repair (how the rule of :func:`~cfmd.datasets.repair_r_symbol`).
    """
    by_ensembl, ensembl_to_symbol, symbol_to_ensembl, geneformer, ensembl_to_geneformer_symbol = _gene_tables()
    aliases = aliases or {}

    def known(symbol: str) -> bool:
        return symbol in symbol_to_ensembl or symbol in geneformer

    symbols, ensembls, changed = [], [], {}
    for row, label in enumerate(labels):
        match = _ENSEMBL.match(label)
        if match:
            ensembl = match.group(1)
            symbol = ensembl_to_symbol.get(ensembl) or ensembl_to_geneformer_symbol.get(ensembl)
            if symbol is None:
                ensembl = None
        else:
            symbol = label.split("|", 1)[0].strip() if "|" in label else label
            if symbol in aliases:
                changed[row] = (aliases[symbol], "alias")
                symbol = aliases[symbol]
            elif repair and symbol not in _NO_SYMBOL and not known(symbol):
                repaired = repair_r_symbol(symbol, known)
                if repaired is not None:
                    changed[row] = repaired
                    symbol = repaired[0]
            # an empty symbol never maps (Geneformer's map has an entry for the empty string)
            ensembl = None if symbol in _NO_SYMBOL else symbol_to_ensembl.get(symbol) or geneformer.get(symbol)
            if ensembl is None:
                symbol = None
                changed.pop(row, None)
        symbols.append(np.nan if symbol is None else symbol)
        ensembls.append(np.nan if ensembl is None else ensembl)
    located = by_ensembl.reindex(pd.Index(ensembls, dtype=object))
    genes = pd.DataFrame(
        {
            "gene_symbol": pd.Series(symbols, dtype=object),
            "ensembl_id": pd.Series(ensembls, dtype=object),
            "chromosome": located["chromosome"].to_numpy(dtype=object),
            "start": located["start"].to_numpy(dtype=np.float64),
        }
    )
    return genes, changed


def _has_no_symbol(label: str) -> bool:
    """Labels whose symbol part is empty (``|100130426``, ``" "``): reported apart from unmapped symbols."""
    if _ENSEMBL.match(label):
        return False
    return (label.split("|", 1)[0].strip() if "|" in label else label.strip()) in _NO_SYMBOL


def _map_genes(
    m: _Modality,
    declared: bool | None,
    *,
    is_rna: bool,
    aliases: Mapping[str, str] | None = None,
    repair: bool = False,
) -> None:
    genes, changed = _lookup_genes(m.features, aliases=aliases, repair=repair)
    mapped = genes["ensembl_id"].notna().to_numpy()
    n_mapped = int(mapped.sum())
    fraction = n_mapped / len(m.features)
    if declared is None:
        m.gene_level = is_rna or fraction >= GENE_LEVEL_MIN_FRACTION
        how = "the RNA modality" if is_rna else f"{fraction:.0%} of its features map to genes"
    else:
        m.gene_level = bool(declared)
        how = "declared in `gene_level`"
    if m.gene_level and n_mapped == 0:
        raise InvalidInputError(
            f"modalities[{m.name!r}] ({Path(m.source).name}) is gene-level ({how}) but none of its "
            f"{len(m.features)} feature labels (e.g. {describe_examples(m.features, limit=3)}) is a gene symbol or "
            "Ensembl gene ID in the shipped annotation or Geneformer's map. Expected HGNC symbols or Ensembl IDs; "
            f"pass `gene_level={{{m.name!r}: False}}` if the features are not genes."
        )
    if not m.gene_level:
        genes.loc[:, list(_GENE_COLUMNS)] = np.nan
        genes = genes.astype({"gene_symbol": object, "ensembl_id": object, "chromosome": object, "start": np.float64})
        m.n_mapped = m.n_located = 0
        m.unmapped = []
    else:
        if m.feature_type != "probe":
            m.feature_type = "gene"
        m.n_mapped = n_mapped
        m.n_located = int(genes["chromosome"].notna().sum())
        no_symbol = [_has_no_symbol(f) for f in m.features]
        m.without_symbol = [f for f, ok, empty in zip(m.features, mapped, no_symbol) if not ok and empty]
        m.unmapped = [f for f, ok, empty in zip(m.features, mapped, no_symbol) if not ok and not empty]
        m.repaired = [f"{m.features[i]}->{sym}" for i, (sym, how) in sorted(changed.items()) if how != "alias"]
        m.aliased = [f"{m.features[i]}->{sym}" for i, (sym, how) in sorted(changed.items()) if how == "alias"]
    var = pd.DataFrame({"feature": np.asarray(m.features, dtype=object)})
    # categoricals hold missing strings in a form h5ad / h5mu can write (object columns with NaN cannot)
    for column in ("gene_symbol", "ensembl_id"):
        present = genes[column].dropna().unique()
        genes[column] = pd.Categorical(genes[column], categories=pd.Index(present, dtype=object))
    genes["chromosome"] = pd.Categorical(genes["chromosome"], categories=pd.Index(CHROMOSOMES, dtype=object))
    m.var = pd.concat([var, genes], axis=1)


def _duplicate_keys(m: _Modality) -> list[str]:
    keys = []
    for label, ensembl in zip(m.features, m.var["ensembl_id"]):
        if m.gene_level and isinstance(ensembl, str):
            keys.append(ensembl)
        else:
            match = _ENSEMBL.match(label)
            keys.append(match.group(1) if match else label)
    return keys


def _handle_duplicates(m: _Modality, how: str) -> None:
    keys = pd.Index(_duplicate_keys(m))
    repeated = keys.duplicated(keep=False)
    m.n_duplicated_features = int(repeated.sum())
    m.n_duplicate_groups = int(keys[repeated].nunique())
    if how == "keep" or m.n_duplicated_features == 0:
        if how != "keep":
            m.var["n_merged"] = np.ones(len(m.var), dtype=np.int64)
        return
    codes, uniques = pd.factorize(keys)  # codes follow first appearance
    first = np.unique(codes, return_index=True)[1]
    sizes = np.bincount(codes, minlength=len(uniques))
    var = m.var.iloc[first].reset_index(drop=True)
    if how == "mean":
        membership = sparse.csr_matrix(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(uniques), len(codes))
        )
        observed = ~np.isnan(m.values)
        sums = np.asarray(membership @ np.where(observed, m.values, 0.0))
        counts = np.asarray(membership @ observed.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            m.values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        labels = pd.Series(m.features).groupby(codes).agg(lambda s: ";".join(dict.fromkeys(s)))
        var["feature"] = labels.sort_index().to_numpy(dtype=object)
    else:
        m.values = m.values[first]
    var["n_merged"] = sizes.astype(np.int64)
    m.var = var
    m.features = [m.features[i] for i in first]


def _make_unique(names: list[str]) -> list[str]:
    """Suffix repeated names ``-1``, ``-2``, ... (anndata's convention), avoiding names already present."""
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
            continue
        k = 1
        while f"{name}-{k}" in taken:
            k += 1
        unique = f"{name}-{k}"
        taken.add(unique)
        out.append(unique)
    return out


def _name_features(mods: list[_Modality], rna_key: str | None) -> None:
    for m in mods:
        labels = m.features if m.name == rna_key else [f"{m.name}:{f}" for f in m.features]
        m.var.index = pd.Index(_make_unique(labels), dtype=object)
    names = pd.Index([n for m in mods for n in m.var.index])
    if not names.is_unique:
        dups = names[names.duplicated()].unique()
        raise InvalidInputError(
            f"feature names must be unique across modalities; {describe_examples(dups)} occur in several "
            "(an RNA label contains another modality's prefix). Rename the modality or the features."
        )
