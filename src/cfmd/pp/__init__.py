"""Preprocessing: rank-value tokenisation and foundation-model teacher embeddings.

- :func:`tokenize`: Geneformer rank-value encoding of bulk RNA-seq (V1 or V2 conventions).
- :func:`geneformer`: sample embeddings from a local Geneformer checkpoint folder.
- :func:`esm_gene_embeddings`: per-gene ESM-2 protein embeddings (local fair-esm checkpoint or a table).
- :func:`structural_fingerprint`: the expression-weighted fingerprint of gene embeddings at a fixed temperature.
"""

from ._esm import esm_gene_embeddings, read_fasta
from ._fingerprint import structural_fingerprint
from ._geneformer import geneformer
from ._tokenize import GENEFORMER_VERSIONS, TIE_BREAK, tokenize

__all__ = [
    "GENEFORMER_VERSIONS",
    "TIE_BREAK",
    "esm_gene_embeddings",
    "geneformer",
    "read_fasta",
    "structural_fingerprint",
    "tokenize",
]
