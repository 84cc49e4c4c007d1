"""Student projectors :math:`P_G` and :math:`P_E` (paper, Sections 3.3 and 8)."""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn

from ..._validation import InvalidInputError

__all__ = ["Projector"]


def check_positive_dim(value: int, name: str) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer, else raise :class:`InvalidInputError`."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise InvalidInputError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)


def check_dropout(value: float, name: str = "dropout") -> float:
    """Return ``value`` as a ``float`` if it lies in ``[0, 1)``, else raise :class:`InvalidInputError`."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) < 1.0:
        raise InvalidInputError(f"`{name}` must be a probability in [0, 1); got {value!r}.")
    return float(value)


def check_features(x: torch.Tensor, width: int, field: str) -> None:
    """Raise :class:`InvalidInputError` unless ``x`` is a 2-d floating-point tensor with ``width`` columns."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{field} must be a torch.Tensor; got {type(x).__name__}.")
    if x.ndim != 2 or x.shape[1] != width:
        raise InvalidInputError(f"{field} must have shape (batch, {width}); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise InvalidInputError(f"{field} must be a floating-point tensor; got dtype {x.dtype}.")


class Projector(nn.Module):
    r"""Two-layer student projector: ``Linear -> GELU -> Dropout -> Linear``.

    The paper's :math:`P_G` (Geneformer cell embedding -> 200-d pathway slice) and :math:`P_E`
    (ESM-2 structural fingerprint -> 16-d residual slice), both with hidden width :math:`d_h = 512`,
    GELU and dropout 0.1.

    Parameters
    ----------
    d_in
        Width of the teacher representation (e.g. 256 or 512 for Geneformer, 1280 for ESM-2 650M).
    d_out
        Width of the latent slice the projector fills.
    d_hidden
        Hidden width :math:`d_h`.
    dropout
        Dropout probability applied to the hidden representation before the output layer.

    Notes
    -----
    ``forward`` also returns the hidden representation :math:`h = \mathrm{GELU}(W_1 x + b_1)` taken
    **after the activation and before dropout**. The orthogonality loss
    (:func:`~cfmd.models.nn.orthogonality_loss`) is computed on this :math:`h`: it is the
    representation the output layer sees in evaluation mode, and it does not carry dropout's
    independent random masks, which would add noise to the batch cross-covariance that the loss
    penalises. Dropout only regularises the output layer.

    Examples
    --------
    >>> p_g = Projector(512, 200)
    >>> out, hidden = p_g(torch.randn(8, 512))
    >>> tuple(out.shape), tuple(hidden.shape)
    ((8, 200), (8, 512))
    """

    def __init__(self, d_in: int, d_out: int, *, d_hidden: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_in = check_positive_dim(d_in, "d_in")
        self.d_out = check_positive_dim(d_out, "d_out")
        self.d_hidden = check_positive_dim(d_hidden, "d_hidden")
        self.hidden_layer = nn.Linear(self.d_in, self.d_hidden)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.output_layer = nn.Linear(self.d_hidden, self.d_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project a batch of teacher representations.

        Parameters
        ----------
        x
            ``(batch, d_in)`` teacher representations.

        Returns
        -------
        output
            ``(batch, d_out)`` predicted latent slice.
        hidden
            ``(batch, d_hidden)`` hidden representation :math:`h` (post-GELU, pre-dropout) for the
            orthogonality loss.
        """
        check_features(x, self.d_in, "Projector input")
        hidden = self.activation(self.hidden_layer(x))
        output = self.output_layer(self.dropout(hidden))
        return output, hidden

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_hidden={self.d_hidden}, d_out={self.d_out}"
