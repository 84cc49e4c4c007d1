"""Names shared across cfmd: default keys, split labels, the seed default and chromosome names.

One home for what ``pp``, ``tl``, ``models`` and the CLI would otherwise each spell out. Public re-exports:
:data:`cfmd.tl.DEFAULT_SPLIT_KEY`, :data:`cfmd.tl.SPLIT_LABELS`, :data:`cfmd.datasets.CHROMOSOMES`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CHROMOSOMES",
    "DEFAULT_GENEFORMER_KEY",
    "DEFAULT_GENE_EMBEDDING_KEY",
    "DEFAULT_IMPUTED_KEY",
    "DEFAULT_LATENT_KEY",
    "DEFAULT_RNA_KEY",
    "DEFAULT_SEED",
    "CFMD_MAX_EPOCHS",
    "DIFFUSION_MAX_EPOCHS",
    "DEFAULT_SPLIT_KEY",
    "DEFAULT_STRATIFY_KEY",
    "FITTED_SPLIT_LABELS",
    "SPLIT_LABELS",
    "check_chromosomes",
    "chromosome_label",
]

#: Default RNA modality of the MuData.
DEFAULT_RNA_KEY = "rna"
#: Default ``.obsm`` key of the structured latent (:func:`~cfmd.tl.fit_latent` writes it).
DEFAULT_LATENT_KEY = "X_structured"
#: Default ``.obsm`` key of the imputed latent (:func:`~cfmd.tl.impute` writes it).
DEFAULT_IMPUTED_KEY = "X_cfmd"
#: Default ``mdata[rna_key].obsm`` key of the Geneformer sample embedding (:func:`~cfmd.pp.geneformer`).
DEFAULT_GENEFORMER_KEY = "X_geneformer"
#: Default ``mdata[rna_key].varm`` key of the per-gene ESM-2 embeddings (:func:`~cfmd.pp.esm_gene_embeddings`).
DEFAULT_GENE_EMBEDDING_KEY = "X_esm2"
#: Default ``.obs`` column of the patient split (:func:`~cfmd.tl.split_patients` writes it).
DEFAULT_SPLIT_KEY = "cfmd_split"
#: Default ``.obs`` column the split is stratified by.
DEFAULT_STRATIFY_KEY = "cancer_type"
#: Labels of the patient split: the three a model is fitted and scored on, then patients without the latent.
SPLIT_LABELS = ("train", "validation", "test", "rna_only")
#: The labels of patients whose latent is observed (a model's split).
FITTED_SPLIT_LABELS = SPLIT_LABELS[:3]
#: Seed of every function and model that draws random numbers (scanpy's ``random_state=0`` convention).
DEFAULT_SEED = 0
#: Maximum training epochs of CFMD and the other latent imputers (the paper's 200; early stopping decides).
CFMD_MAX_EPOCHS = 200
#: Maximum training epochs of the diffusion models (early stopping on the denoised validation MSE decides; the seed
#: allows up to 20,000). Capped at 300, the multi-condition model on TCGA-LIHC was still improving.
DIFFUSION_MAX_EPOCHS = 2000

#: Chromosomes used throughout (autosomes and X, as in the LOCO audit).
CHROMOSOMES: tuple[str, ...] = (*(str(i) for i in range(1, 23)), "X")


def chromosome_label(value) -> str | None:
    """The one spelling of a chromosome label: ``1``, ``1.0``, ``"1"``, ``"chr1"`` -> ``"1"``; ``"chrx"`` -> ``"X"``.

    A ``chr`` prefix (any case) and surrounding white space are dropped, ``X`` / ``Y`` / ``M`` / ``MT`` are upper
    case; a missing value (``None``, NaN) gives ``None``. Labels outside :data:`CHROMOSOMES` (``"Y"``, ``"MT"``,
    contigs) are returned normalised, not rejected.

    Examples
    --------
    >>> [chromosome_label(v) for v in ("chr7", 7, 7.0, " chrx", "MT", None)]
    ['7', '7', '7', 'X', 'MT', None]
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    label = str(value).strip()
    if label.lower().startswith("chr"):
        label = label[3:]
    return label.upper() if label.lower() in ("x", "y", "m", "mt") else label


def check_chromosomes(values, field: str) -> list[str]:
    """``values`` as :func:`chromosome_label` spells them; an error names ``field`` and any not in :data:`CHROMOSOMES`."""
    from ._validation import InvalidInputError, describe_examples

    labels = [chromosome_label(value) for value in values]
    unknown = [value for value, label in zip(values, labels) if label not in CHROMOSOMES]
    if unknown:
        raise InvalidInputError(
            f"`{field}` has unknown chromosome(s) {describe_examples(unknown)}; known: {describe_examples(CHROMOSOMES)}."
        )
    return labels
