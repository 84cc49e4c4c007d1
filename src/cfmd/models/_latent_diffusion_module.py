"""The torch module of :class:`cfmd.models.LatentDiffusion`: noise networks, noise schedule and normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, LossOutput
from torch import nn

from .._expression import log_normalise
from .._fingerprint import expression_weighted_fingerprint
from .._layout import LatentLayout
from .._utils import import_diffusers
from ._ddpm import scaled_betas
from .nn import ConditionalNoiseMLP

__all__ = ["LatentDiffusionModule"]


def _spread(values: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-column SD of the training values; 1 for (near-)constant columns (SD < ``floor``).

    Clamping such an SD to the floor instead would turn one count of a gene never expressed in training (or any
    value of a constant condition column) into an input of 1e3-1e9 standard deviations for a new patient.
    """
    sd = values.std(0)
    return torch.where(sd < floor, torch.ones_like(sd), sd)


class _Stats(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))


class LatentDiffusionModule(BaseModuleClass):
    """DDPM noise network(s), the noise schedule and the training-split normalisation of target and conditions.

    Parameters
    ----------
    layout
        The latent's layout.
    target_slices
        Slices diffused (standardised with the training patients' mean and SD).
    conditions
        ``[{"name", "kind", "dim"}]``; ``kind`` is ``"rna"``, ``"geneformer"``, ``"esm"``, ``"cancer_type"`` or
        ``"slice"``.
    n_genes, rna_scale
        The RNA input.
    rna_components
        The ``"rna"`` condition's width: ``None``, every gene (standardised log-expression); ``k``, the first ``k``
        principal components of it (scikit-learn's PCA fitted on the training patients, stored with the model).
    esm_genes, esm_embeddings, fingerprint_tau
        The ``"esm"`` condition: positions (in the RNA's genes) of the genes with an ESM-2 embedding, their
        ``(n, d_e)`` embeddings and the fingerprint's temperature (stored with the model, so a saved model needs
        no embedding table on new patients).
    cancer_categories
        Categories of the cancer-type one-hot (training data's, sorted).
    ensemble
        ``False``: one multi-condition network; ``True``: one single-condition network per condition (Coherent
        Denoising members, identical widths).
    n_hidden, n_layers, time_embedding_dim, condition_embedding_dim
        :class:`~cfmd.models.nn.ConditionalNoiseMLP` widths.
    num_train_timesteps, beta_schedule, beta_start, beta_end, variance_type
        :class:`diffusers.DDPMScheduler` settings (``clip_sample=False``; epsilon prediction). ``"fixed_large"``
        (sigma_t^2 = beta_t) is the seed's choice. ``beta_start`` / ``beta_end`` default to the seed's 1e-4 / 0.02
        scaled by 1000 / T, ``beta_end`` capped at 0.4 (so a short schedule still ends near pure noise; exactly the
        seed's at T = 1000).
    clip_denoised
        Clip each reverse step's estimate of ``x_0`` to the training targets' range (per dimension, standardised
        units) before the step's posterior mean, as :class:`diffusers.DDPMScheduler`'s ``clip_sample`` does with a
        fixed range. Without it, a noise network that predicts the noise poorly where the trajectory wanders
        (e.g. the seed's MLP on a 48-d slice from a few hundred patients) is amplified up to ``1 / sqrt(alpha_bar_T)``
        (~300x at T = 50): samples of hundreds of standard deviations. ``False``: the seed's unclipped step.
    """

    def __init__(
        self,
        *,
        layout: LatentLayout,
        target_slices: Sequence[str],
        conditions: Sequence[Mapping],
        n_genes: int,
        rna_scale: str,
        rna_components: int | None = None,
        cancer_categories: Sequence[str] = (),
        esm_genes: Sequence[int] | np.ndarray = (),
        esm_embeddings: np.ndarray | None = None,
        fingerprint_tau: float = 1.0,
        ensemble: bool = False,
        n_hidden: int = 256,
        n_layers: int = 3,
        time_embedding_dim: int = 64,
        condition_embedding_dim: int = 16,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float | None = None,
        beta_end: float | None = None,
        variance_type: str = "fixed_large",
        clip_denoised: bool = True,
    ) -> None:
        super().__init__()
        beta_start, beta_end = scaled_betas(num_train_timesteps, beta_start, beta_end)
        self.layout = layout
        self.target_slices = list(target_slices)
        self.conditions = [dict(c) for c in conditions]
        self.rna_scale = rna_scale
        self.cancer_categories = [str(c) for c in cancer_categories]
        self.ensemble = bool(ensemble)
        self.target_index = np.concatenate([layout[s].indices for s in self.target_slices])
        n_target = int(self.target_index.size)
        self.register_buffer("gene_mean", torch.zeros(n_genes))
        self.register_buffer("gene_std", torch.ones(n_genes))
        self.rna_components = None if rna_components is None else int(rna_components)
        n_components = self.rna_components or 0
        self.register_buffer("rna_pca_mean", torch.zeros(n_genes if n_components else 0))
        self.register_buffer("rna_pca_components", torch.zeros(n_components, n_genes))
        self.register_buffer("esm_genes", torch.as_tensor(np.asarray(esm_genes, dtype=np.int64)).reshape(-1))
        table = np.zeros((0, 0), np.float32) if esm_embeddings is None else np.asarray(esm_embeddings, np.float32)
        self.register_buffer("esm_embeddings", torch.as_tensor(table))
        self.fingerprint_tau = float(fingerprint_tau)
        self.target_stats = _Stats(n_target)
        self.clip_denoised = bool(clip_denoised)
        self.register_buffer("target_low", torch.full((n_target,), -torch.inf))
        self.register_buffer("target_high", torch.full((n_target,), torch.inf))
        self.condition_stats = nn.ModuleDict({f"c{i}": _Stats(int(c["dim"])) for i, c in enumerate(self.conditions)})
        widths = {
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "time_embedding_dim": time_embedding_dim,
            "condition_embedding_dim": condition_embedding_dim,
        }
        dims = {c["name"]: int(c["dim"]) for c in self.conditions}
        if self.ensemble:
            self.networks = nn.ModuleList([ConditionalNoiseMLP(n_target, {n: d}, **widths) for n, d in dims.items()])
            self.register_buffer("member_weights", torch.full((len(dims),), 1.0 / max(len(dims), 1)))
            self.register_buffer("member_validation_mse", torch.full((len(dims),), float("nan")))
        else:
            self.network = ConditionalNoiseMLP(n_target, dims, **widths)
        self.scheduler_config = {
            "num_train_timesteps": int(num_train_timesteps),
            "beta_schedule": beta_schedule,
            "beta_start": float(beta_start),
            "beta_end": float(beta_end),
            "variance_type": variance_type,
            "clip_sample": False,
            "prediction_type": "epsilon",
        }

    # ------------------------------------------------------------------ schedule
    def make_scheduler(self):
        """A fresh :class:`diffusers.DDPMScheduler` with this module's schedule."""
        return import_diffusers().DDPMScheduler(**self.scheduler_config)

    @property
    def predicted_slices(self) -> list[str]:
        """Slices the module writes."""
        return list(self.target_slices)

    # ------------------------------------------------------------------ normalisation
    @torch.no_grad()
    def fit_normalisation(self, raw: Mapping[str, torch.Tensor]) -> None:
        """Set every mean / SD from the training patients' raw inputs (``prepare(..., standardise=False)``)."""
        log_expr = log_normalise(raw["x"], self.rna_scale)
        self.gene_mean.copy_(log_expr.mean(0))
        self.gene_std.copy_(_spread(log_expr, 1e-3))
        if self.rna_components:
            self._fit_rna_pca((log_expr - self.gene_mean) / self.gene_std)
        target = raw["target"]
        self.target_stats.mean.copy_(target.mean(0))
        self.target_stats.std.copy_(target.std(0).clamp_min(1e-6))
        standardised = (target - self.target_stats.mean) / self.target_stats.std
        self.target_low.copy_(standardised.min(0).values)
        self.target_high.copy_(standardised.max(0).values)
        for i, c in enumerate(self.conditions):
            stats = self.condition_stats[f"c{i}"]
            if c["kind"] == "cancer_type":
                continue  # one-hot: used as is
            values = raw["conditions"][c["name"]][raw["masks"][c["name"]] > 0]
            if c["kind"] == "rna":
                values = self.rna_condition(values)
            stats.mean.copy_(values.mean(0))
            stats.std.copy_(_spread(values, 1e-6) if len(values) > 1 else torch.ones_like(stats.std))

    def standardise(self, raw: Mapping) -> dict:
        """Raw inputs -> the network's units (target and conditions standardised, missing values 0)."""
        out = {"conditions": {}, "masks": dict(raw["masks"])}
        if raw.get("target") is not None:
            out["target"] = (raw["target"] - self.target_stats.mean) / self.target_stats.std
        for i, c in enumerate(self.conditions):
            value = raw["conditions"][c["name"]]
            if c["kind"] == "rna":
                value = self.rna_condition(value)
            if c["kind"] != "cancer_type":
                stats = self.condition_stats[f"c{i}"]
                value = (value - stats.mean) / stats.std
            out["conditions"][c["name"]] = torch.where(raw["masks"][c["name"]].reshape(-1, 1) > 0, value, 0.0)
        return out

    def _fit_rna_pca(self, standardised: torch.Tensor) -> None:
        """Fit the ``"rna"`` condition's principal components on the training patients' standardised expression."""
        from sklearn.decomposition import PCA

        k = self.rna_components
        if standardised.shape[0] <= k:
            raise ValueError(f"rna_components={k} needs more than {k} training patients; got {standardised.shape[0]}")
        pca = PCA(n_components=k, svd_solver="full").fit(standardised.double().numpy())
        self.rna_pca_mean.copy_(torch.as_tensor(pca.mean_))
        self.rna_pca_components.copy_(torch.as_tensor(pca.components_))

    def rna_condition(self, x: torch.Tensor) -> torch.Tensor:
        """Raw RNA ``(n, n_genes)`` -> the ``"rna"`` condition before its standardisation (genes or components)."""
        standardised = (log_normalise(x, self.rna_scale) - self.gene_mean) / self.gene_std
        if not self.rna_components:
            return standardised
        return (standardised - self.rna_pca_mean) @ self.rna_pca_components.T

    def esm_fingerprint(self, x: torch.Tensor) -> torch.Tensor:
        r"""Raw RNA ``(n, n_genes)`` -> the expression-weighted structural fingerprint ``(n, d_e)``.

        :func:`cfmd.pp.structural_fingerprint`'s definition (softmax over the ESM-covered genes of
        :math:`\log_2(x + 1)` for counts, the values as given for log scales, at temperature ``fingerprint_tau``),
        as :class:`~cfmd.models.CFMD` consumes it (there with a learned temperature).
        """
        covered = x[:, self.esm_genes].double()
        log_expression = torch.log2(covered + 1.0) if self.rna_scale == "counts" else covered
        fingerprint, _ = expression_weighted_fingerprint(
            log_expression, self.esm_embeddings.double(), self.fingerprint_tau
        )
        return fingerprint.float()

    def denoised_bounds(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-dimension bounds of the reverse steps' ``x_0`` estimate (standardised units); None: no clipping."""
        return (self.target_low, self.target_high) if self.clip_denoised else None

    def to_latent_units(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised target ``(..., n_target)`` -> latent units."""
        return z * self.target_stats.std + self.target_stats.mean

    # ------------------------------------------------------------------ scvi-tools module interface
    def _get_inference_input(self, tensors: dict) -> dict:
        return {}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def inference(self, **kwargs) -> dict:
        """Not used (a DDPM has no encoder); see :meth:`LatentDiffusion.generate`."""
        return {}

    def generative(self, **kwargs) -> dict:
        """Not used; see :func:`~cfmd.models._ddpm.reverse_diffusion`."""
        return {}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict, **kwargs) -> LossOutput:
        """Not used: training is :func:`~cfmd.models._ddpm.fit_noise_network` (noise MSE, early stopping on denoised samples)."""
        raise NotImplementedError("LatentDiffusion trains with its own loop (see LatentDiffusion.train).")
