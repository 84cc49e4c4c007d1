"""CFMD: Complementary Foundation Model Distillation as a scvi-tools model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from mudata import MuData
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from .._constants import (
    CHROMOSOMES,
    DEFAULT_GENE_EMBEDDING_KEY,
    DEFAULT_GENEFORMER_KEY,
    DEFAULT_LATENT_KEY,
    DEFAULT_RNA_KEY,
    DEFAULT_SEED,
    DEFAULT_SPLIT_KEY,
    check_chromosomes,
)
from .._layout import STRATEGIES, LatentLayout
from .._validation import InvalidInputError, check_choice, describe_examples
from ..datasets import proliferation_signature, tme_genes
from ._cfmd_module import CFMDModule, check_rmd_kwargs
from ._io import SafeIOMixin
from ._latent_imputer import (
    ImputerTrainingPlan,
    LatentImputerMixin,
    make_split,
    resolve_layout,
)
from ._scvi_private import setup_args
from .nn import chromosome_indices

__all__ = ["CFMD"]

ARCHITECTURES = ("scatter", "shared_trunk")
ABLATION_FILLS = ("rna", "zero")
METHYLATION_DECODERS = ("regional", "pointwise")


class CFMD(SafeIOMixin, LatentImputerMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Complementary Foundation Model Distillation: impute a structured latent from RNA alone.

    Frozen teachers are distilled into designated, non-overlapping slices of a structured latent
    (:class:`~cfmd.LatentLayout`): Geneformer's sample embedding into the ``geneformer`` slices (pathway) by
    projector P_G; the expression-weighted ESM-2 structural fingerprint (learned temperature) into the ``esm``
    slices (residual) by projector P_E; the Regional Methylation Decoder fills ``regional_methylation`` slices;
    ``rna`` slices (proliferation) come from the RNA directly; ``zero`` slices stay exactly zero. Outputs are
    written by gradient-isolated scatter assignment into a detached zero latent, and an orthogonality loss
    decorrelates the P_G and P_E hidden layers.

    Training follows the paper: a strict patient-disjoint 80/10/10 split of the patients whose latent is
    observed (stored in :attr:`split_`; the ``cfmd_split`` column of :func:`~cfmd.tl.split_patients` when present),
    normalisation statistics from the training patients only, AdamW (lr 3e-4, weight decay 1e-4), 10 warm-up
    epochs then cosine annealing, batch 64, up to 200 epochs, early stopping (patience 40) on the validation
    loss with the best state restored.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    layout
        The latent's layout (default: read from ``mdata.uns[f"{latent_key}_layout"]``).
    use_geneformer, use_esm
        Teacher switches (ablations "no Geneformer" / "no ESM-2").
    ablation_fill
        What fills a switched-off teacher's slices: ``"rna"`` (a projector of the same shape on the standardised
        RNA expression) or ``"zero"``.
    ortho_weight
        Weight of the orthogonality loss (0: the "no ortho loss" ablation).
    architecture
        ``"scatter"`` (the method) or ``"shared_trunk"`` (dense shared-trunk ablation without isolation).
    tme_gene_list
        Genes of the regional decoder (default :func:`cfmd.datasets.tme_genes`, the Hallmark union).
    rna_head_gene_list
        Genes of the ``rna`` slices' head (default :func:`cfmd.datasets.proliferation_signature`).
    split_key
        ``mdata.obs`` column with a patient split: the default ``"cfmd_split"`` is used when present (a split is
        drawn otherwise), another name must be a column of ``mdata.obs``, ``None`` draws a split.
    split_fractions
        Train / validation / test fractions when no split column exists.
    seed
        Seed of the split (and, through ``scvi.settings.seed`` set by :func:`~cfmd.tl.impute`, of training).
    d_hidden, dropout
        Projector width and dropout.
    slice_weights
        Optional per-slice loss weights.
    methylation_decoder
        ``"regional"`` (the Regional Methylation Decoder) or ``"pointwise"`` (the point-wise MLP baseline on the
        same TME-gene inputs).
    masked_chromosomes
        Chromosomes removed from the methylation decoder's input in training and prediction (strict
        leave-one-chromosome-out audit), their positional embeddings ablated.
    rmd_kwargs
        Keyword arguments of the methylation decoder (default for the regional decoder: the paper's 2
        cross-attention layers, 4 heads, d 256, FF 1024, with a 64-wide per-gene MLP, a width the paper leaves
        open). Regional: ``d_gene``, ``d_model``, ``d_gene_hidden``, ``n_heads``, ``d_feedforward``, ``n_layers``,
        ``dropout``, ``shuffle_positions``, ``shuffle_seed`` and the variants ``gene_weights`` (gene-specific
        expression weights), ``norm_first`` (pre-norm blocks), ``positional_embeddings`` (see
        :class:`~cfmd.models.nn.RegionalMethylationDecoder`; all off/paper by default). Point-wise: ``d_hidden``,
        ``n_layers``, ``dropout``, ``features``. Any other key is an :class:`~cfmd.InvalidInputError` naming it.
    """

    _training_plan_cls = ImputerTrainingPlan
    _module_cls = CFMDModule
    _saved_attributes = ("layout",)

    def __init__(
        self,
        mdata: MuData,
        *,
        layout: LatentLayout | Mapping | None = None,
        use_geneformer: bool = True,
        use_esm: bool = True,
        ablation_fill: Literal["rna", "zero"] = "rna",
        ortho_weight: float = 1.0,
        architecture: Literal["scatter", "shared_trunk"] = "scatter",
        tme_gene_list: Sequence[str] | None = None,
        rna_head_gene_list: Sequence[str] | None = None,
        split_key: str | None = DEFAULT_SPLIT_KEY,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = DEFAULT_SEED,
        d_hidden: int = 512,
        dropout: float = 0.1,
        slice_weights: Mapping[str, float] | None = None,
        methylation_decoder: Literal["regional", "pointwise"] = "regional",
        masked_chromosomes: Sequence[str] | None = None,
        rmd_kwargs: Mapping | None = None,
    ) -> None:
        super().__init__(mdata)
        args = setup_args(self)
        rna_key, latent_key = args["rna_key"], args["latent_key"]
        check_choice(ablation_fill, "ablation_fill", ABLATION_FILLS)
        check_choice(architecture, "architecture", ARCHITECTURES)
        check_choice(methylation_decoder, "methylation_decoder", METHYLATION_DECODERS)
        rmd_kwargs = check_rmd_kwargs(rmd_kwargs, methylation_decoder)
        if masked_chromosomes is not None:
            masked_chromosomes = check_chromosomes(masked_chromosomes, "masked_chromosomes")
        layout_obj = resolve_layout(mdata, latent_key, layout)
        rna = mdata.mod[rna_key]
        symbols = (
            rna.var["gene_symbol"].astype(str).to_numpy() if "gene_symbol" in rna.var else rna.var_names.to_numpy()
        )
        strategies = set(layout_obj.strategies.values())
        unknown = sorted(strategies - set(STRATEGIES))
        if unknown:
            raise InvalidInputError(
                f"CFMD cannot fill slices with strategy {describe_examples(unknown)}; it fills {list(STRATEGIES)}. "
                "Set those slices' strategy to 'zero' (and fill them yourself) or to one of these."
            )

        gf_key = args.get("geneformer_key")
        d_geneformer = 0
        if "geneformer" in strategies and use_geneformer:
            if gf_key is None:
                raise InvalidInputError(
                    "The layout has 'geneformer' slices but no Geneformer embedding was registered: pass "
                    "`geneformer_key=` to CFMD.setup_mudata (see cfmd.pp.geneformer), or use_geneformer=False."
                )
            d_geneformer = int(rna.obsm[gf_key].shape[1])
        esm_embeddings, esm_genes = None, np.zeros(0, dtype=int)
        if "esm" in strategies and use_esm:
            emb_key = args.get("gene_embedding_key")
            if emb_key is None or emb_key not in rna.varm:
                raise InvalidInputError(
                    f"The layout has 'esm' slices but mdata[{rna_key!r}].varm has no gene embedding "
                    f"{emb_key!r}; compute one with cfmd.pp.esm_gene_embeddings or use_esm=False."
                )
            table = np.asarray(rna.varm[emb_key], dtype=np.float32)
            esm_genes = np.flatnonzero(np.isfinite(table).all(axis=1))
            if esm_genes.size == 0:
                raise InvalidInputError(f"mdata[{rna_key!r}].varm[{emb_key!r}] has no gene with a finite embedding.")
            esm_embeddings = table[esm_genes]
        tme_list = tme_genes() if tme_gene_list is None else list(tme_gene_list)
        tme_idx = np.flatnonzero(np.isin(symbols, tme_list))
        tme_chrom = np.zeros(0, dtype=int)
        if "regional_methylation" in strategies:
            if "chromosome" not in rna.var:
                raise InvalidInputError(
                    f"The regional methylation decoder needs mdata[{rna_key!r}].var['chromosome'] (see read_xena)."
                )
            tme_chrom = chromosome_indices(rna.var["chromosome"].to_numpy()[tme_idx], chromosomes=CHROMOSOMES)
            keep = tme_chrom >= 0
            tme_idx, tme_chrom = tme_idx[keep], tme_chrom[keep]
            if tme_idx.size == 0:
                raise InvalidInputError(f"No TME gene with a chromosome 1-22/X found in mdata[{rna_key!r}].")
        head_list = proliferation_signature() if rna_head_gene_list is None else list(rna_head_gene_list)
        head_idx = np.flatnonzero(np.isin(symbols, head_list))
        if "rna" in strategies and head_idx.size == 0:
            raise InvalidInputError(f"No gene of the RNA head's gene list found in mdata[{rna_key!r}].")

        self._module_kwargs = {
            "layout": layout_obj,
            "n_genes": rna.n_vars,
            "rna_scale": args["rna_scale"],
            "rna_head_genes": head_idx,
            "d_geneformer": d_geneformer,
            "esm_genes": esm_genes,
            "esm_embeddings": esm_embeddings,
            "tme_genes": tme_idx,
            "tme_chromosomes": tme_chrom,
            "use_geneformer": use_geneformer,
            "use_esm": use_esm,
            "ablation_fill": ablation_fill,
            "architecture": architecture,
            "ortho_weight": ortho_weight,
            "slice_weights": dict(slice_weights or {}),
            "d_hidden": d_hidden,
            "dropout": dropout,
            "methylation_decoder": methylation_decoder,
            "masked_chromosomes": masked_chromosomes,
            "rmd_kwargs": ({"d_gene_hidden": 64} if methylation_decoder == "regional" else {}) | rmd_kwargs,
        }
        self.module = CFMDModule(**self._module_kwargs)
        self.layout = layout_obj
        self.split_ = make_split(mdata, latent_key, split_key, split_fractions, seed)
        self._model_summary_string = (
            f"CFMD: {layout_obj.n_dims}-d latent; students {self.module.predicted_slices}; "
            f"teachers geneformer={use_geneformer} esm={use_esm}; architecture={architecture}; "
            f"split {', '.join(f'{k} {len(v)}' for k, v in self.split_.items())}"
        )
        layout = layout_obj.to_dict()  # stored in init_params_ as plain arrays
        tme_gene_list = list(tme_list)
        rna_head_gene_list = list(head_list)
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def _gene_roles(cls, module) -> dict[str, np.ndarray]:
        return {
            "RNA-head": module.rna_head_genes.cpu().numpy(),
            "ESM-2 fingerprint": module.esm_genes.cpu().numpy(),
            "regional-methylation (TME)": module.tme_genes.cpu().numpy(),
        }

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        latent_key: str = DEFAULT_LATENT_KEY,
        rna_key: str = DEFAULT_RNA_KEY,
        rna_layer: str | None = None,
        rna_scale: Literal["counts", "log2", "zscore"] = "counts",
        geneformer_key: str | None = DEFAULT_GENEFORMER_KEY,
        gene_embedding_key: str | None = DEFAULT_GENE_EMBEDDING_KEY,
        **kwargs,
    ) -> None:
        """Register a MuData: RNA, teacher embeddings and the target latent.

        Validates everything first; on error the MuData is unchanged.

        Parameters
        ----------
        mdata
            MuData with RNA for every patient.
        latent_key
            ``mdata.obsm`` key of the target latent (NaN rows: patients without it; those are imputed, never
            trained on). Its layout is read from ``mdata.uns[f"{latent_key}_layout"]`` unless given to the model.
        rna_key, rna_layer, rna_scale
            The RNA modality, its layer and declared scale (``"counts"``, ``"log2"``, ``"zscore"``).
        geneformer_key
            ``mdata[rna_key].obsm`` key of the Geneformer sample embedding (:func:`cfmd.pp.geneformer`);
            ``None`` when no slice uses Geneformer.
        gene_embedding_key
            ``mdata[rna_key].varm`` key of the per-gene ESM-2 embeddings (:func:`cfmd.pp.esm_gene_embeddings`,
            NaN rows for genes without one); ``None`` when no slice uses ESM-2.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        cls._setup_imputer(mdata, cls._get_setup_method_args(**locals()), **kwargs)
