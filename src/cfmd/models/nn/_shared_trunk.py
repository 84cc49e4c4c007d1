"""Dense shared-trunk imputer: the ablation without gradient-isolated slice projectors."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..._layout import LatentLayout
from ..._validation import InvalidInputError, describe_examples
from ._projector import check_dropout, check_features, check_positive_dim
from ._scatter_assignment import ScatterAssignment

__all__ = ["SharedTrunkImputer"]


class SharedTrunkImputer(nn.Module):
    """One shared MLP trunk from all concatenated inputs to every non-zero slice of the latent.

    The comparison the paper argues against (Section 3.3): the Geneformer embedding, the structural
    fingerprint and the RNA features are concatenated and pass through the same hidden layers, and a single
    dense head predicts all non-``zero`` slices at once. A loss on any one slice therefore sends gradient into
    every trunk parameter, which also produces the other slices (gradient contamination). ``zero`` slices are
    still exact zeros (placed with :class:`~cfmd.models.nn.ScatterAssignment`, which only positions the head's
    columns; the sharing happens in the trunk).

    Architecture: ``n_layers`` x (``Linear -> GELU -> Dropout``) of width ``d_hidden``, then
    ``Linear(d_hidden, n_assigned_dims)``.

    Parameters
    ----------
    layout
        The latent layout; every slice whose strategy is not ``"zero"`` is predicted.
    input_dims
        ``{input name: width}`` in concatenation order, e.g.
        ``{"geneformer": 512, "fingerprint": 1280, "rna": 4300}``; ``forward`` takes tensors under these names.
    d_hidden
        Width of the trunk's hidden layers.
    n_layers
        Number of hidden layers of the trunk.
    dropout
        Dropout after each hidden layer.

    Examples
    --------
    >>> import cfmd
    >>> layout = cfmd.LatentLayout.from_sizes({"a": (2, "geneformer"), "b": (1, "zero"), "c": (3, "esm")})
    >>> trunk = SharedTrunkImputer(layout, {"geneformer": 8, "fingerprint": 5}, d_hidden=16)
    >>> trunk({"geneformer": torch.randn(4, 8), "fingerprint": torch.randn(4, 5)}).shape
    torch.Size([4, 6])
    """

    def __init__(
        self,
        layout: LatentLayout,
        input_dims: Mapping[str, int],
        *,
        d_hidden: int = 512,
        n_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.scatter = ScatterAssignment(layout)
        if not self.scatter.assigned_slices:
            raise InvalidInputError("The layout has no slice to predict: every slice has strategy 'zero'.")
        if not isinstance(input_dims, Mapping) or not input_dims:
            raise InvalidInputError("`input_dims` must be a non-empty mapping {input name: width}.")
        self.input_dims = {str(k): check_positive_dim(v, f"input_dims[{k!r}]") for k, v in input_dims.items()}
        d_hidden = check_positive_dim(d_hidden, "d_hidden")
        n_layers = check_positive_dim(n_layers, "n_layers")
        dropout = check_dropout(dropout)
        layers: list[nn.Module] = []
        width = sum(self.input_dims.values())
        for _ in range(n_layers):
            layers += [nn.Linear(width, d_hidden), nn.GELU(), nn.Dropout(dropout)]
            width = d_hidden
        self.trunk = nn.Sequential(*layers)
        self.slice_dims = {name: layout[name].dim for name in self.scatter.assigned_slices}
        self.head = nn.Linear(d_hidden, sum(self.slice_dims.values()))

    @property
    def layout(self) -> LatentLayout:
        """The latent layout."""
        return self.scatter.layout

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Predict the full latent.

        Parameters
        ----------
        inputs
            ``{input name: (batch, width)}`` for every name of ``input_dims``.

        Returns
        -------
        ``(batch, layout.n_dims)`` latent; ``zero`` slices are exact zeros.
        """
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(f"`inputs` must map input names to tensors; got {type(inputs).__name__}.")
        missing = [k for k in self.input_dims if k not in inputs]
        extra = [k for k in inputs if k not in self.input_dims]
        if missing or extra:
            raise InvalidInputError(
                f"`inputs` must have exactly the keys {list(self.input_dims)}; "
                f"missing {describe_examples(missing)}, unexpected {describe_examples(extra)}."
            )
        for name, width in self.input_dims.items():
            check_features(inputs[name], width, f"SharedTrunkImputer input {name!r}")
        x = torch.cat([inputs[name] for name in self.input_dims], dim=1)
        predictions = torch.split(self.head(self.trunk(x)), list(self.slice_dims.values()), dim=1)
        return self.scatter(dict(zip(self.slice_dims, predictions)))
