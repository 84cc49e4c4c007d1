"""The Regional Methylation Decoder (paper, Section 3.4); its chromosome bookkeeping is in :mod:`._chromosomes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..._constants import CHROMOSOMES
from ..._validation import InvalidInputError
from ._chromosomes import ChromosomeInputs, chromosome_indices
from ._projector import check_dropout, check_features, check_positive_dim

__all__ = ["RegionalMethylationDecoder", "chromosome_indices"]  # chromosome_indices: re-exported

ShuffleMode = Literal["per_call", "per_epoch"]


class _CrossAttentionLayer(nn.Module):
    """Cross-attention block: attention to the regions' memory, then a feed-forward network.

    Post-norm (the paper's / PyTorch's default): ``x = LayerNorm(x + Dropout(MHA(q=x, k=v=memory)))``;
    ``x = LayerNorm(x + Dropout(FFN(x)))``. Pre-norm (``norm_first=True``): ``x = x + Dropout(MHA(q=LayerNorm(x),
    k=v=memory))``; ``x = x + Dropout(FFN(LayerNorm(x)))`` (the decoder then applies a final LayerNorm).
    """

    def __init__(
        self, d_model: int, n_heads: int, d_feedforward: int, dropout: float, norm_first: bool = False
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_feedforward), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_feedforward, d_model)
        )
        self.feed_forward_dropout = nn.Dropout(dropout)
        self.feed_forward_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        """``x``, ``memory``: ``(batch, n_chromosomes, d_model)``; ``key_padding_mask``: ``(batch, n_chromosomes)``."""
        if self.norm_first:
            query = self.attention_norm(x)
            attended, _ = self.attention(query, memory, memory, key_padding_mask=key_padding_mask, need_weights=False)
            x = x + self.attention_dropout(attended)
            return x + self.feed_forward_dropout(self.feed_forward(self.feed_forward_norm(x)))
        attended, _ = self.attention(x, memory, memory, key_padding_mask=key_padding_mask, need_weights=False)
        x = self.attention_norm(x + self.attention_dropout(attended))
        return self.feed_forward_norm(x + self.feed_forward_dropout(self.feed_forward(x)))


class RegionalMethylationDecoder(ChromosomeInputs, nn.Module):
    r"""Cross-attention decoder from regional (per-chromosome) RNA embeddings to the methylation slice.

    1. Per gene :math:`g` on chromosome :math:`c`: :math:`\mathrm{MLP}([e^{(gene)}_g; x_g])`, a learnable gene
       embedding (``d_gene``) concatenated with the scalar expression, through
       ``Linear(d_gene + 1, d_gene_hidden) -> GELU -> Linear(d_gene_hidden, d_model)``.
    2. Count-normalised mean per chromosome over its genes:
       :math:`h_c = |\mathcal G_c|^{-1} \sum_{g \in \mathcal G_c} \mathrm{MLP}(\cdot)`.
    3. ``n_layers`` post-norm (``norm_first=True``: pre-norm) cross-attention blocks (``n_heads`` heads,
       feed-forward ``d_feedforward``): queries are the regions :math:`h_c` (updated layer by layer), keys and
       values the fixed memory :math:`H + P_{chrom}` with learned chromosome positional embeddings
       :math:`P_{chrom}`.
    4. Mean over the chromosomes, then ``Linear(d_model, d_out)``.

    Parameters
    ----------
    gene_chromosomes
        ``(n_genes,)`` chromosome index (into ``chromosomes``) of each input gene, in the column order of the
        expression passed to ``forward``; ``-1`` marks genes to ignore (not TME genes, chromosome Y, unknown).
        Build it from labels with :func:`chromosome_indices`.
    chromosomes
        Names of the regions (default: autosomes 1-22 and X, :data:`cfmd.datasets.CHROMOSOMES`); masked
        chromosomes may be given by name.
    d_out
        Width of the predicted methylation slice (48 in the paper).
    d_gene
        Width of the learnable gene embedding :math:`e^{(gene)}_g`.
    d_model
        Width of the regional embeddings and of the attention layers.
    d_gene_hidden
        Hidden width of the per-gene MLP (default ``d_model``).
    n_heads
        Attention heads (must divide ``d_model``).
    d_feedforward
        Hidden width of the feed-forward network of each attention block.
    n_layers
        Number of cross-attention blocks.
    dropout
        Dropout in the attention weights, after attention and in/after the feed-forward networks.
    shuffle_positions
        Negative control of the LOCO audit. ``None`` (default): chromosome :math:`c` always receives
        :math:`P_{chrom}[c]`. ``"per_call"``: in training mode every forward call permutes the positional
        embeddings with a fresh random permutation. ``"per_epoch"``: in training mode one permutation is used
        for a whole epoch (call :meth:`set_epoch` at the start of each epoch). Both are drawn from a private
        NumPy generator seeded by ``(shuffle_seed, epoch)``, so they do not consume or depend on the global
        torch RNG and a resumed run reproduces them. Evaluation mode never shuffles.
    shuffle_seed
        Seed of the permutations.
    gene_weights
        Variant (not the paper's; default ``False``). ``True`` gives every gene its own weight vector on its
        expression in the first gene-MLP layer: the pre-activation of gene :math:`g` becomes
        :math:`W_e e_g + (w_x + \Delta_g) x_g + b` instead of :math:`W_e e_g + w_x x_g + b`, with a learned
        ``(n_kept_genes, d_gene_hidden)`` table :math:`\Delta` initialised to zero (so the initial function is the
        paper's). In the paper's MLP the expression slope :math:`w_x` is shared by all genes and a gene can only
        modulate it through where its embedding places it on the GELU; with :math:`\Delta_g` the count-normalised
        mean can weight genes by their expression with gene-specific signs and sizes directly. Held-out
        meth-slice R^2 (``benchmarks/rmd_experiments.py``, 40 epochs, lr 3e-3): 0.18 -> 0.68 on the synthetic
        cohort, 0.50 -> 0.70 on TCGA-LIHC; a higher learning rate than the paper's 3e-4 is needed either way.
    norm_first
        Variant (default ``False``, the paper's post-norm blocks). ``True`` uses pre-norm cross-attention blocks
        (LayerNorm on the queries before attention and before the feed-forward network, residuals un-normalised)
        followed by a final LayerNorm before the mean over chromosomes.
    positional_embeddings
        ``True`` (default, the paper): add the learned chromosome positional embeddings :math:`P_{chrom}` to the
        attention memory. ``False`` (ablation): :math:`P_{chrom}` is a frozen zero (its parameter is kept, so
        the other weights are initialised exactly as with ``True``); incompatible with ``shuffle_positions``.

    Notes
    -----
    **Masking** (``forward(..., masked_chromosomes=...)``, the leave-one-chromosome-out audit): a masked
    chromosome is *removed*: its genes' expression is replaced by 0 before the gene MLP, its region is zeroed,
    it is excluded from the attention keys/values (``key_padding_mask``) and from the final mean over
    chromosomes (its query output is discarded), and its positional embedding is zeroed (ablated). The
    output is therefore exactly (bitwise) invariant to the masked genes' expression and receives no gradient
    through the masked chromosome's positional embedding. Use the same mask in training and evaluation.

    **Empty chromosomes** (no input gene maps to them) are removed the same way, permanently, so they never
    produce NaN; masking every non-empty chromosome raises :class:`~cfmd._validation.InvalidInputError`.

    **Efficiency**: nothing loops over genes or chromosomes. The first gene-MLP layer is split into a
    gene-only part (computed once per call, ``(n_genes, d_gene_hidden)``) plus expression times a weight
    vector; the count-normalised mean is a product with a dense ``(n_chromosomes, n_genes)`` assignment
    matrix of ``1/|G_c|`` entries. Because the mean is linear it is taken *before* the second (linear)
    gene-MLP layer, which is the same function as averaging the MLP outputs, evaluated with
    ``n_chromosomes`` instead of ``n_genes`` rows. The largest activation is one
    ``(batch, n_genes, d_gene_hidden)`` tensor (also with ``gene_weights``, whose per-gene slopes are one
    ``(n_genes, d_gene_hidden)`` table); a training step at batch 64, 4,296 genes and width 256 keeps
    about 0.39 GB for the backward pass (0.28 GB of it that tensor).

    The expression should be on a log scale and standardised per gene with training-split statistics (the
    caller's job); a masked gene is then set to its training mean (0).

    Examples
    --------
    >>> decoder = RegionalMethylationDecoder([0, 0, 1, 22, -1], d_model=32, d_gene_hidden=16, d_feedforward=64)
    >>> decoder(torch.randn(3, 5), masked_chromosomes=["X"]).shape
    torch.Size([3, 48])
    """

    def __init__(
        self,
        gene_chromosomes: Sequence[int] | np.ndarray | torch.Tensor,
        *,
        chromosomes: Sequence[str] = CHROMOSOMES,
        d_out: int = 48,
        d_gene: int = 32,
        d_model: int = 256,
        d_gene_hidden: int | None = None,
        n_heads: int = 4,
        d_feedforward: int = 1024,
        n_layers: int = 2,
        dropout: float = 0.1,
        shuffle_positions: ShuffleMode | None = None,
        shuffle_seed: int = 0,
        gene_weights: bool = False,
        norm_first: bool = False,
        positional_embeddings: bool = True,
    ) -> None:
        super().__init__()
        n_kept = self._init_chromosome_inputs(gene_chromosomes, chromosomes)
        n_chromosomes = self.n_chromosomes
        self.d_out = check_positive_dim(d_out, "d_out")
        self.d_gene = check_positive_dim(d_gene, "d_gene")
        self.d_model = check_positive_dim(d_model, "d_model")
        self.d_gene_hidden = check_positive_dim(d_model if d_gene_hidden is None else d_gene_hidden, "d_gene_hidden")
        n_heads = check_positive_dim(n_heads, "n_heads")
        if self.d_model % n_heads:
            raise InvalidInputError(f"`n_heads` ({n_heads}) must divide `d_model` ({self.d_model}).")
        d_feedforward = check_positive_dim(d_feedforward, "d_feedforward")
        n_layers = check_positive_dim(n_layers, "n_layers")
        dropout = check_dropout(dropout)
        if shuffle_positions not in (None, "per_call", "per_epoch"):
            raise InvalidInputError(
                f"`shuffle_positions` must be None, 'per_call' or 'per_epoch'; got {shuffle_positions!r}."
            )
        if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int | np.integer) or shuffle_seed < 0:
            raise InvalidInputError(f"`shuffle_seed` must be a non-negative integer; got {shuffle_seed!r}.")
        for name, flag in (
            ("gene_weights", gene_weights),
            ("norm_first", norm_first),
            ("positional_embeddings", positional_embeddings),
        ):
            if not isinstance(flag, bool | np.bool_):
                raise InvalidInputError(f"`{name}` must be True or False; got {flag!r}.")
        if not positional_embeddings and shuffle_positions is not None:
            raise InvalidInputError(
                "`shuffle_positions` shuffles the chromosome positional embeddings; it needs `positional_embeddings=True`."
            )

        self.gene_embedding = nn.Embedding(n_kept, self.d_gene)
        self.gene_mlp_in = nn.Linear(self.d_gene + 1, self.d_gene_hidden)
        self.gene_mlp_out = nn.Linear(self.d_gene_hidden, self.d_model)
        self.chromosome_positions = nn.Parameter(torch.empty(n_chromosomes, self.d_model))
        nn.init.normal_(self.chromosome_positions, std=0.02)
        self.layers = nn.ModuleList(
            _CrossAttentionLayer(self.d_model, n_heads, d_feedforward, dropout, norm_first=bool(norm_first))
            for _ in range(n_layers)
        )
        self.output_layer = nn.Linear(self.d_model, self.d_out)
        # Variants: created after the paper's parameters and without drawing from the RNG, so a default decoder
        # initialises exactly as before these options existed.
        self.gene_weights = bool(gene_weights)
        self.norm_first = bool(norm_first)
        self.positional_embeddings = bool(positional_embeddings)
        self.gene_expression_weights = (
            nn.Parameter(torch.zeros(n_kept, self.d_gene_hidden)) if self.gene_weights else None
        )
        self.final_norm = nn.LayerNorm(self.d_model) if self.norm_first else None
        if not self.positional_embeddings:
            with torch.no_grad():
                self.chromosome_positions.zero_()
            self.chromosome_positions.requires_grad_(False)

        self.shuffle_positions = shuffle_positions
        self.shuffle_seed = int(shuffle_seed)
        self.set_epoch(0)

    # ------------------------------------------------------------------ positional shuffling
    def set_epoch(self, epoch: int) -> None:
        """Re-seed the positional-embedding shuffle for ``epoch`` (call at the start of every training epoch).

        With ``shuffle_positions="per_epoch"`` this fixes the epoch's permutation; with ``"per_call"`` it
        restarts the per-call sequence from ``(shuffle_seed, epoch)``. No effect without shuffling.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
            raise InvalidInputError(f"`epoch` must be a non-negative integer; got {epoch!r}.")
        self._shuffle_rng = np.random.default_rng([self.shuffle_seed, int(epoch)])
        self._epoch_permutation = torch.as_tensor(self._shuffle_rng.permutation(self.n_chromosomes))

    def position_permutation(self) -> torch.Tensor | None:
        """The permutation a training-mode forward call would apply now (``None`` when not shuffling).

        Chromosome ``c`` receives ``P_chrom[perm[c]]``. For ``"per_call"`` this *draws* the next permutation.
        """
        if self.shuffle_positions is None or not self.training:
            return None
        if self.shuffle_positions == "per_epoch":
            return self._epoch_permutation
        return torch.as_tensor(self._shuffle_rng.permutation(self.n_chromosomes))

    # ------------------------------------------------------------------ forward
    def _excluded(self, masked_chromosomes, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Masked and excluded (masked or empty) ``(n_chromosomes,)`` booleans on ``device``, and the kept count.

        Checked on the host, so a CUDA forward pass does not synchronise.
        """
        masked = self.masked_chromosomes_cpu(masked_chromosomes)
        excluded = masked | self._empty_chromosomes_cpu
        n_kept = int((~excluded).sum())
        if n_kept == 0:
            raise InvalidInputError(
                "`masked_chromosomes` removes every chromosome that has genes; at least one region must remain."
            )
        return masked.to(device), excluded.to(device), n_kept

    def _regions(self, expression: torch.Tensor, masked: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
        x = self.masked_gene_input(expression, masked)  # (B, G)
        # Per-gene MLP on [e_g; x_g]; its first layer split into a gene part and an expression part, its
        # (linear) second layer moved after the per-chromosome mean.
        weight, bias = self.gene_mlp_in.weight, self.gene_mlp_in.bias  # (H, d_gene + 1), (H,)
        gene_part = F.linear(self.gene_embedding.weight, weight[:, : self.d_gene], bias)  # (G, H)
        slope = weight[:, self.d_gene]  # (H,): shared by all genes (the paper's MLP)
        if self.gene_expression_weights is not None:
            slope = slope + self.gene_expression_weights  # (G, H): gene-specific expression weights
        hidden = F.gelu(torch.addcmul(gene_part, x.unsqueeze(-1), slope))  # (B, G, H)
        pooled = torch.matmul(self.assignment.to(hidden.dtype), hidden)  # (B, C, H)
        return self.gene_mlp_out(pooled).masked_fill(excluded.unsqueeze(-1), 0.0)  # (B, C, D)

    def regional_embeddings(
        self,
        expression: torch.Tensor,
        *,
        masked_chromosomes: Sequence[int | str] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The regional RNA embeddings :math:`H` (before attention and positional embeddings).

        Parameters
        ----------
        expression
            ``(batch, n_genes)`` expression, as for :meth:`forward`.
        masked_chromosomes
            Chromosomes to remove, as for :meth:`forward`.

        Returns
        -------
        ``(batch, n_chromosomes, d_model)``; rows of masked and empty chromosomes are exactly 0.
        """
        check_features(expression, self.n_genes, "RegionalMethylationDecoder input `expression`")
        masked, excluded, _ = self._excluded(masked_chromosomes, expression.device)
        return self._regions(expression, masked, excluded)

    def forward(
        self,
        expression: torch.Tensor,
        *,
        masked_chromosomes: Sequence[int | str] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the methylation slice from TME-gene expression.

        Parameters
        ----------
        expression
            ``(batch, n_genes)`` expression, columns aligned with ``gene_chromosomes`` (log scale,
            standardised per gene with training-split statistics).
        masked_chromosomes
            Chromosomes to remove (see Notes of the class): indices, names (``"X"``, ``"chr7"``), an integer
            index tensor or a ``(n_chromosomes,)`` boolean tensor. The same for every patient in the batch.

        Returns
        -------
        ``(batch, d_out)`` predicted methylation slice.
        """
        check_features(expression, self.n_genes, "RegionalMethylationDecoder input `expression`")
        masked, excluded, n_kept = self._excluded(masked_chromosomes, expression.device)
        regions = self._regions(expression, masked, excluded)  # (B, C, D)

        positions = self.chromosome_positions  # (C, D)
        permutation = self.position_permutation()
        if permutation is not None:
            positions = positions.index_select(0, permutation.to(expression.device))
        positions = positions.masked_fill(excluded.unsqueeze(-1), 0.0)  # ablate removed chromosomes
        memory = regions + positions
        key_padding_mask = excluded.unsqueeze(0).expand(expression.shape[0], -1)  # (B, C)

        out = regions
        for layer in self.layers:
            out = layer(out, memory, key_padding_mask)
        if self.final_norm is not None:
            out = self.final_norm(out)
        pooled = out.masked_fill(excluded.unsqueeze(-1), 0.0).sum(dim=1) / n_kept  # (B, D)
        return self.output_layer(pooled)

    def extra_repr(self) -> str:
        return (
            f"n_genes={self.n_genes}, n_kept_genes={self.kept_genes.numel()}, n_chromosomes={self.n_chromosomes}, "
            f"n_empty_chromosomes={int(self.empty_chromosomes.sum())}, shuffle_positions={self.shuffle_positions!r}, "
            f"gene_weights={self.gene_weights}, norm_first={self.norm_first}, "
            f"positional_embeddings={self.positional_embeddings}"
        )
