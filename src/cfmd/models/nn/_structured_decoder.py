"""Structured (masked, linear) decoders that give latent slices their meaning."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MaskedLinear(nn.Module):
    """A linear map whose weight is multiplied by a fixed binary connectivity mask.

    Parameters
    ----------
    mask
        ``(n_in, n_out)`` boolean connectivity: input ``i`` may act on output ``j`` only where ``mask[i, j]``.
    bias
        Add a learned bias per output.
    init_scale
        Standard deviation of the initial weights (their typical size when ``nonnegative``).
    nonnegative
        Constrain the weights to be >= 0 (softplus parametrisation): an input can only co-regulate its genes
        in one direction, as a gene-set program does.
    """

    def __init__(
        self,
        mask: np.ndarray | torch.Tensor,
        *,
        bias: bool = False,
        init_scale: float = 0.01,
        nonnegative: bool = False,
    ) -> None:
        super().__init__()
        mask = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
        self.register_buffer("mask", mask)
        self.nonnegative = nonnegative
        if nonnegative:
            # softplus(raw) ~ init_scale at initialisation
            raw = np.log(np.expm1(init_scale)) + 0.1 * torch.randn(mask.shape)
            self.raw_weight = nn.Parameter(raw.float())
        else:
            self.raw_weight = nn.Parameter(torch.randn(mask.shape) * init_scale)
        self.bias = nn.Parameter(torch.zeros(mask.shape[1])) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """The effective (masked) weight, ``(n_in, n_out)``."""
        raw = nn.functional.softplus(self.raw_weight) if self.nonnegative else self.raw_weight
        return raw * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_in)`` -> ``(batch, n_out)``."""
        out = x @ self.weight
        return out if self.bias is None else out + self.bias


def block_gene_set_mask(gene_symbols, gene_sets: list[list[str]], dims_per_set: int) -> np.ndarray:
    """Connectivity of a block-structured slice: the dims of block ``k`` may act only on the genes of set ``k``.

    Parameters
    ----------
    gene_symbols
        The data's gene symbols (columns).
    gene_sets
        One gene list per block, in block order.
    dims_per_set
        Latent dimensions per block.

    Returns
    -------
    ``(len(gene_sets) * dims_per_set, n_genes)`` boolean mask.
    """
    position = {g: i for i, g in enumerate(gene_symbols)}
    mask = np.zeros((len(gene_sets) * dims_per_set, len(gene_symbols)), dtype=bool)
    for k, genes in enumerate(gene_sets):
        idx = [position[g] for g in genes if g in position]
        mask[k * dims_per_set : (k + 1) * dims_per_set, idx] = True
    return mask


class RegionalGeneDecoder(nn.Module):
    """Decode a slice into expression through per-chromosome regional programs.

    The slice is mapped linearly to one activity per chromosome; each gene with a chromosome index loads
    (with its own weight) only on the activity of its chromosome. This gives the slice the shape of
    regional expression programs and far too few degrees of freedom to absorb gene-set programs.

    Parameters
    ----------
    n_in
        Width of the slice.
    chromosome_index
        ``(n_genes,)`` chromosome index per gene (``-1``: the gene is not decoded from this slice).
    n_chromosomes
        Number of chromosomes (regions).
    """

    def __init__(self, n_in: int, chromosome_index: np.ndarray, n_chromosomes: int) -> None:
        super().__init__()
        chromosome_index = np.asarray(chromosome_index, dtype=np.int64)
        genes = np.flatnonzero(chromosome_index >= 0)
        self.n_genes = len(chromosome_index)
        self.register_buffer("genes", torch.as_tensor(genes))
        self.register_buffer("gene_chromosome", torch.as_tensor(chromosome_index[genes]))
        self.to_regions = nn.Linear(n_in, n_chromosomes, bias=False)
        self.gene_loading = nn.Parameter(torch.randn(genes.size) * 0.01)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, n_in)`` -> ``(batch, n_genes)`` (zero for genes without a chromosome index)."""
        regions = self.to_regions(z)
        out = z.new_zeros(z.shape[0], self.n_genes)
        out[:, self.genes] = regions[:, self.gene_chromosome] * self.gene_loading
        return out
