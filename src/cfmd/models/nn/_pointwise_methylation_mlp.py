"""The point-wise methylation baseline: an MLP from RNA features straight to the methylation slice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..._constants import CHROMOSOMES
from ..._validation import InvalidInputError
from ._chromosomes import ChromosomeInputs
from ._projector import check_dropout, check_features, check_positive_dim

__all__ = ["PointwiseMethylationMLP"]


class PointwiseMethylationMLP(ChromosomeInputs, nn.Module):
    """Point-wise baseline of the paper (Section 4.1): a 3-layer MLP, 256 hidden units, RNA -> methylation slice.

    It takes the same input as :class:`~cfmd.models.nn.RegionalMethylationDecoder` (TME-gene expression and
    a chromosome index per gene) so that both are trained and audited on identical features and masks.

    "Aggregated RNA features" (``features``):

    - ``"genes"`` (default): the flat vector of the TME genes' expression (genes with chromosome index ``-1``
      dropped), i.e. the gene panel aggregated into one feature vector; every gene has its own input weight,
      which is what makes a point-wise model prone to spatial leakage.
    - ``"chromosome_means"``: the count-normalised mean expression per chromosome (``n_chromosomes``
      inputs; an empty chromosome's mean is 0).

    Architecture: ``Linear(n_features, d_hidden) -> GELU -> Dropout -> Linear(d_hidden, d_hidden) -> GELU ->
    Dropout -> Linear(d_hidden, d_out)`` for ``n_layers = 3`` (``n_layers`` counts the linear layers).

    Parameters
    ----------
    gene_chromosomes
        ``(n_genes,)`` chromosome index of each input gene (``-1``: ignore), as for the regional decoder.
    chromosomes
        Chromosome names (default: 1-22 and X).
    d_out
        Width of the methylation slice.
    d_hidden
        Width of the hidden layers.
    n_layers
        Number of linear layers (>= 2).
    dropout
        Dropout after each hidden layer.
    features
        ``"genes"`` or ``"chromosome_means"`` (see above).

    Notes
    -----
    **Masking** matches the regional decoder's contract: ``masked_chromosomes`` sets the masked chromosomes'
    inputs to 0 (their genes' expression for ``"genes"``, their mean for ``"chromosome_means"``), i.e. the
    training mean of standardised expression. A fixed-width MLP cannot drop inputs, so zeroing is the removal;
    the output is exactly invariant to the masked genes' expression (NaN there included).

    Examples
    --------
    >>> mlp = PointwiseMethylationMLP([0, 0, 1, 22, -1])
    >>> mlp(torch.randn(3, 5), masked_chromosomes=[0]).shape
    torch.Size([3, 48])
    """

    def __init__(
        self,
        gene_chromosomes: Sequence[int] | np.ndarray | torch.Tensor,
        *,
        chromosomes: Sequence[str] = CHROMOSOMES,
        d_out: int = 48,
        d_hidden: int = 256,
        n_layers: int = 3,
        dropout: float = 0.1,
        features: Literal["genes", "chromosome_means"] = "genes",
    ) -> None:
        super().__init__()
        n_kept = self._init_chromosome_inputs(gene_chromosomes, chromosomes)
        self.d_out = check_positive_dim(d_out, "d_out")
        d_hidden = check_positive_dim(d_hidden, "d_hidden")
        n_layers = check_positive_dim(n_layers, "n_layers")
        if n_layers < 2:
            raise InvalidInputError(f"`n_layers` must be at least 2 (it counts linear layers); got {n_layers}.")
        dropout = check_dropout(dropout)
        if features not in ("genes", "chromosome_means"):
            raise InvalidInputError(f"`features` must be 'genes' or 'chromosome_means'; got {features!r}.")
        self.features = features

        n_features = n_kept if features == "genes" else self.n_chromosomes
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, d_hidden), nn.GELU(), nn.Dropout(dropout)]
            width = d_hidden
        layers.append(nn.Linear(width, self.d_out))
        self.mlp = nn.Sequential(*layers)

    def aggregate(
        self,
        expression: torch.Tensor,
        *,
        masked_chromosomes: Sequence[int | str] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The MLP's input features.

        Parameters
        ----------
        expression
            ``(batch, n_genes)`` expression, columns aligned with ``gene_chromosomes``.
        masked_chromosomes
            Chromosomes whose inputs are zeroed (indices, names, index or boolean tensor).

        Returns
        -------
        ``(batch, n_kept_genes)`` for ``features="genes"``, ``(batch, n_chromosomes)`` for
        ``"chromosome_means"``.
        """
        check_features(expression, self.n_genes, "PointwiseMethylationMLP input `expression`")
        masked = self.masked_chromosomes_cpu(masked_chromosomes).to(expression.device)
        x = self.masked_gene_input(expression, masked)  # (B, G)
        if self.features == "genes":
            return x
        return x @ self.assignment.to(x.dtype).T  # (B, C); masked chromosomes: mean of zeros = 0

    def forward(
        self,
        expression: torch.Tensor,
        *,
        masked_chromosomes: Sequence[int | str] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the methylation slice.

        Parameters
        ----------
        expression
            ``(batch, n_genes)`` expression, columns aligned with ``gene_chromosomes`` (log scale, standardised
            per gene with training-split statistics).
        masked_chromosomes
            Chromosomes whose inputs are zeroed (see Notes of the class).

        Returns
        -------
        ``(batch, d_out)`` predicted methylation slice.
        """
        return self.mlp(self.aggregate(expression, masked_chromosomes=masked_chromosomes))
