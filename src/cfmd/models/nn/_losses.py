"""Training losses of the CFMD imputer: the orthogonality penalty and per-slice reconstruction errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import torch

from ..._layout import LatentLayout
from ..._validation import InvalidInputError, describe_examples

__all__ = ["orthogonality_loss", "slice_reconstruction_losses"]


def _check_matrix(x: torch.Tensor, field: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{field} must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim != 2 or not x.is_floating_point():
        raise InvalidInputError(
            f"{field} must be a 2-d floating-point tensor (batch, dims); got shape {tuple(x.shape)}, dtype {x.dtype}."
        )


def orthogonality_loss(h_g: torch.Tensor, h_e: torch.Tensor) -> torch.Tensor:
    r"""Squared Frobenius norm of the batch cross-covariance of two hidden representations.

    .. math::

        \mathcal L_{ortho} = \frac{1}{d_G\, d_E} \big\lVert \mathrm{Cov}(h_G, h_E) \big\rVert_F^2, \qquad
        \mathrm{Cov}(h_G, h_E) = \frac{1}{n-1} (h_G - \bar h_G)^\top (h_E - \bar h_E)

    With the paper's :math:`d_G = d_E = d_h = 512` the normaliser is :math:`1/d_h^2`.

    Parameters
    ----------
    h_g
        ``(batch, d_G)`` hidden representation of :math:`P_G` (see :class:`~cfmd.models.nn.Projector`).
    h_e
        ``(batch, d_E)`` hidden representation of :math:`P_E`, same rows (patients) as ``h_g``.

    Returns
    -------
    0-d tensor. A batch of one patient has no covariance: the loss is then exactly 0 (still connected to the
    graph, never NaN).
    """
    _check_matrix(h_g, "`h_g`")
    _check_matrix(h_e, "`h_e`")
    if h_g.shape[0] != h_e.shape[0]:
        raise InvalidInputError(
            f"`h_g` and `h_e` must have the same batch size; got {h_g.shape[0]} and {h_e.shape[0]}."
        )
    n = h_g.shape[0]
    if n < 2:
        # Sums over empty slices: exact zeros that keep the graph (and cannot turn into NaN).
        return h_g[:, :0].sum() + h_e[:, :0].sum()
    centred_g = h_g - h_g.mean(dim=0, keepdim=True)
    centred_e = h_e - h_e.mean(dim=0, keepdim=True)
    covariance = centred_g.T @ centred_e / (n - 1)  # (d_G, d_E)
    return covariance.square().sum() / (h_g.shape[1] * h_e.shape[1])


def slice_reconstruction_losses(
    pred: torch.Tensor,
    target: torch.Tensor,
    layout: LatentLayout,
    *,
    slices: Sequence[str],
    weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""Per-slice mean squared errors and their weighted sum.

    For each slice :math:`s`, :math:`\mathrm{MSE}_s = \frac{1}{n\,|s|}\sum_i \lVert \hat z_{i,s} - z_{i,s}\rVert^2`
    (averaged over patients *and* the slice's dimensions, so a 200-d slice does not outweigh a 16-d one by
    its size); the total is :math:`\sum_s w_s\, \mathrm{MSE}_s`.

    Standardising the target (per latent dimension, with training-split statistics) is the **caller's** job;
    this function compares ``pred`` and ``target`` as given.

    Parameters
    ----------
    pred
        ``(batch, layout.n_dims)`` predicted latent (e.g. from :class:`~cfmd.models.nn.ScatterAssignment`).
    target
        ``(batch, layout.n_dims)`` observed latent, finite (drop patients without one before calling).
    layout
        Layout of both latents.
    slices
        Names of the slices to score (e.g. the non-``zero`` slices); unique, at least one.
    weights
        ``{slice name: weight >= 0}``; slices not listed get weight 1.

    Returns
    -------
    total
        0-d tensor, the weighted sum (the training objective's reconstruction term).
    per_slice
        ``{slice name: 0-d MSE tensor}`` for logging each slice separately (graph attached; call
        ``.detach()``/``.item()`` to log).
    """
    if not isinstance(layout, LatentLayout):
        raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
    _check_matrix(pred, "`pred`")
    _check_matrix(target, "`target`")
    layout.check_width(pred.shape[1], field="`pred`")
    layout.check_width(target.shape[1], field="`target`")
    if pred.shape != target.shape:
        raise InvalidInputError(f"`pred` {tuple(pred.shape)} and `target` {tuple(target.shape)} differ in shape.")
    if isinstance(slices, str):
        slices = [slices]
    slices = list(slices)
    if not slices:
        raise InvalidInputError("`slices` must name at least one slice.")
    if len(set(slices)) != len(slices):
        raise InvalidInputError(f"`slices` must be unique; got {describe_examples(slices)}.")
    for name in slices:
        layout[name]  # raises on unknown names
    weights = dict(weights or {})
    unused = [name for name in weights if name not in slices]
    if unused:
        raise InvalidInputError(f"`weights` names slices that are not scored: {describe_examples(unused)}.")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, Real) or not w >= 0 or w == float("inf"):
            raise InvalidInputError(f"weights[{name!r}] must be a finite number >= 0; got {w!r}.")

    per_slice = {name: torch.mean((layout.take(pred, name) - layout.take(target, name)).square()) for name in slices}
    total = sum((float(weights.get(name, 1.0)) * loss for name, loss in per_slice.items()), start=pred.new_zeros(()))
    return total, per_slice
