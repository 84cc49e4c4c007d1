"""StructuredVAE: a structured multi-omics latent space as a scvi-tools model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import fields
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from .._constants import CHROMOSOMES, DEFAULT_RNA_KEY
from .._expression import log_normalise
from .._layout import LatentLayout
from .._logging import logger
from .._validation import (
    InvalidInputError,
    describe_examples,
    get_matrix,
)
from ..datasets import hallmark_gene_sets, proliferation_signature, tme_genes
from ._io import SafeIOMixin
from ._scvi_private import SETUP_ARGS_KEY, setup_args, unpaired_validation
from ._structured_vae_data import (
    DEFAULT_MODALITIES,
    _as_layout,
    _check_train_indices,
    _gene_moments,
    _gene_offset,
    _gene_symbols,
    _genomic_bins,
    _modality_key,
    _modality_means,
    _validate_setup,
    check_layout_roles,
)
from ._structured_vae_module import ModalitySpec, StructuredVAEModule
from ._unpaired import UnpairedMuDataManager, align_to_global, modality_rows
from .nn._structured_decoder import block_gene_set_mask

__all__ = ["DEFAULT_MODALITIES", "StructuredVAE"]


class StructuredVAE(SafeIOMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """A Product-of-Experts VAE whose latent slices mean what a :class:`~cfmd.LatentLayout` says.

    Every patient has RNA; other modalities (methylation, CNV, a non-transcriptomic context such as
    mutations) may cover only some patients. The posterior is a Product of Experts over the modalities a
    patient has, with a standard-normal prior expert always present, so RNA-only patients get the RNA-only
    posterior (the "PoE VAE RNA-only" baseline of the paper). Semantics come from structure:

    - each block of the pathway slice (one per gene set, e.g. 50 Hallmark pathways x 4 dims) decodes only the
      genes of its set (masked linear decoder);
    - the proliferation dimension is supervised on a proliferation score computed from RNA (the shipped
      signature) and decodes the signature genes;
    - each modality's slice (``meth``, ``cnv``, ``ctx`` by default) is the only input of that modality's
      decoder, and that modality's expert informs only that slice; the meth slice also acts on the TME genes'
      expression (regional programs);
    - the residual slice decodes all genes: RNA variation the rest does not carry.

    Slices are **owned** (``slice_ownership=True``, the default): in the joint posterior, the slice of an observed
    modality combines only that modality's expert and the prior, so RNA cannot overwrite it; the RNA expert's
    prediction of an owned slice is used only when its modality is missing, and is always available as the
    RNA-only posterior (the cross-modal baseline). Without ownership the RNA expert, which sees far more
    features, dominates the product on every slice: on real TCGA cohorts the RNA-only posterior then equals the
    joint one (R^2 0.99-1.00 per slice) and the "meth" slice is a function of RNA (see ``docs/concepts.md``).

    Training maximises the ELBO of the joint posterior plus ``rna_only_weight`` times the ELBO of the
    RNA-only posterior reconstructing every observed modality (so the RNA expert learns to stand in for
    missing modalities), plus, with ownership, ``rna_match_weight`` times a stop-gradient KL from each observed
    owned slice's posterior to the RNA-only posterior of that slice.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    layout
        The latent layout (default :meth:`LatentLayout.cfmd328 <cfmd.LatentLayout.cfmd328>`).
    gene_sets
        Gene sets of the pathway blocks, ``{block label: [gene symbols]}``; default: the shipped Hallmark sets
        (labels must match the pathway slice's ``groups``).
    pathway_slice, prolif_slice, residual_slice, regional_methylation_slice
        Names of the slices with those roles (``None`` disables a role). The regional-methylation slice also
        acts on the TME genes' expression through per-chromosome regional programs (needs
        ``var['chromosome']``).
    copy_number_slice
        Slice whose copy number also shifts expression (dosage) of the genes in each genomic bin (needs
        ``var['chromosome']`` and ``var['start']``); ``None`` disables the dosage path.
    dosage_bin_size
        Width (bp) of the genomic bins of the dosage path.
    n_hidden, n_layers, dropout_rate
        Encoder architecture (per expert).
    rna_only_weight
        Weight of the RNA-only ELBO term.
    prolif_weight
        Weight of the proliferation supervision.
    slice_ownership
        Each modality owns its slice in the joint posterior (see above). ``False`` restores the product in which
        the RNA expert covers every dimension (kept for comparison).
    rna_match_weight
        Weight of the stop-gradient KL that trains the RNA expert to predict the owned slices (used with
        ``slice_ownership`` only).
    train_indices
        Positions in ``mdata.obs`` of the patients the model will be trained on (:func:`~cfmd.tl.fit_latent` passes
        its training split). Every statistic taken from the data (gene means and SDs, the decoder's gene-bias
        initialisation, the proliferation-score standardisation, the modality means) is computed on these
        patients only, so held-out patients never influence the model. Default: every patient (transductive).
        The statistics are module buffers: a loaded model restores them from its saved state.
    """

    _module_cls = StructuredVAEModule
    _saved_attributes = ("layout", "slice_modalities", "likelihoods")
    _gene_mean_buffer = "gene_means"

    def __init__(
        self,
        mdata: MuData,
        *,
        layout: LatentLayout | Mapping | None = None,
        gene_sets: Mapping[str, Sequence[str]] | None = None,
        pathway_slice: str | None = "pathway",
        prolif_slice: str | None = "prolif",
        residual_slice: str | None = "residual",
        regional_methylation_slice: str | None = "meth",
        copy_number_slice: str | None = "cnv",
        dosage_bin_size: int = 20_000_000,
        n_hidden: int = 256,
        n_layers: int = 1,
        dropout_rate: float = 0.0,
        rna_only_weight: float = 0.5,
        prolif_weight: float = 5.0,
        slice_ownership: bool = True,
        rna_match_weight: float = 1.0,
        train_indices: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(slice_ownership, bool | np.bool_):
            raise InvalidInputError(f"`slice_ownership` must be True or False; got {slice_ownership!r}.")
        if isinstance(rna_match_weight, bool) or not isinstance(rna_match_weight, int | float | np.number):
            raise InvalidInputError(f"`rna_match_weight` must be a non-negative number; got {rna_match_weight!r}.")
        if not np.isfinite(rna_match_weight) or rna_match_weight < 0:
            raise InvalidInputError(f"`rna_match_weight` must be a non-negative number; got {rna_match_weight!r}.")
        super().__init__(mdata)
        layout_obj = _as_layout(layout)
        registered = setup_args(self)
        rna_key, rna_layer = registered["rna_key"], registered["rna_layer"]
        slice_modalities = dict(registered["modalities"])
        likelihoods = dict(registered["likelihoods"])  # resolved at setup
        check_layout_roles(
            layout_obj,
            slice_modalities,
            {"pathway_slice": pathway_slice, "prolif_slice": prolif_slice, "residual_slice": residual_slice},
        )

        rna = mdata.mod[rna_key]
        symbols = _gene_symbols(rna)
        train_rows = _check_train_indices(train_indices, mdata.n_obs)
        # statistics from the training patients only (rows of the global obs; RNA covers every patient)
        X = align_to_global(mdata, rna_key, get_matrix(rna, rna_layer))[train_rows]
        rna_scale = registered["rna_scale"]
        gene_means, gene_stds = _gene_moments(X, rna_scale)
        gene_offset = _gene_offset(X, rna_scale)

        # pathway blocks -> gene sets
        if pathway_slice is not None:
            pathway = layout_obj[pathway_slice]
            sets = dict(gene_sets) if gene_sets is not None else hallmark_gene_sets()
            groups = list(pathway.groups) or list(sets)
            missing = [g for g in groups if g not in sets]
            if missing:
                raise InvalidInputError(
                    f"Pathway blocks {describe_examples(missing)} have no gene set; pass `gene_sets=` with these labels."
                )
            if pathway.dim % len(groups):
                raise InvalidInputError(
                    f"The pathway slice's {pathway.dim} dims do not split into {len(groups)} blocks."
                )
            coverage = pd.DataFrame(
                {
                    "n_genes": [len(sets[g]) for g in groups],
                    "n_mapped": [len(set(sets[g]) & set(symbols)) for g in groups],
                },
                index=pd.Index(groups, name="gene_set"),
            )
            coverage["coverage"] = coverage["n_mapped"] / coverage["n_genes"]
            empty = coverage.index[coverage["n_mapped"] == 0].tolist()
            if empty:
                raise InvalidInputError(
                    f"Pathway block(s) {describe_examples(empty)} have no gene in mdata[{rna_key!r}] "
                    f"(matched on {'var[gene_symbol]' if 'gene_symbol' in rna.var else 'var_names'})."
                )
            pathway_mask = block_gene_set_mask(symbols, [sets[g] for g in groups], pathway.dim // len(groups))
            pathway_range = (pathway.start, pathway.stop)
            logger.info(
                "StructuredVAE: %d gene sets mapped onto %d genes (median coverage %.0f%%).",
                len(groups),
                int(pathway_mask.any(0).sum()),
                100 * coverage["coverage"].median(),
            )
        else:
            coverage = pd.DataFrame(columns=["n_genes", "n_mapped", "coverage"])
            pathway_mask, pathway_range = np.zeros((0, len(symbols)), dtype=bool), (0, 0)
        self.gene_set_coverage_ = coverage

        prolif_genes = np.flatnonzero(np.isin(symbols, proliferation_signature()))
        if prolif_slice is not None and prolif_genes.size == 0:
            raise InvalidInputError(f"No proliferation-signature gene found in mdata[{rna_key!r}].")
        standardised_scores = (
            (log_normalise(X, rna_scale)[:, prolif_genes] - gene_means[prolif_genes]) / gene_stds[prolif_genes]
        ).mean(1)
        prolif_score_mean = float(np.mean(standardised_scores)) if prolif_genes.size else 0.0
        prolif_score_std = float(np.std(standardised_scores)) + 1e-6 if prolif_genes.size else 1.0

        tme_mask = np.isin(symbols, tme_genes())
        chromosomes = rna.var["chromosome"].astype(str).to_numpy() if "chromosome" in rna.var else None
        regional_slice, gene_chromosome = None, np.full(len(symbols), -1)
        dosage_slice, gene_bin = None, _genomic_bins(rna.var, bin_size=dosage_bin_size)
        specs, modality_means = [], []
        for slice_name, mod_name in slice_modalities.items():
            s = layout_obj[slice_name]
            n_features = mdata.mod[mod_name].n_vars
            specs.append(ModalitySpec(_modality_key(slice_name), s.start, s.stop, n_features, likelihoods[mod_name]))
            modality_means.append(_modality_means(mdata, mod_name, train_rows))
            if slice_name == regional_methylation_slice and chromosomes is not None:
                regional_slice = (s.start, s.stop)
                gene_chromosome = np.where(tme_mask, pd.Index(CHROMOSOMES).get_indexer(chromosomes), -1)
            if slice_name == copy_number_slice and (gene_bin >= 0).any():
                dosage_slice = (s.start, s.stop)

        n_cancer_types = 0
        if registered.get("cancer_type_key") is not None:
            n_cancer_types = len(
                self.adata_manager.get_state_registry("cancer_type")[fields.CategoricalObsField.CATEGORICAL_MAPPING_KEY]
            )
        self._module_kwargs = {
            "n_genes": len(symbols),
            "n_latent": layout_obj.n_dims,
            "rna_likelihood": "nb" if rna_scale == "counts" else "normal",
            "gene_means": gene_means,
            "gene_stds": gene_stds,
            "gene_offset": gene_offset,
            "pathway_slice": pathway_range,
            "pathway_mask": pathway_mask,
            "prolif_index": layout_obj[prolif_slice].start if prolif_slice is not None else None,
            "prolif_genes": prolif_genes,
            "prolif_score_mean": prolif_score_mean,
            "prolif_score_std": prolif_score_std,
            "residual_slice": (layout_obj[residual_slice].start, layout_obj[residual_slice].stop)
            if residual_slice
            else None,
            "regional_slice": regional_slice,
            "gene_chromosome": gene_chromosome,
            "n_chromosomes": len(CHROMOSOMES),
            "dosage_slice": dosage_slice,
            "gene_bin": gene_bin,
            "modalities": specs,
            "modality_means": modality_means,
            "n_cancer_types": n_cancer_types,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "dropout_rate": dropout_rate,
            "rna_only_weight": rna_only_weight,
            "prolif_weight": prolif_weight if prolif_slice is not None else 0.0,
            "slice_ownership": bool(slice_ownership),
            "rna_match_weight": float(rna_match_weight),
        }
        self.module = StructuredVAEModule(**self._module_kwargs)
        self.layout = layout_obj
        self.slice_modalities = slice_modalities
        self.likelihoods = likelihoods
        self._model_summary_string = (
            f"StructuredVAE: {layout_obj.n_dims}-d latent ({', '.join(layout_obj.names)}), RNA {rna_scale} "
            f"({len(symbols)} genes), modalities {slice_modalities}, "
            f"{'owned slices' if slice_ownership else 'no slice ownership'}"
        )
        layout = layout_obj.to_dict()  # stored in init_params_ as plain arrays
        # the statistics live in module buffers (saved with the state): a loaded model does not recompute them
        train_indices = None
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(cls, adata, **kwargs):
        """Not supported: StructuredVAE needs a MuData (use :meth:`setup_mudata`)."""
        raise NotImplementedError("StructuredVAE works on MuData; use `StructuredVAE.setup_mudata(mdata, ...)`.")

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        rna_key: str = DEFAULT_RNA_KEY,
        rna_layer: str | None = None,
        rna_scale: Literal["counts", "log2", "zscore"] = "counts",
        modalities: Mapping[str, str] | None = None,
        likelihoods: Mapping[str, str] | None = None,
        cancer_type_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register a (possibly unpaired) MuData with the model.

        Validates everything before registering; on error nothing is changed.

        Parameters
        ----------
        mdata
            MuData whose ``rna_key`` modality holds every patient of ``mdata.obs``.
        rna_key
            Modality with RNA.
        rna_layer
            Layer of ``mdata[rna_key]`` with the RNA values (default ``.X``).
        rna_scale
            Declared scale of the RNA values: ``"counts"`` (raw counts; negative-binomial likelihood with the
            observed library size), ``"log2"`` (log2(x + 1) of normalised expression, e.g. UCSC Xena RSEM) or
            ``"zscore"`` (standardised / centred log expression); the latter two use a Gaussian likelihood. A
            declaration the values contradict is an error.
        modalities
            ``{latent slice: modality}`` for the non-RNA modalities (default ``{"meth": "meth", "cnv": "cnv",
            "ctx": "mut"}``). Each modality may cover a subset of the patients.
        likelihoods
            ``{modality: "beta" | "normal" | "bernoulli"}``; by default taken from the modality's ``uns['scale']``
            (``beta``, ``binary``, ``log2_ratio``, ...) or inferred from its values.
        cancer_type_key
            Optional ``mdata.obs`` column to condition the decoders on (like a batch covariate).
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        modalities = dict(DEFAULT_MODALITIES if modalities is None else modalities)
        likelihoods = _validate_setup(
            mdata, rna_key, rna_layer, rna_scale, modalities, dict(likelihoods or {}), cancer_type_key
        )
        setup_method_args = cls._get_setup_method_args(**locals())
        cls._register_fields(mdata, setup_method_args, **kwargs)

    @classmethod
    def _register_fields(cls, mdata, setup_method_args, source_registry=None, **kwargs) -> None:
        """Register ``mdata`` (with the saved registry when loading: other modalities may be placeholders)."""
        args = setup_method_args[SETUP_ARGS_KEY]
        rna_key, rna_layer, rna_scale = args["rna_key"], args["rna_layer"], args["rna_scale"]
        modalities, cancer_type_key = args["modalities"], args.get("cancer_type_key")
        if source_registry is not None and cancer_type_key is not None and cancer_type_key not in mdata.obs:
            raise InvalidInputError(
                f"mdata.obs has no column {cancer_type_key!r}, which the saved StructuredVAE conditions on "
                f"(columns: {describe_examples(list(mdata.obs))})."
            )
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=rna_key, is_count_data=rna_scale == "counts", mod_required=True
            )
        ]
        for slice_name, mod_name in modalities.items():
            mudata_fields.append(
                fields.MuDataLayerField(
                    _modality_key(slice_name), None, mod_key=mod_name, is_count_data=False, mod_required=True
                )
            )
        if cancer_type_key is not None:
            mudata_fields.append(fields.MuDataCategoricalObsField("cancer_type", cancer_type_key))
        manager = UnpairedMuDataManager(
            fields=mudata_fields,
            setup_method_args=setup_method_args,
            validation_checks=unpaired_validation(),
        )
        if source_registry is not None:
            kwargs["source_registry"] = source_registry
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    def _modality_features(cls, registry: dict) -> dict[str, np.ndarray]:
        state = registry["field_registries"]
        return {
            mod: state[_modality_key(slice_name)]["state_registry"]["column_names"]
            for slice_name, mod in registry[SETUP_ARGS_KEY]["modalities"].items()
        }

    @classmethod
    def _gene_roles(cls, module) -> dict[str, np.ndarray]:
        return {"proliferation-signature": module.prolif_genes.cpu().numpy()}

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def get_latent_representation(
        self,
        mdata: MuData | None = None,
        *,
        modalities: Literal["all"] | Sequence[str] = "all",
        give_mean: bool = True,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Posterior latent of every patient.

        Parameters
        ----------
        mdata
            MuData with the same structure as the training data (default: the training data).
        modalities
            ``"all"``: every modality a patient has (the joint posterior); or a list of modality names whose
            experts may contribute, e.g. ``["rna"]`` for the RNA-only posterior. RNA always contributes.
        give_mean
            Return the posterior mean (else one sample).
        indices
            Patients (positions in ``mdata.obs``) to return; default all.
        batch_size
            Minibatch size.

        Returns
        -------
        ``(n_patients, n_dims)`` array in layout order.
        """
        self._check_if_trained(warn=False)
        mdata = self._validate_deployment(self._deployment_data(mdata))
        use = self._expert_keys(modalities)
        loader = self._make_data_loader(adata=mdata, indices=indices, batch_size=batch_size, shuffle=False)
        out = []
        for tensors in loader:
            inference_inputs = self.module._get_inference_input(tensors)
            outputs = self.module.inference(**inference_inputs, use_modalities=use)
            if give_mean:
                out.append(outputs["qz_m"].cpu())
            else:
                out.append((outputs["qz_m"] + outputs["qz_v"].sqrt() * torch.randn_like(outputs["qz_v"])).cpu())
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def get_reconstruction(
        self,
        mdata: MuData | None = None,
        *,
        modality: str = "rna",
        from_modalities: Literal["all"] | Sequence[str] = "all",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Expected values of one modality decoded from the posterior mean.

        Parameters
        ----------
        mdata
            MuData (default: the training data).
        modality
            ``"rna"`` (normalised expression: proportions for counts, values for log2/z-scores) or one of the
            registered modalities (beta means, Gaussian means, mutation probabilities).
        from_modalities
            Experts used for the posterior (as in :meth:`get_latent_representation`).
        indices, batch_size
            As in :meth:`get_latent_representation`.

        Returns
        -------
        ``(n_patients, n_features)`` array.
        """
        self._check_if_trained(warn=False)
        mdata = self._validate_deployment(self._deployment_data(mdata))
        rna_key = setup_args(self)["rna_key"]
        if modality != rna_key and modality not in self.slice_modalities.values():
            raise InvalidInputError(
                f"`modality` must be {rna_key!r} or one of {list(self.slice_modalities.values())}; got {modality!r}."
            )
        use = self._expert_keys(from_modalities)
        loader = self._make_data_loader(adata=mdata, indices=indices, batch_size=batch_size, shuffle=False)
        out = []
        for tensors in loader:
            inf = self.module.inference(**self.module._get_inference_input(tensors), use_modalities=use)
            cancer_type = tensors.get("cancer_type") if self.module.n_cancer_types else None
            z = inf["qz_m"]
            if modality == rna_key:
                eta = self.module.decode_rna(z, cancer_type)
                out.append((torch.softmax(eta, -1) if self.module.rna_likelihood == "nb" else eta).cpu())
                continue
            slice_name = next(s for s, m in self.slice_modalities.items() if m == modality)
            key = _modality_key(slice_name)
            raw = self.module.decode_modality(key, z, cancer_type)
            likelihood = next(s.likelihood for s in self.module.modalities if s.registry_key == key)
            out.append((raw if likelihood == "normal" else torch.sigmoid(raw)).cpu())
        return torch.cat(out).numpy()

    def patients_with_all_modalities(self, mdata: MuData | None = None) -> np.ndarray:
        """Boolean mask over ``mdata.obs``: patients who have every registered modality."""
        mdata = self._validate_deployment(self._deployment_data(mdata))
        mask = np.ones(mdata.n_obs, dtype=bool)
        for mod_name in self.slice_modalities.values():
            mask &= modality_rows(mdata, mod_name) >= 0
        return mask

    def _expert_keys(self, modalities) -> list[str] | None:
        if isinstance(modalities, str):
            if modalities == "all":
                return None
            modalities = [modalities]
        rna_key = setup_args(self)["rna_key"]
        known = {mod: slice_name for slice_name, mod in self.slice_modalities.items()}
        unknown = [m for m in modalities if m != rna_key and m not in known]
        if unknown:
            raise InvalidInputError(
                f"`modalities` has unknown modality {describe_examples(unknown)}; expected 'all' or some of "
                f"{[rna_key, *known]}."
            )
        return [_modality_key(known[m]) for m in modalities if m in known]
