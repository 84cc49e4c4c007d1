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


def _aligned(width: int) -> int:
    """``width`` rounded up to a multiple of 8 (odd GEMM widths are markedly slower in MKL on CPU)."""
    return -(-int(width) // 8) * 8


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

    The weights are stacked once, BatchNorm's running statistics folded into the preceding linear layer, and every
    layer written as ONE augmented matrix ``[[W], [bias]]`` acting on activations that carry a constant-1 column
    (the matrices keep that column alive; widths padded to a multiple of 8), so a layer is a single ``torch.bmm`` into a preallocated buffer plus an
    in-place ReLU: no bias pass, no concatenation, no broadcast copy. Two things stop depending on the row:

    - the condition embeddings are fixed columns of the first layer's input buffer (written once per run);
    - the time embedding is the same for every row at a step: embedded once per step (one row) and its
      contribution to each layer added to that layer's bias row.

    One reverse step of an M-member ensemble is then ``n_layers + 1`` batched matrix products (and a copy of the
    ``(batch, n_features)`` ``x_t`` into the input buffer) instead of M full forward passes.

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
        self.n_features, self.time_embedding_dim = n_x, n_t
        self.n_members = len(networks)
        with torch.no_grad():
            self.time_w = torch.stack([n.time_dense.weight.T for n in networks])  # (M, s, s)
            self.time_b = torch.stack([n.time_dense.bias for n in networks]).unsqueeze(1)  # (M, 1, s)
            # per layer k: augmented matrix (M, n_in + 1, n_out [+ 1]); base bias (M, 1, n_out); W on t_emb
            self.matrices, self.bias_rows, self.biases, self.time_weights = [], [], [], []
            for k in range(len(first.hidden)):
                w_in, w_t, biases = [], [], []
                for net in networks:
                    lin, bn = net.hidden[k], net.norms[k]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    weight = lin.weight * scale[:, None]
                    if k == 0:  # input [x, t_emb, c_emb] -> rows for x then c_emb
                        w_in.append(torch.cat([weight[:, :n_x], weight[:, n_x + n_t :]], 1).T)
                        w_t.append(weight[:, n_x : n_x + n_t].T)
                    else:  # input [h, t_emb]
                        n_prev = lin.in_features - n_t
                        w_in.append(weight[:, :n_prev].T)
                        w_t.append(weight[:, n_prev:].T)
                    biases.append((lin.bias - bn.running_mean) * scale + bn.bias)
                self._add_layer(torch.stack(w_in), torch.stack(w_t), torch.stack(biases), keep_one=True)
            n_h = first.output.in_features - n_t
            self._add_layer(
                torch.stack([n.output.weight[:, :n_h].T for n in networks]),
                torch.stack([n.output.weight[:, n_h:].T for n in networks]),
                torch.stack([n.output.bias for n in networks]),
                keep_one=False,
            )
        self.n_condition_inputs = self.bias_rows[0] - n_x

    def _add_layer(self, w_in: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor, *, keep_one: bool) -> None:
        n_members, n_in, n_out = w_in.shape
        rows = self.matrices[-1].shape[2] if self.matrices else _aligned(n_in + 1)
        matrix = torch.zeros(n_members, rows, _aligned(n_out + 1) if keep_one else n_out, dtype=w_in.dtype)
        matrix[:, :n_in, :n_out] = w_in  # row n_in: the bias (rewritten per step); rows below: padding
        if keep_one:
            matrix[:, n_in, n_out] = 1.0  # the constant-1 column survives the layer (and its ReLU)
        self.matrices.append(matrix)
        self.bias_rows.append(n_in)
        self.biases.append(bias.unsqueeze(1))
        self.time_weights.append(w_t)

    def time_rows(self, timesteps: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the ``(M, len(timesteps), n_out)`` bias rows (bias + time embedding's contribution)."""
        sinusoid = (
            import_diffusers()
            .get_timestep_embedding(timesteps.reshape(-1), self.time_embedding_dim, flip_sin_to_cos=False)
            .to(self.time_w.dtype)
        )
        t_emb = torch.baddbmm(self.time_b, sinusoid.expand(self.n_members, -1, -1), self.time_w).relu_()
        return [torch.baddbmm(bias, t_emb, w_t) for bias, w_t in zip(self.biases, self.time_weights)]

    def session(self, c_emb: torch.Tensor, timesteps: torch.Tensor | None = None):
        """A predictor ``(x, t) -> (M, batch, F)`` for fixed ``(M, batch, E)`` condition embeddings.

        Its activation buffers are allocated once, and the time-dependent bias rows of ``timesteps`` (e.g. the
        scheduler's) are computed up front in one batched call (other timesteps on first use, then cached). The
        returned noise tensor is overwritten by the next call (no gradients: evaluation only).
        """
        n_members, n_rows, _ = c_emb.shape
        if n_members != self.n_members or c_emb.shape[2] != self.n_condition_inputs:
            raise ValueError(f"c_emb must be (M={self.n_members}, batch, {self.n_condition_inputs})")
        n_x = self.n_features
        with torch.no_grad():
            inputs = torch.zeros(n_members, n_rows, self.matrices[0].shape[1], dtype=self.matrices[0].dtype)
            inputs[..., n_x : self.bias_rows[0]] = c_emb
            inputs[..., self.bias_rows[0]] = 1.0
            buffers = [torch.empty(n_members, n_rows, m.shape[2], dtype=m.dtype) for m in self.matrices]
            matrices = [m.clone() for m in self.matrices]  # bias rows rewritten at every step
            cache: dict[int, list[torch.Tensor]] = {}
            if timesteps is not None and len(timesteps):
                rows = self.time_rows(torch.as_tensor(timesteps))
                cache = {int(t): [r[:, k] for r in rows] for k, t in enumerate(torch.as_tensor(timesteps).tolist())}
        targets = [m[:, row, : b.shape[2]] for m, row, b in zip(matrices, self.bias_rows, self.biases)]

        @torch.no_grad()
        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            key = int(t.reshape(-1)[0])
            if key not in cache:
                cache[key] = [r[:, 0] for r in self.time_rows(t.reshape(-1)[:1])]
            for target, row in zip(targets, cache[key]):
                target.copy_(row)
            inputs[..., :n_x] = x
            h = inputs
            for matrix, out in zip(matrices[:-1], buffers[:-1]):
                h = torch.bmm(h, matrix, out=out).relu_()
            return torch.bmm(h, matrices[-1], out=buffers[-1])

        return predict

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c_emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, F)``, one timestep ``t``, ``c_emb`` ``(M, batch, E)`` -> noise ``(M, batch, F)``."""
        return self.session(c_emb)(x, t).clone()
