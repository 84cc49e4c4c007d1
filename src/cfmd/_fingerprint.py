"""The expression-weighted patient structural fingerprint (paper, Section 3.2), shared by ``pp`` and ``models``.

It lives outside both sub-packages so that :func:`cfmd.pp.structural_fingerprint` (fixed temperature) and the
learned-temperature module of :mod:`cfmd.models.nn` use one implementation without ``pp`` importing ``models``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def expression_weighted_fingerprint(
    log_expression: torch.Tensor,
    gene_embeddings: torch.Tensor,
    tau: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Softmax-weighted mean of gene embeddings and the effective number of genes.

    .. math::

        \alpha_g = \frac{\exp((\tilde x_g - \max_k \tilde x_k)/\tau)}{\sum_j \exp((\tilde x_j - \max_k \tilde x_k)/\tau)},
        \quad s = \sum_g \alpha_g e_g, \quad H = \exp\Big(-\sum_g \alpha_g \log \alpha_g\Big)

    computed with the log-sum-exp trick, so counts of 1e7 or a tiny ``tau`` cannot overflow.

    Parameters
    ----------
    log_expression
        ``(n_patients, n_genes)`` log-transformed expression, e.g. :math:`\log_2(x + 1)`, over the genes that
        have an embedding.
    gene_embeddings
        ``(n_genes, d_e)`` gene embeddings :math:`e_g` (rows aligned with the columns of ``log_expression``).
    tau
        Temperature (> 0); a scalar or a 0-d tensor (differentiable for a learned temperature).

    Returns
    -------
    fingerprint
        ``(n_patients, d_e)`` structural fingerprints :math:`s`.
    effective_genes
        ``(n_patients,)`` effective number of genes :math:`H` (1 when one gene dominates, ``n_genes`` when uniform).
    """
    import torch

    logits = log_expression / tau
    log_alpha = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    alpha = log_alpha.exp()
    fingerprint = alpha @ gene_embeddings
    entropy = -(alpha * log_alpha).sum(dim=-1)
    return fingerprint, entropy.exp()


__all__ = ["expression_weighted_fingerprint"]
