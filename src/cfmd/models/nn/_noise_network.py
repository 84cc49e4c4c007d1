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
from torch import nn

from ..._utils import import_diffusers

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
        sinusoid = import_diffusers().get_timestep_embedding(
            t.reshape(-1), self.time_embedding_dim, flip_sin_to_cos=False
        )
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

    The weights are stacked once, with BatchNorm's running statistics folded into the preceding linear layer and
    every concatenation split into a sum of products. Two things then stop depending on the row or the step:

    - the condition embeddings' contribution to the first layer depends on neither ``x_t`` nor ``t``: computed
      once per sampling run (:meth:`condition_bias`);
    - the time embedding is the same for every row at a step: embedded once per step (one row) and its
      contribution to each layer broadcast over the rows.

    One reverse step of an M-member ensemble is then ``n_layers + 1`` batched matrix products on ``x_t`` and the
    hidden activations only, instead of M full forward passes.

    Parameters
    ----------
    networks
        The members (each in evaluation mode; same ``n_features``, widths and condition-embedding width).
    """

    def __init__(self, networks: Sequence[ConditionalNoiseMLP]) -> None:
        first = networks[0]
        shapes = {tuple(p.shape for p in (*net.hidden.parameters(), *net.output.parameters())) for net in networks}
        if len(shapes) != 1 or len({net.time_embedding_dim for net in networks}) != 1:
            raise ValueError("stacked networks must have identical trunk shapes")
        n_x, n_t = first.n_features, first.time_embedding_dim
        self.time_embedding_dim = n_t
        with torch.no_grad():
            self.time_w = torch.stack([n.time_dense.weight.T for n in networks])  # (M, s, s)
            self.time_b = torch.stack([n.time_dense.bias for n in networks]).unsqueeze(1)  # (M, 1, s)
            self.layers = []  # per layer: (W on the previous activations, W on t_emb, bias), BatchNorm folded
            for k in range(len(first.hidden)):
                w_h, w_t, biases = [], [], []
                for net in networks:
                    lin, bn = net.hidden[k], net.norms[k]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    weight = lin.weight * scale[:, None]
                    n_prev = n_x if k == 0 else lin.in_features - n_t
                    w_h.append(weight[:, :n_prev].T)
                    w_t.append(weight[:, n_prev : n_prev + n_t].T)
                    if k == 0:
                        self._first_condition_w = getattr(self, "_first_condition_w", []) + [weight[:, n_x + n_t :].T]
                    biases.append((lin.bias - bn.running_mean) * scale + bn.bias)
                self.layers.append((torch.stack(w_h), torch.stack(w_t), torch.stack(biases).unsqueeze(1)))
            self.condition_w = torch.stack(self._first_condition_w)  # (M, E, H)
            del self._first_condition_w
            n_h = first.output.in_features - n_t
            self.out_w = torch.stack([n.output.weight[:, :n_h].T for n in networks])
            self.out_wt = torch.stack([n.output.weight[:, n_h:].T for n in networks])
            self.out_b = torch.stack([n.output.bias for n in networks]).unsqueeze(1)

    def condition_bias(self, c_emb: torch.Tensor) -> torch.Tensor:
        """``(M, batch, E)`` condition embeddings -> their ``(M, batch, H)`` first-layer contribution (+ bias)."""
        return torch.baddbmm(self.layers[0][2], c_emb, self.condition_w)

    def predict(self, x: torch.Tensor, t: torch.Tensor, condition_bias: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, F)``, one timestep ``t``, :meth:`condition_bias` -> predicted noise ``(M, batch, F)``."""
        n_members = condition_bias.shape[0]
        sinusoid = import_diffusers().get_timestep_embedding(
            t.reshape(-1)[:1], self.time_embedding_dim, flip_sin_to_cos=False
        )
        t_emb = torch.relu(torch.baddbmm(self.time_b, sinusoid.expand(n_members, -1, -1), self.time_w))  # (M, 1, s)
        w_x, w_t, _ = self.layers[0]
        h = torch.baddbmm(condition_bias, x.expand(n_members, -1, -1), w_x)
        h.add_(torch.bmm(t_emb, w_t)).relu_()  # in place: the activations are the only (M, batch, H) tensors
        for w_h, w_t, bias in self.layers[1:]:
            h = torch.baddbmm(torch.baddbmm(bias, t_emb, w_t), h, w_h).relu_()
        return torch.baddbmm(torch.baddbmm(self.out_b, t_emb, self.out_wt), h, self.out_w)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c_emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, F)``, one timestep ``t``, ``c_emb`` ``(M, batch, E)`` -> noise ``(M, batch, F)``."""
        return self.predict(x, t, self.condition_bias(c_emb))
