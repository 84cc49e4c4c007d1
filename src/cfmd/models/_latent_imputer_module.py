"""The torch side every supervised latent imputer shares (:class:`LatentImputerModule`).

Normalisation statistics fitted on the training split (buffers, so they are saved with the model), the expression
transform of :mod:`cfmd._expression`, standardised targets and the way back to latent units. :class:`~cfmd.models.CFMD`
and :class:`~cfmd.models.LatentRegressor` build on it; so can any later imputer trained by
:class:`~cfmd.models._latent_imputer.LatentImputerMixin`.
"""

from __future__ import annotations

import torch
from scvi.module.base import BaseModuleClass

from .._expression import log_normalise
from .._layout import LatentLayout
from .nn import ScatterAssignment

__all__ = ["LatentImputerModule"]


class LatentImputerModule(BaseModuleClass):
    """Base module of a regression from RNA into the latent's standardised units.

    Subclasses set ``self.assignment`` (a :class:`~cfmd.models.nn.ScatterAssignment` over the slices they write)
    and implement ``inference(x, ...) -> {"z": standardised latent}`` and ``loss``; they may extend
    :meth:`fit_normalisation` for their extra inputs (calling this one first).

    Parameters
    ----------
    layout
        The latent layout.
    n_genes
        Number of RNA features.
    rna_scale
        ``"counts"``, ``"log2"`` or ``"zscore"`` (see :func:`cfmd._expression.log_normalise`).
    """

    assignment: ScatterAssignment

    def __init__(self, *, layout: LatentLayout, n_genes: int, rna_scale: str) -> None:
        super().__init__()
        self.layout, self.n_genes, self.rna_scale = layout, n_genes, rna_scale
        # normalisation statistics: set from the training split by LatentImputerMixin.train
        self.register_buffer("gene_mean", torch.zeros(n_genes))
        self.register_buffer("gene_std", torch.ones(n_genes))
        self.register_buffer("latent_mean", torch.zeros(layout.n_dims))
        self.register_buffer("latent_std", torch.ones(layout.n_dims))

    @property
    def predicted_slices(self) -> list[str]:
        """Slices the module writes (the others stay exactly 0)."""
        return list(self.assignment.assigned_slices)

    def set_epoch(self, epoch: int) -> None:
        """Called by the training plan at the start of each epoch; modules with per-epoch behaviour override it."""

    def log_expression(self, x: torch.Tensor) -> torch.Tensor:
        """log1p(counts per 10k) for counts; the values as given for log2 / z-scored input."""
        return log_normalise(x, self.rna_scale)

    def standardised_expression(self, x: torch.Tensor) -> torch.Tensor:
        """Log-expression standardised per gene with the training-split statistics."""
        return (self.log_expression(x) - self.gene_mean) / self.gene_std

    def standardised_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """The target latent in the units the module predicts."""
        return (latent - self.latent_mean) / self.latent_std

    def split_by_slice(self, flat: torch.Tensor, names) -> dict[str, torch.Tensor]:
        """Cut ``(batch, sum of widths)`` into ``{slice: (batch, width)}``, slices in the order of ``names``."""
        out, start = {}, 0
        for name in names:
            dim = self.layout[name].dim
            out[name] = flat[:, start : start + dim]
            start += dim
        return out

    @torch.no_grad()
    def fit_normalisation(self, x: torch.Tensor, latent: torch.Tensor, geneformer: torch.Tensor | None) -> None:
        """Set the RNA and latent standardisation from the training patients' data.

        Parameters
        ----------
        x
            ``(n_train, n_genes)`` RNA.
        latent
            ``(n_train, n_dims)`` observed latent.
        geneformer
            ``(n_train, d)`` Geneformer embedding, or ``None`` (used by subclasses that read it).
        """
        log_expr = self.log_expression(x)
        self.gene_mean.copy_(log_expr.mean(0))
        self.gene_std.copy_(log_expr.std(0).clamp_min(1e-3))
        self.latent_mean.copy_(latent.mean(0))
        self.latent_std.copy_(latent.std(0).clamp_min(1e-6))

    def to_latent_units(self, z: torch.Tensor) -> torch.Tensor:
        """Undo the target standardisation on predicted slices; the others stay exactly 0."""
        out = torch.zeros_like(z)
        index = self.assignment.index
        out[:, index] = z[:, index] * self.latent_std[index] + self.latent_mean[index]
        return out

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def generative(self, **kwargs) -> dict:
        """No generative model: a regression into the latent."""
        return {}

    @torch.inference_mode()
    def sample(self, *args, **kwargs):  # pragma: no cover
        """Not a generative model."""
        raise NotImplementedError(f"{type(self).__name__.removesuffix('Module')} is not a generative model.")
