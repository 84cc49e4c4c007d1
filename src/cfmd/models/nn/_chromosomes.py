"""Chromosome bookkeeping of the methylation decoders: labels -> indices, gene-to-chromosome pooling, masking.

:class:`~cfmd.models.nn.RegionalMethylationDecoder` and :class:`~cfmd.models.nn.PointwiseMethylationMLP` take the
same input (TME-gene expression with a chromosome index per gene) and the same ``masked_chromosomes``; both build
their gene selection, count-normalised pooling and masks here (:class:`ChromosomeInputs`). Label spelling is
:func:`cfmd._constants.chromosome_label`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..._constants import CHROMOSOMES, chromosome_label
from ..._validation import InvalidInputError, describe_examples

__all__ = [
    "ChromosomeInputs",
    "chromosome_indices",
    "masked_chromosome_vector",
    "parse_chromosome_names",
    "parse_gene_chromosomes",
]


def chromosome_indices(labels: Sequence, *, chromosomes: Sequence[str] = CHROMOSOMES) -> np.ndarray:
    """Map per-gene chromosome labels to indices into ``chromosomes`` (``-1`` for genes to ignore).

    Parameters
    ----------
    labels
        One chromosome label per gene, e.g. ``mdata['rna'].var['chromosome']``: ``"1"``, ``"chr1"``, ``1``,
        ``"X"``, ``"chrX"``. Labels not in ``chromosomes`` (``"Y"``, ``"MT"``, missing values) map to ``-1``.
    chromosomes
        The chromosome names, in the order of the decoder's regions (default: autosomes 1-22 and X).

    Returns
    -------
    ``(n_genes,)`` ``int64`` array of indices in ``[-1, len(chromosomes))``.

    Examples
    --------
    >>> chromosome_indices(["1", "chrX", "Y", None, 22])
    array([ 0, 22, -1, -1, 21])
    """
    lookup = {chromosome_label(name): i for i, name in enumerate(chromosomes)}
    out = np.full(len(labels), -1, dtype=np.int64)
    for i, label in enumerate(labels):
        name = chromosome_label(label)
        if name is not None:
            out[i] = lookup.get(name, -1)
    return out


def parse_gene_chromosomes(gene_chromosomes, n_chromosomes: int) -> torch.Tensor:
    """Validate a per-gene chromosome index vector; return it as an ``int64`` tensor."""
    values = gene_chromosomes.detach().cpu().numpy() if isinstance(gene_chromosomes, torch.Tensor) else gene_chromosomes
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise InvalidInputError(
            f"`gene_chromosomes` must be a non-empty 1-d sequence of chromosome indices; got shape {array.shape}."
        )
    if array.dtype.kind not in "iu":
        raise InvalidInputError(
            "`gene_chromosomes` must hold integer chromosome indices (-1 = ignore the gene); got dtype "
            f"{array.dtype}. Convert chromosome labels with `cfmd.models.nn.chromosome_indices`."
        )
    bad = array[(array < -1) | (array >= n_chromosomes)]
    if bad.size:
        raise InvalidInputError(
            f"`gene_chromosomes` must lie in [-1, {n_chromosomes}); got {describe_examples(np.unique(bad).tolist())}."
        )
    if not (array >= 0).any():
        raise InvalidInputError("`gene_chromosomes` assigns no gene to any chromosome (all are -1).")
    return torch.as_tensor(array.astype(np.int64))


def parse_chromosome_names(chromosomes: Sequence[str]) -> tuple[str, ...]:
    """Validate chromosome names (non-empty, unique)."""
    if isinstance(chromosomes, str):
        raise InvalidInputError("`chromosomes` must be a sequence of names, not a single string.")
    names = tuple(str(c) for c in chromosomes)
    if not names:
        raise InvalidInputError("`chromosomes` must name at least one chromosome.")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"`chromosomes` must be unique; got {describe_examples(names)}.")
    return names


def masked_chromosome_vector(
    masked_chromosomes: Sequence[int | str] | torch.Tensor | None,
    chromosome_names: tuple[str, ...],
    device: torch.device,
) -> torch.Tensor:
    """A ``(n_chromosomes,)`` boolean tensor that is ``True`` for the chromosomes to mask.

    ``masked_chromosomes`` may be ``None``, a sequence of indices and/or names (``"X"``, ``"chr7"``), an
    integer index tensor, or a boolean tensor of length ``n_chromosomes``.
    """
    n = len(chromosome_names)
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    if masked_chromosomes is None:
        return mask
    if isinstance(masked_chromosomes, torch.Tensor):
        if masked_chromosomes.dtype == torch.bool:
            if masked_chromosomes.shape != (n,):
                raise InvalidInputError(
                    f"A boolean `masked_chromosomes` must have shape ({n},); got {tuple(masked_chromosomes.shape)}."
                )
            return masked_chromosomes.to(device=device, copy=True)
        if masked_chromosomes.is_floating_point() or masked_chromosomes.is_complex():
            raise InvalidInputError(
                f"`masked_chromosomes` must hold integer indices; got dtype {masked_chromosomes.dtype}."
            )
        indices = masked_chromosomes.reshape(-1).to(device=device, dtype=torch.long)
    else:
        if isinstance(masked_chromosomes, str | int | np.integer):
            masked_chromosomes = [masked_chromosomes]
        lookup = {chromosome_label(name): i for i, name in enumerate(chromosome_names)}
        parsed = []
        for item in masked_chromosomes:
            if isinstance(item, str):
                if chromosome_label(item) not in lookup:
                    raise InvalidInputError(
                        f"`masked_chromosomes`: unknown chromosome {item!r}; known: {describe_examples(chromosome_names)}."
                    )
                parsed.append(lookup[chromosome_label(item)])
            elif isinstance(item, int | np.integer) and not isinstance(item, bool):
                parsed.append(int(item))
            else:
                raise InvalidInputError(f"`masked_chromosomes` entries must be indices or names; got {item!r}.")
        indices = torch.as_tensor(parsed, dtype=torch.long, device=device)
    if indices.numel() and (bool((indices < 0).any()) or bool((indices >= n).any())):
        raise InvalidInputError(
            f"`masked_chromosomes` indices must lie in [0, {n}); got {describe_examples(indices.tolist())}."
        )
    return mask.index_fill(0, indices, True)


class ChromosomeInputs:
    """Mixin of a :class:`torch.nn.Module` whose input genes are pooled by chromosome and masked by chromosome.

    :meth:`_init_chromosome_inputs` (called in ``__init__`` after ``super().__init__()``) validates the names and
    the per-gene indices and registers the non-persistent buffers ``gene_chromosomes`` (chromosome of each kept
    gene), ``kept_genes`` (their columns), ``assignment`` (``(n_chromosomes, n_kept_genes)`` count-normalised
    pooling matrix of ``1/|G_c|`` entries) and ``empty_chromosomes``; it sets ``chromosome_names``,
    ``n_chromosomes`` and ``n_genes``. It draws no random numbers.
    """

    gene_chromosomes: torch.Tensor
    kept_genes: torch.Tensor
    assignment: torch.Tensor
    empty_chromosomes: torch.Tensor

    def _init_chromosome_inputs(self, gene_chromosomes, chromosomes: Sequence[str]) -> int:
        """Register the chromosome buffers; return the number of kept genes (chromosome index >= 0)."""
        self.chromosome_names = parse_chromosome_names(chromosomes)
        self.n_chromosomes = len(self.chromosome_names)
        all_chromosomes = parse_gene_chromosomes(gene_chromosomes, self.n_chromosomes)
        self.n_genes = int(all_chromosomes.numel())
        kept = torch.nonzero(all_chromosomes >= 0).squeeze(1)
        kept_chromosomes = all_chromosomes[kept]
        counts = torch.bincount(kept_chromosomes, minlength=self.n_chromosomes)
        assignment = torch.zeros(self.n_chromosomes, kept.numel())
        assignment[kept_chromosomes, torch.arange(kept.numel())] = 1.0 / counts[kept_chromosomes].to(assignment.dtype)
        self.register_buffer("gene_chromosomes", kept_chromosomes, persistent=False)
        self.register_buffer("kept_genes", kept, persistent=False)
        self.register_buffer("empty_chromosomes", counts == 0, persistent=False)
        self._empty_chromosomes_cpu = (counts == 0).clone()  # host copy: mask checks without device syncs
        self.register_buffer("assignment", assignment, persistent=False)
        self._select_genes = kept.numel() != self.n_genes
        return int(kept.numel())

    def masked_chromosomes_cpu(self, masked_chromosomes) -> torch.Tensor:
        """``(n_chromosomes,)`` boolean mask on the host (see :func:`masked_chromosome_vector`)."""
        return masked_chromosome_vector(masked_chromosomes, self.chromosome_names, torch.device("cpu"))

    def masked_gene_input(self, expression: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """``(batch, n_kept_genes)`` expression of the kept genes, 0 on the genes of ``masked`` chromosomes."""
        x = expression.index_select(1, self.kept_genes) if self._select_genes else expression
        return x.masked_fill(masked[self.gene_chromosomes], 0.0)
