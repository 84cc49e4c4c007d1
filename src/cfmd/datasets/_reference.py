"""Reference tables shipped with the package (plain text, public data).

=========================================  =====================================================
file                                       content
=========================================  =====================================================
``h.all.v7.4.symbols.gmt``                 MSigDB Hallmark gene sets v7.4 (50 sets, HGNC symbols)
``gene_annotation_hg38.tsv.gz``            GRCh38 genes: Ensembl ID, symbol, chromosome 1-22/X, start, end, band
``geneformer_gc30M_token_dictionary...``   Geneformer V1 token dictionary (``<pad>`` = 0, ``<mask>`` = 1)
``geneformer_gc30M_gene_median.tsv.gz``    Geneformer V1 non-zero median expression per gene
``geneformer_gene_name_id.tsv.gz``         Geneformer's symbol -> Ensembl ID map
``tcga_cdr_survival.tsv.gz``               TCGA Pan-Cancer Clinical Data Resource survival (Liu et al., Cell 2018)
``illumina450k_probe_bins_hg19.tsv.gz``    Illumina 450k probe chromosome / hg19 position (100 kb), see ``_probes.py``
=========================================  =====================================================

The Geneformer dictionaries were converted from the original pickles to TSV; ``cfmd`` never
unpickles dictionaries.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import pandas as pd

from .._constants import CHROMOSOMES

__all__ = [
    "CHROMOSOMES",
    "gene_annotation",
    "geneformer_gene_medians",
    "geneformer_gene_name_id",
    "geneformer_token_dictionary",
    "hallmark_gene_sets",
    "proliferation_signature",
    "reference_path",
    "tcga_cdr_survival",
    "tme_genes",
]


_FILES = {
    "hallmark": "h.all.v7.4.symbols.gmt",
    "annotation": "gene_annotation_hg38.tsv.gz",
    "geneformer_tokens": "geneformer_gc30M_token_dictionary.tsv.gz",
    "geneformer_medians": "geneformer_gc30M_gene_median.tsv.gz",
    "geneformer_name_id": "geneformer_gene_name_id.tsv.gz",
    "tcga_cdr": "tcga_cdr_survival.tsv.gz",
}


def reference_path(name: str):
    """Path (a :class:`~importlib.resources.abc.Traversable`) of a shipped reference file.

    Parameters
    ----------
    name
        One of ``"hallmark"``, ``"annotation"``, ``"geneformer_tokens"``, ``"geneformer_medians"``,
        ``"geneformer_name_id"``, ``"tcga_cdr"``.
    """
    from .._validation import check_choice

    check_choice(name, "name", _FILES)
    return files("cfmd.datasets") / "data" / _FILES[name]


@cache
def _hallmark() -> tuple[tuple[str, tuple[str, ...]], ...]:
    sets = []
    with reference_path("hallmark").open() as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3:
                sets.append((parts[0], tuple(dict.fromkeys(g for g in parts[2:] if g))))
    return tuple(sets)


def hallmark_gene_sets() -> dict[str, list[str]]:
    """MSigDB Hallmark gene sets (v7.4), in file order.

    Returns
    -------
    ``{set name: [HGNC symbols]}`` for the 50 Hallmark sets.

    Examples
    --------
    >>> sets = cfmd.datasets.hallmark_gene_sets()
    >>> len(sets), "MKI67" in sets["HALLMARK_G2M_CHECKPOINT"]
    (50, True)
    """
    return {name: list(genes) for name, genes in _hallmark()}


@cache
def _annotation() -> pd.DataFrame:
    with reference_path("annotation").open("rb") as fh:
        df = pd.read_csv(fh, sep="\t", compression="gzip", dtype={"chromosome": str})
    return df


def gene_annotation() -> pd.DataFrame:
    """GRCh38 gene annotation.

    Returns
    -------
    A table with one row per gene and columns ``ensembl_id``, ``symbol``, ``chromosome`` (``"1"``-``"22"``,
    ``"X"``), ``start``, ``end``, ``band``; Ensembl IDs and symbols are unique.
    """
    return _annotation().copy()


def _two_column_tsv(name: str, key: str, value: str) -> pd.Series:
    with reference_path(name).open("rb") as fh:
        df = pd.read_csv(fh, sep="\t", compression="gzip", keep_default_na=False)
    return pd.Series(df[value].to_numpy(), index=pd.Index(df[key].astype(str), name=key), name=value)


@cache
def _tokens() -> pd.Series:
    return _two_column_tsv("geneformer_tokens", "token", "id").astype("int64")


@cache
def _medians() -> pd.Series:
    return _two_column_tsv("geneformer_medians", "ensembl_id", "nonzero_median").astype("float64")


@cache
def _name_id() -> pd.Series:
    return _two_column_tsv("geneformer_name_id", "symbol", "ensembl_id").astype(str)


def geneformer_token_dictionary() -> dict[str, int]:
    """Geneformer V1 (gc30M) token dictionary: ``{token: id}``, ``<pad>`` = 0, ``<mask>`` = 1, then Ensembl IDs."""
    return _tokens().to_dict()


def geneformer_gene_medians() -> dict[str, float]:
    """Geneformer V1 (gc30M) non-zero median expression per Ensembl ID (used for rank-value encoding)."""
    return _medians().to_dict()


def geneformer_gene_name_id() -> dict[str, str]:
    """Geneformer's symbol -> Ensembl ID map."""
    return _name_id().to_dict()


@cache
def _cdr() -> pd.DataFrame:
    with reference_path("tcga_cdr").open("rb") as fh:
        return pd.read_csv(fh, sep="\t", compression="gzip")


def tcga_cdr_survival() -> pd.DataFrame:
    """TCGA Pan-Cancer Clinical Data Resource survival table (Liu et al., Cell 2018).

    Returns
    -------
    One row per patient: ``bcr_patient_barcode``, ``acronym`` (cancer type), ``OS``, ``OS.time``, ``PFI``,
    ``PFI.time``, ``DSS``, ``DSS.time`` (events 0/1, times in days; some missing).
    """
    return _cdr().copy()


def proliferation_signature() -> list[str]:
    """The proliferation signature: genes in both ``HALLMARK_E2F_TARGETS`` and ``HALLMARK_G2M_CHECKPOINT``.

    The 73 genes shared by the two cell-cycle Hallmark sets (including MKI67, the Ki67 gene the paper's
    proliferation slice was supervised on), sorted alphabetically. Defined from the shipped gene sets only,
    never from a cohort's expression, so that it cannot leak test-set information.
    """
    sets = hallmark_gene_sets()
    return sorted(set(sets["HALLMARK_E2F_TARGETS"]) & set(sets["HALLMARK_G2M_CHECKPOINT"]))


def tme_genes() -> list[str]:
    """Default "TME" gene list of the Regional Methylation Decoder: the union of the 50 Hallmark sets (sorted).

    Chosen from external gene sets without looking at any cohort's expression variance (no feature-selection leakage).
    """
    return sorted(set().union(*hallmark_gene_sets().values()))
