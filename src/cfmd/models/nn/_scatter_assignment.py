"""Gradient-isolated scatter assignment of slice predictions into the structured latent (paper, Section 3.3)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..._layout import LatentLayout
from ..._validation import InvalidInputError, describe_examples

__all__ = ["ScatterAssignment"]


class ScatterAssignment(nn.Module):
    r"""Write per-slice predictions into their index ranges of a detached zero latent.

    .. math::

        \hat z = \hat z_{base} + \sum_s m_s \odot \hat z_s, \qquad \hat z_{base} = 0 \text{ (no gradient)}

    implemented as one out-of-place :meth:`torch.Tensor.index_copy` of the concatenated slice predictions into
    the index ranges given by the layout. Its backward pass is an ``index_select`` of the incoming gradient:
    each prediction receives exactly the gradient of its own dimensions, nothing else, and dimensions of
    ``zero``-strategy slices are constants (exactly 0, connected to no parameter).

    Parameters
    ----------
    layout
        The latent layout. Every slice whose strategy is not ``"zero"`` must receive a prediction.

    Examples
    --------
    >>> import cfmd
    >>> layout = cfmd.LatentLayout.from_sizes({"a": (2, "geneformer"), "b": (1, "zero"), "c": (3, "esm")})
    >>> z = ScatterAssignment(layout)({"a": torch.ones(4, 2), "c": torch.full((4, 3), 2.0)})
    >>> z[0]
    tensor([1., 1., 0., 2., 2., 2.])
    """

    index: torch.Tensor

    def __init__(self, layout: LatentLayout) -> None:
        super().__init__()
        if not isinstance(layout, LatentLayout):
            raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
        self.layout = layout
        #: Slices that need a prediction, in latent order.
        self.assigned_slices: tuple[str, ...] = tuple(s.name for s in layout if s.strategy != "zero")
        #: Slices that stay exactly zero.
        self.zero_slices: tuple[str, ...] = tuple(s.name for s in layout if s.strategy == "zero")
        indices = [torch.arange(layout[name].start, layout[name].stop) for name in self.assigned_slices]
        self.register_buffer(
            "index", torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long), persistent=False
        )

    @property
    def n_dims(self) -> int:
        """Width of the assembled latent."""
        return self.layout.n_dims

    def forward(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Assemble the latent.

        Parameters
        ----------
        outputs
            ``{slice name: (batch, slice.dim) prediction}`` for every slice whose strategy is not ``"zero"``;
            all of one dtype and device. Predictions for ``zero`` slices or unknown slices are rejected.

        Returns
        -------
        ``(batch, n_dims)`` latent: predictions in their slices, exact zeros elsewhere.
        """
        if not isinstance(outputs, Mapping):
            raise InvalidInputError(f"`outputs` must map slice names to tensors; got {type(outputs).__name__}.")
        unknown = [name for name in outputs if name not in self.layout]
        if unknown:
            raise InvalidInputError(
                f"`outputs` names slices that are not in the layout: {describe_examples(unknown)}; "
                f"slices: {self.layout.names}."
            )
        zero = [name for name in outputs if name in self.zero_slices]
        if zero:
            raise InvalidInputError(
                f"`outputs` has predictions for zero-masked slices {describe_examples(zero)}; their strategy is "
                "'zero', so they stay exactly zero. Change the layout's strategy to fill them."
            )
        missing = [name for name in self.assigned_slices if name not in outputs]
        if missing:
            raise InvalidInputError(
                f"`outputs` lacks predictions for slices {describe_examples(missing)} (strategies "
                f"{describe_examples(self.layout[n].strategy for n in missing)}); only 'zero' slices may be left out."
            )
        if not self.assigned_slices:
            raise InvalidInputError(
                "Every slice of the layout is zero-masked; the batch size cannot be inferred from `outputs`."
            )
        first = outputs[self.assigned_slices[0]]
        for name in self.assigned_slices:
            value = outputs[name]
            width = self.layout[name].dim
            if not isinstance(value, torch.Tensor):
                raise InvalidInputError(f"outputs[{name!r}] must be a torch.Tensor; got {type(value).__name__}.")
            if value.ndim != 2 or value.shape[1] != width:
                raise InvalidInputError(
                    f"outputs[{name!r}] must have shape (batch, {width}) for slice {name!r} "
                    f"[{self.layout[name].start}, {self.layout[name].stop}); got {tuple(value.shape)}."
                )
            if value.shape[0] != first.shape[0]:
                raise InvalidInputError(
                    f"outputs[{name!r}] has {value.shape[0]} rows but outputs[{self.assigned_slices[0]!r}] has "
                    f"{first.shape[0]}; all predictions must cover the same batch."
                )
            if value.dtype != first.dtype or value.device != first.device:
                raise InvalidInputError(
                    f"outputs[{name!r}] is {value.dtype} on {value.device} but outputs[{self.assigned_slices[0]!r}] "
                    f"is {first.dtype} on {first.device}; all predictions must share dtype and device."
                )
        values = torch.cat([outputs[name] for name in self.assigned_slices], dim=1)
        base = torch.zeros(first.shape[0], self.n_dims, dtype=first.dtype, device=first.device)  # detached
        return base.index_copy(1, self.index.to(first.device), values)

    def extra_repr(self) -> str:
        return f"n_dims={self.n_dims}, assigned={list(self.assigned_slices)}, zero={list(self.zero_slices)}"
