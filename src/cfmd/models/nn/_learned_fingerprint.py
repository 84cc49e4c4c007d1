"""The structural fingerprint with a learned temperature (paper, Section 3.2)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..._validation import InvalidInputError
from ._fingerprint import expression_weighted_fingerprint
from ._projector import check_features

__all__ = ["LearnedTemperatureFingerprint"]


def _inverse_softplus(y: float) -> float:
    """``t`` such that ``softplus(t) == y`` (for ``y > 0``), stable for large and small ``y``."""
    return y + math.log(-math.expm1(-y))


class LearnedTemperatureFingerprint(nn.Module):
    r"""Expression-weighted ESM-2 structural fingerprint with a learned temperature.

    Holds the frozen gene embeddings :math:`e_g` of the ESM-covered genes as a buffer (moved with the
    module across devices and dtypes, saved in the ``state_dict``, never trained) and one learnable raw
    temperature :math:`\tilde\tau`, constrained as :math:`\tau = \mathrm{softplus}(\tilde\tau) + \epsilon`.
    The forward pass is :func:`~cfmd.models.nn.expression_weighted_fingerprint`, which uses the
    log-sum-exp trick, so raw counts of :math:`10^7` or :math:`\tau` close to :math:`\epsilon` stay finite.

    Parameters
    ----------
    gene_embeddings
        ``(n_genes, d_e)`` frozen gene embeddings (e.g. ESM-2 650M mean-pooled protein embeddings,
        ``d_e = 1280``), rows aligned with the columns of the expression passed to ``forward``.
    initial_tau
        Temperature at initialisation (must exceed ``eps``); the paper's default is 1.
    eps
        Lower bound :math:`\epsilon` of the temperature.

    Examples
    --------
    >>> fingerprint = LearnedTemperatureFingerprint(torch.randn(100, 1280))
    >>> s, h = fingerprint(torch.log2(torch.rand(4, 100) * 1000 + 1))
    >>> tuple(s.shape), tuple(h.shape), round(fingerprint.tau.item(), 4)
    ((4, 1280), (4,), 1.0)
    """

    gene_embeddings: torch.Tensor

    def __init__(
        self,
        gene_embeddings: torch.Tensor | np.ndarray,
        *,
        initial_tau: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        if isinstance(gene_embeddings, torch.Tensor):
            embeddings = gene_embeddings
        else:
            array = np.asarray(gene_embeddings)
            if array.dtype.kind not in "biuf":
                raise InvalidInputError(f"`gene_embeddings` must be numeric; got dtype {array.dtype}.")
            embeddings = torch.as_tensor(array)
        if embeddings.ndim != 2 or embeddings.shape[0] < 1 or embeddings.shape[1] < 1:
            raise InvalidInputError(
                f"`gene_embeddings` must be a non-empty (n_genes, d_e) matrix; got shape {tuple(embeddings.shape)}."
            )
        if embeddings.dtype == torch.bool or embeddings.is_complex():
            raise InvalidInputError(f"`gene_embeddings` must be real-valued; got dtype {embeddings.dtype}.")
        embeddings = embeddings.detach().to(torch.get_default_dtype()).clone()
        if not torch.isfinite(embeddings).all():
            raise InvalidInputError("`gene_embeddings` contains NaN or infinite values.")
        if isinstance(eps, bool) or not isinstance(eps, Real) or not eps > 0:
            raise InvalidInputError(f"`eps` must be a positive number; got {eps!r}.")
        if isinstance(initial_tau, bool) or not isinstance(initial_tau, Real) or not initial_tau > eps:
            raise InvalidInputError(f"`initial_tau` must be a number greater than `eps` ({eps}); got {initial_tau!r}.")
        self.eps = float(eps)
        self.register_buffer("gene_embeddings", embeddings)
        self.raw_temperature = nn.Parameter(torch.tensor(_inverse_softplus(float(initial_tau) - self.eps)))

    @property
    def n_genes(self) -> int:
        """Number of genes (columns expected in ``log_expression``)."""
        return int(self.gene_embeddings.shape[0])

    @property
    def d_e(self) -> int:
        """Width of the gene embeddings and of the fingerprint."""
        return int(self.gene_embeddings.shape[1])

    @property
    def tau(self) -> torch.Tensor:
        r"""The temperature :math:`\tau = \mathrm{softplus}(\tilde\tau) + \epsilon` (0-d, differentiable)."""
        return F.softplus(self.raw_temperature) + self.eps

    def forward(self, log_expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Fingerprint a batch of patients.

        Parameters
        ----------
        log_expression
            ``(batch, n_genes)`` log-transformed expression :math:`\tilde x_g = \log_2(x_g + 1)` of the
            ESM-covered genes (the caller applies the transform; columns aligned with ``gene_embeddings``).

        Returns
        -------
        fingerprint
            ``(batch, d_e)`` structural fingerprints :math:`s = \sum_g \alpha_g e_g`.
        effective_genes
            ``(batch,)`` effective number of genes :math:`H = \exp(-\sum_g \alpha_g \log \alpha_g)`,
            in ``[1, n_genes]``; log its mean to monitor collapse onto a few genes.
        """
        check_features(log_expression, self.n_genes, "LearnedTemperatureFingerprint input `log_expression`")
        return expression_weighted_fingerprint(log_expression, self.gene_embeddings, self.tau)

    def extra_repr(self) -> str:
        return f"n_genes={self.n_genes}, d_e={self.d_e}, eps={self.eps}"
