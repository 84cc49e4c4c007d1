"""Data sets and reference tables: the synthetic cohort, UCSC Xena / TCGA loaders, shipped references."""

from .._constants import CHROMOSOMES
from ._barcodes import (
    SAMPLE_TYPE_PREFERENCE,
    harmonise_tcga_barcodes,
    is_tcga_barcode,
    select_primary_samples,
    tcga_patient_barcodes,
)
from ._probes import CENTROMERES_HG19, PROBE_AGGREGATIONS, illumina_probe_locations
from ._reference import (
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
from ._symbols import repair_r_symbol
from ._synthetic import DEFAULT_SIGNAL, SURVIVAL_PATHWAYS, synthetic_cohort
from ._tiny_teachers import TINY_TEACHER_NOTICE, tiny_esm2_checkpoint, tiny_geneformer_checkpoint
from ._xena import ENDPOINTS, SCALES, read_xena

__all__ = [
    "CENTROMERES_HG19",
    "CHROMOSOMES",
    "DEFAULT_SIGNAL",
    "ENDPOINTS",
    "PROBE_AGGREGATIONS",
    "SAMPLE_TYPE_PREFERENCE",
    "SCALES",
    "SURVIVAL_PATHWAYS",
    "TINY_TEACHER_NOTICE",
    "gene_annotation",
    "geneformer_gene_medians",
    "geneformer_gene_name_id",
    "geneformer_token_dictionary",
    "hallmark_gene_sets",
    "illumina_probe_locations",
    "harmonise_tcga_barcodes",
    "is_tcga_barcode",
    "proliferation_signature",
    "read_xena",
    "reference_path",
    "repair_r_symbol",
    "select_primary_samples",
    "synthetic_cohort",
    "tcga_cdr_survival",
    "tcga_patient_barcodes",
    "tiny_esm2_checkpoint",
    "tiny_geneformer_checkpoint",
    "tme_genes",
]
