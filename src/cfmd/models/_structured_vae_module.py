"""The torch module of :class:`cfmd.models.StructuredVAE`: Product-of-Experts encoder, structured decoders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from .._expression import log_normalise
from .nn._structured_decoder import MaskedLinear, RegionalGeneDecoder

#: Likelihoods available for non-RNA modalities.
MODALITY_LIKELIHOODS = ("beta", "normal", "bernoulli")
_LOGVAR_RANGE = (-10.0, 8.0)


@dataclass(frozen=True)
class ModalitySpec:
    """How one non-RNA modality enters the model.

    Parameters
    ----------
    registry_key
        Key of the modality's matrix in the batch tensors.
    slice_start, slice_stop
        The latent slice the modality's expert informs and its decoder reads.
    n_features
        Number of features.
    likelihood
        One of :data:`MODALITY_LIKELIHOODS`.
    """

    registry_key: str
    slice_start: int
    slice_stop: int
    n_features: int
    likelihood: str


def _mlp(n_in: int, n_hidden: int, n_layers: int, dropout_rate: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else n_hidden, n_hidden), nn.LayerNorm(n_hidden), nn.GELU()]
        if dropout_rate > 0:
            layers.append(nn.Dropout(dropout_rate))
    return nn.Sequential(*layers)


class GaussianExpert(nn.Module):
    """An encoder giving a diagonal Gaussian over ``n_out`` latent dimensions (mean, log-variance)."""

    def __init__(self, n_in: int, n_out: int, *, n_hidden: int, n_layers: int, dropout_rate: float) -> None:
        super().__init__()
        self.body = _mlp(n_in, n_hidden, n_layers, dropout_rate)
        self.mean = nn.Linear(n_hidden, n_out)
        self.log_var = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, n_in)`` -> mean and log-variance, each ``(batch, n_out)``."""
        h = self.body(x)
        return self.mean(h), self.log_var(h).clamp(*_LOGVAR_RANGE)


def product_of_experts(
    means: Sequence[torch.Tensor], log_vars: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine Gaussian experts with a standard-normal prior expert that is always present.

    Parameters
    ----------
    means, log_vars
        Per expert ``(batch, n_latent)`` tensors (an expert that does not cover a dimension passes any value
        there with weight 0).
    weights
        Per expert ``(batch, n_latent)`` 0/1 tensors: 1 where the expert is present and covers the dimension.

    Returns
    -------
    Posterior mean and variance, each ``(batch, n_latent)``.
    """
    precision = torch.ones_like(means[0])
    weighted_mean = torch.zeros_like(means[0])
    for mean, log_var, weight in zip(means, log_vars, weights):
        expert_precision = weight * torch.exp(-log_var)
        precision = precision + expert_precision
        weighted_mean = weighted_mean + expert_precision * mean
    return weighted_mean / precision, 1.0 / precision


class StructuredVAEModule(BaseModuleClass):
    """Product-of-Experts VAE whose latent slices are given meaning by structured decoders.

    Parameters
    ----------
    n_genes
        Number of RNA features.
    n_latent
        Width of the latent (the layout's ``n_dims``).
    rna_likelihood
        ``"nb"`` (raw counts, with observed library size) or ``"normal"`` (log2 / z-scored expression).
    gene_means, gene_stds
        Per-gene mean and standard deviation of the (log-normalised) RNA input, used to standardise the
        encoder input and the proliferation score.
    gene_offset
        Initial per-gene decoder offset: log mean expression proportion (NB) or mean value (Gaussian), so
        training starts from the right baseline instead of spending thousands of steps learning it.
    pathway_slice
        ``(start, stop)`` of the pathway slice.
    pathway_mask
        ``(pathway dims, n_genes)`` boolean: the genes each pathway dimension may act on (its gene set).
    prolif_index
        Latent dimension of the proliferation slice (``None`` to disable its supervision).
    prolif_genes
        Indices of the proliferation-signature genes.
    prolif_score_mean, prolif_score_std
        Standardisation of the proliferation score (the supervision target of the prolif dimension).
    residual_slice
        ``(start, stop)`` of the residual slice (decodes all genes), or ``None``.
    regional_slice
        ``(start, stop)`` of the slice that also acts on RNA through per-chromosome regional programs of the
        TME genes (the meth slice), or ``None``.
    gene_chromosome
        ``(n_genes,)`` chromosome index of each TME gene (``-1`` for other genes), for ``regional_slice``.
    n_chromosomes
        Number of chromosomes.
    dosage_slice
        ``(start, stop)`` of the copy-number slice, which also shifts the expression of each gene through the
        copy number of its genomic bin (dosage), or ``None``.
    gene_bin
        ``(n_genes,)`` genomic-bin index of each gene (``-1``: unknown position), for ``dosage_slice``.
    modalities
        The non-RNA modalities (:class:`ModalitySpec`).
    modality_means
        Per modality, per-feature means used to centre the expert input (NaN -> 0 after centring).
    n_cancer_types
        Number of cancer types for optional decoder conditioning (0 = none).
    n_hidden, n_layers, dropout_rate
        Encoder architecture.
    rna_only_weight
        Weight of the RNA-only ELBO term (reconstructing every observed modality from the RNA-only
        posterior), which trains the RNA expert to stand in for missing modalities.
    prolif_weight
        Weight of the proliferation supervision (squared error, per patient).
    nonnegative_pathways
        Constrain pathway-block decoder weights to be non-negative (each block co-regulates its gene set).
    slice_ownership
        Each modality owns its slice: in the joint posterior, the dimensions of a slice whose modality is observed
        combine only that modality's expert and the prior; the RNA expert's precision on them counts only when
        the owner is missing (or not allowed, e.g. in the RNA-only posterior). ``False``: the RNA expert joins
        the product on every dimension (the behaviour before ownership; the default here so that model folders
        saved before the option load unchanged; :class:`~cfmd.models.StructuredVAE` passes ``True``).
    rna_match_weight
        With ``slice_ownership``, weight of a stop-gradient KL from the owner-determined joint posterior of each
        owned slice to the RNA-only posterior of that slice (patients with the owner only), which trains the RNA
        expert to predict the owned slices it no longer writes into.
    """

    def __init__(
        self,
        *,
        n_genes: int,
        n_latent: int,
        rna_likelihood: str,
        gene_means: np.ndarray,
        gene_stds: np.ndarray,
        gene_offset: np.ndarray,
        pathway_slice: tuple[int, int],
        pathway_mask: np.ndarray,
        prolif_index: int | None,
        prolif_genes: np.ndarray,
        prolif_score_mean: float,
        prolif_score_std: float,
        residual_slice: tuple[int, int] | None,
        regional_slice: tuple[int, int] | None,
        gene_chromosome: np.ndarray,
        n_chromosomes: int,
        dosage_slice: tuple[int, int] | None,
        gene_bin: np.ndarray,
        modalities: Sequence[ModalitySpec],
        modality_means: Sequence[np.ndarray],
        n_cancer_types: int = 0,
        n_hidden: int = 256,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        rna_only_weight: float = 0.5,
        prolif_weight: float = 5.0,
        nonnegative_pathways: bool = True,
        slice_ownership: bool = False,
        rna_match_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.slice_ownership = bool(slice_ownership)
        self.rna_match_weight = float(rna_match_weight)
        self.n_genes, self.n_latent = n_genes, n_latent
        self.rna_likelihood = rna_likelihood
        self.modalities = list(modalities)
        self.n_cancer_types = n_cancer_types
        self.rna_only_weight, self.prolif_weight = rna_only_weight, prolif_weight
        self.prolif_index = prolif_index
        self.register_buffer("gene_means", torch.as_tensor(gene_means, dtype=torch.float32))
        self.register_buffer("gene_stds", torch.as_tensor(gene_stds, dtype=torch.float32))
        self.register_buffer("prolif_genes", torch.as_tensor(prolif_genes, dtype=torch.long))
        self.register_buffer("prolif_score_mean", torch.tensor(float(prolif_score_mean), dtype=torch.float32))
        self.register_buffer("prolif_score_std", torch.tensor(float(prolif_score_std), dtype=torch.float32))
        for spec, means in zip(self.modalities, modality_means):
            self.register_buffer(f"means_{spec.registry_key}", torch.as_tensor(means, dtype=torch.float32))

        # experts: RNA covers the whole latent; each other modality covers only its slice
        expert_kwargs = {"n_hidden": n_hidden, "n_layers": n_layers, "dropout_rate": dropout_rate}
        self.rna_expert = GaussianExpert(n_genes, n_latent, **expert_kwargs)
        self.modality_experts = nn.ModuleDict(
            {
                spec.registry_key: GaussianExpert(spec.n_features, spec.slice_stop - spec.slice_start, **expert_kwargs)
                for spec in self.modalities
            }
        )

        # RNA decoder: sum of slice-specific linear maps onto genes
        self.pathway_slice = tuple(pathway_slice)
        self.pathway_decoder = MaskedLinear(pathway_mask, init_scale=0.05, nonnegative=nonnegative_pathways)
        self.regional_slice = tuple(regional_slice) if regional_slice is not None else None
        if self.regional_slice is not None:
            self.regional_decoder = RegionalGeneDecoder(
                self.regional_slice[1] - self.regional_slice[0], gene_chromosome, n_chromosomes
            )
        if prolif_index is not None:
            prolif_mask = np.zeros((1, n_genes), dtype=bool)
            prolif_mask[0, np.asarray(prolif_genes)] = True
            self.prolif_decoder = MaskedLinear(prolif_mask)
        self.dosage_slice = tuple(dosage_slice) if dosage_slice is not None else None
        if self.dosage_slice is not None:
            self.dosage_decoder = RegionalGeneDecoder(
                self.dosage_slice[1] - self.dosage_slice[0], gene_bin, int(np.max(gene_bin)) + 1
            )
        self.residual_slice = tuple(residual_slice) if residual_slice is not None else None
        if self.residual_slice is not None:
            self.residual_decoder = nn.Linear(self.residual_slice[1] - self.residual_slice[0], n_genes, bias=False)
            nn.init.normal_(self.residual_decoder.weight, std=0.01)
        self.gene_bias = nn.Parameter(torch.as_tensor(gene_offset, dtype=torch.float32).clone())
        if n_cancer_types:
            self.cancer_type_rna = nn.Embedding(n_cancer_types, n_genes)
            nn.init.zeros_(self.cancer_type_rna.weight)
        if rna_likelihood == "nb":
            self.log_theta = nn.Parameter(torch.full((n_genes,), np.log(10.0), dtype=torch.float32))
        else:
            self.log_sigma = nn.Parameter(torch.zeros(n_genes))

        # modality decoders read only their slice
        self.modality_decoders = nn.ModuleDict(
            {
                spec.registry_key: nn.Linear(spec.slice_stop - spec.slice_start, spec.n_features)
                for spec in self.modalities
            }
        )
        self.modality_dispersion = nn.ParameterDict(
            {
                spec.registry_key: nn.Parameter(
                    torch.full((spec.n_features,), 2.0 if spec.likelihood == "beta" else 0.0)
                )
                for spec in self.modalities
                if spec.likelihood in ("beta", "normal")
            }
        )
        if n_cancer_types:
            self.cancer_type_modalities = nn.ModuleDict(
                {spec.registry_key: nn.Embedding(n_cancer_types, spec.n_features) for spec in self.modalities}
            )
            for emb in self.cancer_type_modalities.values():
                nn.init.zeros_(emb.weight)

    # ------------------------------------------------------------------ inputs
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            "x": tensors[REGISTRY_KEYS.X_KEY],
            "modality_data": {spec.registry_key: tensors[spec.registry_key] for spec in self.modalities},
        }

    def _get_generative_input(self, tensors: dict[str, torch.Tensor], inference_outputs: dict) -> dict:
        cancer_type = tensors.get("cancer_type") if self.n_cancer_types else None
        return {
            "z": inference_outputs["z"],
            "z_rna": inference_outputs["z_rna"],
            "library": inference_outputs["library"],
            "cancer_type": cancer_type,
        }

    def rna_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised (log-normalised) expression and library sizes for a batch of RNA rows."""
        if self.rna_likelihood == "nb":
            library = x.sum(dim=1, keepdim=True).clamp_min(1.0)
            log_expression = log_normalise(x, "counts")
        else:
            library = torch.ones_like(x[:, :1])
            log_expression = x
        return (log_expression - self.gene_means) / self.gene_stds, library

    def proliferation_score(self, standardised: torch.Tensor) -> torch.Tensor:
        """Standardised proliferation score: mean standardised expression of the signature genes, ``(batch,)``."""
        score = standardised[:, self.prolif_genes].mean(dim=1)
        return (score - self.prolif_score_mean) / self.prolif_score_std

    def _modality_input(self, key: str, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        observed = ~torch.isnan(data)
        present = observed.any(dim=1)
        centred = torch.where(observed, data - getattr(self, f"means_{key}"), torch.zeros_like(data))
        return centred, observed, present

    # ------------------------------------------------------------------ inference / generative
    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        modality_data: dict[str, torch.Tensor],
        *,
        use_modalities: Sequence[str] | None = None,
        n_samples: int = 1,
    ) -> dict:
        """Posterior over the latent from RNA plus every other modality a patient has.

        Parameters
        ----------
        x
            ``(batch, n_genes)`` RNA.
        modality_data
            ``{registry key: (batch, n_features)}`` with NaN rows for patients without the modality.
        use_modalities
            Registry keys of the non-RNA experts allowed to contribute (default: all). RNA always contributes.
        n_samples
            Kept for scvi-tools compatibility (one sample is drawn).

        Returns
        -------
        ``qz_m``/``qz_v`` (joint posterior), ``qz_rna_m``/``qz_rna_v`` (RNA-only posterior), samples ``z``
        and ``z_rna``, ``library``, the standardised RNA ``rna_standardised``, per-modality presence
        masks ``present`` and ``owned`` (``(batch, n_latent)`` 0/1: dimensions an observed, allowed modality owns,
        on which the RNA expert is left out of the joint posterior when ``slice_ownership``).
        """
        standardised, library = self.rna_features(x)
        rna_mean, rna_log_var = self.rna_expert(standardised)
        ones = torch.ones_like(rna_mean)
        owned = torch.zeros_like(rna_mean)
        means, log_vars, weights = [rna_mean], [rna_log_var], [ones]
        present_masks = {}
        allowed = None if use_modalities is None else set(use_modalities)
        for spec in self.modalities:
            centred, _, present = self._modality_input(spec.registry_key, modality_data[spec.registry_key])
            present_masks[spec.registry_key] = present
            if allowed is not None and spec.registry_key not in allowed:
                continue
            mean_s, log_var_s = self.modality_experts[spec.registry_key](centred)
            mean = torch.zeros_like(rna_mean)
            log_var = torch.zeros_like(rna_mean)
            weight = torch.zeros_like(rna_mean)
            mean[:, spec.slice_start : spec.slice_stop] = mean_s
            log_var[:, spec.slice_start : spec.slice_stop] = log_var_s
            weight[:, spec.slice_start : spec.slice_stop] = present.float()[:, None]
            owned[:, spec.slice_start : spec.slice_stop] = present.float()[:, None]
            means.append(mean)
            log_vars.append(log_var)
            weights.append(weight)
        if self.slice_ownership:  # the owner (and the prior) alone determine an observed owned slice
            weights[0] = ones - owned
        qz_m, qz_v = product_of_experts(means, log_vars, weights)
        qz_rna_m, qz_rna_v = product_of_experts(means[:1], log_vars[:1], weights[:1])
        z = qz_m + qz_v.sqrt() * torch.randn_like(qz_m)
        z_rna = qz_rna_m + qz_rna_v.sqrt() * torch.randn_like(qz_rna_m)
        return {
            "qz_m": qz_m,
            "qz_v": qz_v,
            "qz_rna_m": qz_rna_m,
            "qz_rna_v": qz_rna_v,
            "z": z,
            "z_rna": z_rna,
            "library": library,
            "rna_standardised": standardised,
            "present": present_masks,
            "owned": owned,
        }

    def decode_rna(self, z: torch.Tensor, cancer_type: torch.Tensor | None = None) -> torch.Tensor:
        """Log-scale RNA decoder output ``(batch, n_genes)`` (softmax logits for NB, means for Gaussian)."""
        eta = self.gene_bias + self.pathway_decoder(z[:, self.pathway_slice[0] : self.pathway_slice[1]])
        if self.prolif_index is not None:
            eta = eta + self.prolif_decoder(z[:, self.prolif_index : self.prolif_index + 1])
        if self.residual_slice is not None:
            eta = eta + self.residual_decoder(z[:, self.residual_slice[0] : self.residual_slice[1]])
        if self.dosage_slice is not None:
            eta = eta + self.dosage_decoder(z[:, self.dosage_slice[0] : self.dosage_slice[1]])
        if self.regional_slice is not None:
            eta = eta + self.regional_decoder(z[:, self.regional_slice[0] : self.regional_slice[1]])
        if cancer_type is not None and self.n_cancer_types:
            eta = eta + self.cancer_type_rna(cancer_type.long().view(-1))
        return eta

    def decode_modality(self, key: str, z: torch.Tensor, cancer_type: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output of one modality from its slice: logits (beta, bernoulli) or means (normal)."""
        spec = next(s for s in self.modalities if s.registry_key == key)
        out = self.modality_decoders[key](z[:, spec.slice_start : spec.slice_stop])
        if cancer_type is not None and self.n_cancer_types:
            out = out + self.cancer_type_modalities[key](cancer_type.long().view(-1))
        return out

    @auto_move_data
    def generative(
        self, z: torch.Tensor, z_rna: torch.Tensor, library: torch.Tensor, cancer_type: torch.Tensor | None = None
    ) -> dict:
        """Decoder outputs for the joint sample ``z`` and the RNA-only sample ``z_rna``."""
        out = {}
        for tag, latent in (("joint", z), ("rna_only", z_rna)):
            out[f"rna_{tag}"] = self.decode_rna(latent, cancer_type)
            for spec in self.modalities:
                out[f"{spec.registry_key}_{tag}"] = self.decode_modality(spec.registry_key, latent, cancer_type)
        out["library"] = library
        return out

    # ------------------------------------------------------------------ likelihoods
    def rna_log_likelihood(self, x: torch.Tensor, eta: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
        """Per-patient RNA log-likelihood ``(batch,)``."""
        if self.rna_likelihood == "nb":
            mu = library * torch.softmax(eta, dim=-1)
            return NegativeBinomial(mu=mu, theta=self.log_theta.exp()).log_prob(x).sum(-1)
        sigma = F.softplus(self.log_sigma) + 1e-3
        return torch.distributions.Normal(eta, sigma).log_prob(x).sum(-1)

    def modality_log_likelihood(self, spec: ModalitySpec, data: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Per-patient log-likelihood of one modality over its observed entries ``(batch,)``."""
        observed = ~torch.isnan(data)
        x = torch.where(observed, data, torch.full_like(data, 0.5))
        if spec.likelihood == "beta":
            mean = torch.sigmoid(out).clamp(1e-4, 1 - 1e-4)
            precision = F.softplus(self.modality_dispersion[spec.registry_key]) * 10 + 1.0
            x = x.clamp(1e-4, 1 - 1e-4)
            ll = torch.distributions.Beta(mean * precision, (1 - mean) * precision).log_prob(x)
        elif spec.likelihood == "normal":
            sigma = F.softplus(self.modality_dispersion[spec.registry_key]) * 0.5 + 1e-3
            ll = torch.distributions.Normal(out, sigma).log_prob(x)
        else:
            ll = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
        return (ll * observed).sum(-1)

    def loss(
        self, tensors: dict, inference_outputs: dict, generative_outputs: dict, kl_weight: float = 1.0
    ) -> LossOutput:
        """Negative ELBO of the joint and RNA-only posteriors, plus the proliferation supervision."""
        x = tensors[REGISTRY_KEYS.X_KEY]
        library = generative_outputs["library"]
        terms: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor] = {}
        total_reconstruction = torch.zeros(x.shape[0], device=x.device)
        for tag, weight in (("joint", 1.0), ("rna_only", self.rna_only_weight)):
            nll = -self.rna_log_likelihood(x, generative_outputs[f"rna_{tag}"], library)
            metrics[f"nll_rna_{tag}"] = nll.mean()
            recon = nll
            for spec in self.modalities:
                nll_m = -self.modality_log_likelihood(
                    spec, tensors[spec.registry_key], generative_outputs[f"{spec.registry_key}_{tag}"]
                )
                metrics[f"nll_{spec.registry_key}_{tag}"] = nll_m.mean()
                recon = recon + nll_m
            terms[f"reconstruction_{tag}"] = weight * recon
            total_reconstruction = total_reconstruction + weight * recon

        kl_joint = _kl_standard_normal(inference_outputs["qz_m"], inference_outputs["qz_v"])
        kl_rna = _kl_standard_normal(inference_outputs["qz_rna_m"], inference_outputs["qz_rna_v"])
        kl = kl_joint + self.rna_only_weight * kl_rna
        metrics["kl_joint"], metrics["kl_rna_only"] = kl_joint.mean(), kl_rna.mean()

        prolif_loss = torch.zeros_like(kl)
        if self.prolif_index is not None and self.prolif_weight > 0:
            target = self.proliferation_score(inference_outputs["rna_standardised"])
            for key, weight in (("qz_m", 1.0), ("qz_rna_m", self.rna_only_weight)):
                prolif_loss = prolif_loss + weight * (inference_outputs[key][:, self.prolif_index] - target) ** 2
            metrics["prolif_mse"] = ((inference_outputs["qz_m"][:, self.prolif_index] - target) ** 2).mean()
            terms["prolif_supervision"] = self.prolif_weight * prolif_loss
        match = torch.zeros_like(kl)
        if self.slice_ownership and self.rna_match_weight > 0:
            # stop-gradient: the owner-determined posterior is the target, only the RNA expert moves
            owned = inference_outputs["owned"]
            match = (
                owned
                * _kl_normal(
                    inference_outputs["qz_m"].detach(),
                    inference_outputs["qz_v"].detach(),
                    inference_outputs["qz_rna_m"],
                    inference_outputs["qz_rna_v"],
                )
            ).sum(-1)
            metrics["rna_match_kl"] = match.mean()
            terms["rna_match"] = self.rna_match_weight * match
        loss = (
            total_reconstruction + kl_weight * kl + self.prolif_weight * prolif_loss + self.rna_match_weight * match
        ).mean()
        return LossOutput(loss=loss, reconstruction_loss=terms, kl_local=kl, extra_metrics=metrics)

    @torch.inference_mode()
    def sample(self, *args, **kwargs):  # pragma: no cover - not part of the public API
        """Not implemented: the model is used for its latent, not for generation."""
        raise NotImplementedError("StructuredVAE does not implement posterior predictive sampling.")


def _kl_normal(m1: torch.Tensor, v1: torch.Tensor, m2: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Element-wise KL(N(m1, v1) || N(m2, v2))."""
    return 0.5 * (torch.log(v2) - torch.log(v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def _kl_standard_normal(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(-1)
