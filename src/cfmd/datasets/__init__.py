"""Data sets and reference tables: the synthetic cohort, UCSC Xena / TCGA loaders, shipped references."""

from ._reference import (
    CHROMOSOMES,
    gene_annotation,
    geneformer_gene_medians,
    geneformer_gene_name_id,
    geneformer_token_dictionary,
    hallmark_gene_sets,
    proliferation_signature,
    reference_path,
    tcga_cdr_survival,
    tme_genes,
)
from ._synthetic import DEFAULT_SIGNAL, SURVIVAL_PATHWAYS, synthetic_cohort

__all__ = [
    "CHROMOSOMES",
    "DEFAULT_SIGNAL",
    "SURVIVAL_PATHWAYS",
    "gene_annotation",
    "geneformer_gene_medians",
    "geneformer_gene_name_id",
    "geneformer_token_dictionary",
    "hallmark_gene_sets",
    "proliferation_signature",
    "reference_path",
    "synthetic_cohort",
    "tcga_cdr_survival",
    "tme_genes",
]
