"""The seed's noise-prediction MLP (Generative imputation, seed 004) and a stacked evaluation of several of them.

``ConditionalNoiseMLP`` follows the paper's Methods ("Model Implementation and Training") and the authors'
``MultiConditioningDiffusionModelNormMLP``: sinusoidal time embedding (diffusers' ``get_timestep_embedding``)
through ``Linear -> ReLU``; one ``Linear -> ReLU`` projection per condition into its own embedding, multiplied by
the condition's availability mask (a missing condition contributes an exact zero); the input ``[x_t, t_emb,
c_emb_1, ..., c_emb_K]``; hidden layers ``Linear -> BatchNorm -> ReLU`` with the time embedding re-concatenated
after each; a final linear layer predicting the noise.

:class:`StackedNoiseTrunks` evaluates the trunks of several networks of identical shape as ONE batched call
(``torch.baddbmm`` over stacked weights, BatchNorm folded into them in evaluation mode): what the Coherent
Denoising ensemble needs at each reverse step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

__all__ = ["ConditionalNoiseMLP", "StackedNoiseTrunks"]


class ConditionalNoiseMLP(nn.Module):
    """Noise predictor ``eps_theta(x_t, t, {c_k})`` of a conditional DDPM on tabular (latent) data.

    Parameters
    ----------
    n_features
        Width of the diffused vector ``x``.
    condition_dims
        Ordered ``{condition name: width}``; may be empty (an unconditional model).
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden ``Linear -> BatchNorm -> ReLU`` layers (the output layer comes on top).
    time_embedding_dim
        Width of the sinusoidal time embedding (and of its dense projection).
    condition_embedding_dim
        Width of each condition's projection.
    """

    def __init__(
        self,
        n_features: int,
        condition_dims: Mapping[str, int],
        *,
        n_hidden: int = 256,
        n_layers: int = 3,
        time_embedding_dim: int = 64,
        condition_embedding_dim: int = 16,
    ) -> None:
        super().__init__()
        self.n_features, self.time_embedding_dim = int(n_features), int(time_embedding_dim)
        self.condition_names = list(condition_dims)
        self.condition_embedding_dim = int(condition_embedding_dim)
        self.condition_projections = nn.ModuleDict(
            {name: nn.Linear(int(dim), self.condition_embedding_dim) for name, dim in condition_dims.items()}
        )
        self.time_dense = nn.Linear(self.time_embedding_dim, self.time_embedding_dim)
        width = self.n_features + self.time_embedding_dim + self.condition_embedding_dim * len(self.condition_names)
        self.hidden = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(int(n_layers)):
            self.hidden.append(nn.Linear(width, int(n_hidden)))
            self.norms.append(nn.BatchNorm1d(int(n_hidden)))
            width = int(n_hidden) + self.time_embedding_dim
        self.output = nn.Linear(width, self.n_features)

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """``(batch,)`` integer timesteps -> ``(batch, time_embedding_dim)`` (sinusoid, dense, ReLU)."""
        sinusoid = get_timestep_embedding(t.reshape(-1), self.time_embedding_dim, flip_sin_to_cos=False)
        return torch.relu(self.time_dense(sinusoid.to(self.time_dense.weight.dtype)))

    def embed_conditions(
        self,
        conditions: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None = None,
        *,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Concatenated condition embeddings ``(batch, K * condition_embedding_dim)``.

        A condition absent from ``conditions`` is all-zero; ``masks[name]`` (``(batch,)``, 0/1) zeroes the
        projection of the patients who lack it.
        """
        if batch_size is None:
            batch_size = next(iter(conditions.values())).shape[0] if conditions else 0
        device = self.output.weight.device
        parts = []
        for name in self.condition_names:
            if name not in conditions:
                parts.append(torch.zeros(batch_size, self.condition_embedding_dim, device=device))
                continue
            emb = torch.relu(self.condition_projections[name](conditions[name]))
            if masks is not None and name in masks:
                emb = emb * masks[name].reshape(-1, 1).to(emb.dtype)
            parts.append(emb)
        if not parts:
            return torch.zeros(batch_size, 0, device=device)
        return torch.cat(parts, dim=-1)

    def trunk(self, x: torch.Tensor, t_emb: torch.Tensor, c_emb: torch.Tensor) -> torch.Tensor:
        """The MLP on ``[x, t_emb, c_emb]`` with the time embedding re-injected after every hidden layer."""
        h = torch.cat([x, t_emb, c_emb], dim=-1)
        for linear, norm in zip(self.hidden, self.norms):
            h = torch.cat([torch.relu(norm(linear(h))), t_emb], dim=-1)
        return self.output(h)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        conditions: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Predicted noise ``(batch, n_features)``."""
        return self.trunk(x, self.embed_time(t), self.embed_conditions(conditions, masks, batch_size=x.shape[0]))


class StackedNoiseTrunks:
    """Several :class:`ConditionalNoiseMLP` of identical shape evaluated as one batched call (evaluation mode).

    The weights are stacked once (BatchNorm's running statistics folded into the preceding linear layer), so
    one reverse step of an M-member ensemble is ``n_layers + 2`` batched matrix products instead of M forward
    passes. The condition embeddings do not depend on ``x_t`` or ``t``: the caller computes them once per
    sampling run and passes them stacked, ``(M, batch, E)``.

    Parameters
    ----------
    networks
        The members (each in evaluation mode; same ``n_features``, widths and number of conditions).
    """

    def __init__(self, networks: Sequence[ConditionalNoiseMLP]) -> None:
        first = networks[0]
        shapes = {tuple(p.shape for p in (*net.hidden.parameters(), *net.output.parameters())) for net in networks}
        if len(shapes) != 1 or len({net.time_embedding_dim for net in networks}) != 1:
            raise ValueError("stacked networks must have identical trunk shapes")
        self.time_embedding_dim = first.time_embedding_dim
        with torch.no_grad():
            self.time_w = torch.stack([n.time_dense.weight.T for n in networks])  # (M, s, s)
            self.time_b = torch.stack([n.time_dense.bias for n in networks]).unsqueeze(1)  # (M, 1, s)
            self.layers = []
            for k in range(len(first.hidden)):
                weights, biases = [], []
                for net in networks:
                    lin, bn = net.hidden[k], net.norms[k]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    weights.append((lin.weight * scale[:, None]).T)
                    biases.append((lin.bias - bn.running_mean) * scale + bn.bias)
                self.layers.append((torch.stack(weights), torch.stack(biases).unsqueeze(1)))
            self.out_w = torch.stack([n.output.weight.T for n in networks])
            self.out_b = torch.stack([n.output.bias for n in networks]).unsqueeze(1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c_emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, F)``, ``t`` ``(batch,)``, ``c_emb`` ``(M, batch, E)`` -> predicted noise ``(M, batch, F)``."""
        sinusoid = get_timestep_embedding(t.reshape(-1), self.time_embedding_dim, flip_sin_to_cos=False)
        n_members = c_emb.shape[0]
        t_emb = torch.relu(torch.baddbmm(self.time_b, sinusoid.expand(n_members, -1, -1), self.time_w))
        t_emb = t_emb.expand(-1, x.shape[0], -1)  # one timestep for all rows: embedded once
        h = torch.cat([x.expand(n_members, -1, -1), t_emb, c_emb], dim=-1)
        for weight, bias in self.layers:
            h = torch.cat([torch.relu(torch.baddbmm(bias, h, weight)), t_emb], dim=-1)
        return torch.baddbmm(self.out_b, h, self.out_w)
