"""LatentRegressor: an MLP from RNA to the latent (the PESD StudentEncoder and matched-capacity baselines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.module.base import LossOutput, auto_move_data
from torch import nn

from .._constants import DEFAULT_LATENT_KEY, DEFAULT_RNA_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY
from .._layout import LatentLayout
from .._validation import InvalidInputError, check_positive_int, describe_examples
from ._io import SafeIOMixin
from ._latent_imputer import (
    LATENT_KEY,
    ImputerTrainingPlan,
    LatentImputerMixin,
    make_split,
    resolve_layout,
)
from ._latent_imputer_module import LatentImputerModule
from ._scvi_private import setup_args
from .nn import ScatterAssignment

__all__ = ["LatentRegressor", "LatentRegressorModule", "mlp_parameter_count", "mlp_width_for_parameters"]


def mlp_parameter_count(n_in: int, n_out: int, n_hidden: int, n_layers: int) -> int:
    """Parameters of ``n_layers`` hidden ``Linear`` layers of width ``n_hidden`` plus a linear output layer."""
    widths = [n_in, *([n_hidden] * n_layers), n_out]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def mlp_width_for_parameters(n_params: int, n_in: int, n_out: int, n_layers: int) -> int:
    """The hidden width whose MLP has the parameter count closest to ``n_params``."""
    low, high = 1, 1 << 16
    while low < high:
        mid = (low + high) // 2
        if mlp_parameter_count(n_in, n_out, mid, n_layers) < n_params:
            low = mid + 1
        else:
            high = mid
    candidates = [max(low - 1, 1), low]
    return min(candidates, key=lambda w: abs(mlp_parameter_count(n_in, n_out, w, n_layers) - n_params))


class LatentRegressorModule(LatentImputerModule):
    """MLP on the standardised log-expression of all genes, predicting chosen slices (global MSE).

    Parameters
    ----------
    layout, n_genes, rna_scale
        As for :class:`~cfmd.models._latent_imputer_module.LatentImputerModule`.
    predicted_slices
        Slices the MLP predicts (the others are written as 0).
    n_hidden, n_layers, dropout
        MLP architecture (``Linear -> GELU -> Dropout`` per hidden layer).
    """

    def __init__(
        self,
        *,
        layout: LatentLayout,
        n_genes: int,
        rna_scale: str,
        predicted_slices: Sequence[str],
        n_hidden: int = 1024,
        n_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(layout=layout, n_genes=n_genes, rna_scale=rna_scale)
        predicted = set(predicted_slices)
        effective = LatentLayout(
            type(s)(s.name, s.start, s.stop, "predicted" if s.name in predicted else "zero", s.groups) for s in layout
        )
        self.assignment = ScatterAssignment(effective)
        layers: list[nn.Module] = []
        width = n_genes
        for _ in range(n_layers):
            layers += [nn.Linear(width, n_hidden), nn.GELU(), nn.Dropout(dropout)]
            width = n_hidden
        layers.append(nn.Linear(width, int(self.assignment.index.numel())))
        self.mlp = nn.Sequential(*layers)

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    @auto_move_data
    def inference(self, x: torch.Tensor, **kwargs) -> dict:
        """``(batch, n_genes)`` RNA -> ``{"z": (batch, n_dims)}`` standardised latent (0 outside predicted slices)."""
        flat = self.mlp(self.standardised_expression(x))
        return {"z": self.assignment(self.split_by_slice(flat, self.assignment.assigned_slices))}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict, **kwargs) -> LossOutput:
        """Global MSE over all predicted dimensions of the standardised latent."""
        target = self.standardised_latent(tensors[LATENT_KEY])
        observed = torch.isfinite(target).all(dim=1)
        index = self.assignment.index
        diff = inference_outputs["z"][observed][:, index] - target[observed][:, index]
        per_obs = diff.square().mean(dim=1)
        return LossOutput(
            loss=per_obs.mean(), reconstruction_loss={"latent_mse": per_obs}, n_obs_minibatch=int(observed.sum())
        )


class LatentRegressor(SafeIOMixin, LatentImputerMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """A plain MLP from RNA expression to the latent, trained on the mean squared error of the chosen slices.

    Two baselines of the paper are configurations of it:

    - the **PESD StudentEncoder**: high capacity (2 x 1,024 hidden units), predicting *every* slice of the latent
      on the global MSE (``slices=None``), without slice-specific constraints;
    - the **matched-capacity MLP**: predicting the slices CFMD imputes, with as many parameters as CFMD's
      trainable parts and no foundation-model inputs (see :func:`mlp_width_for_parameters`).

    It shares CFMD's protocol: patient split (:attr:`split_`), training-split normalisation, AdamW with warm-up
    and cosine annealing, early stopping on the validation loss.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    layout
        The latent's layout (default: stored next to the latent).
    slices
        Slices to predict (default: all).
    n_hidden, n_layers, dropout
        MLP architecture.
    split_key, split_fractions, seed
        As for :class:`~cfmd.models.CFMD`.
    """

    _training_plan_cls = ImputerTrainingPlan
    _module_cls = LatentRegressorModule
    _saved_attributes = ("layout",)

    def __init__(
        self,
        mdata: MuData,
        *,
        layout: LatentLayout | Mapping | None = None,
        slices: Sequence[str] | None = None,
        n_hidden: int = 1024,
        n_layers: int = 2,
        dropout: float = 0.1,
        split_key: str | None = DEFAULT_SPLIT_KEY,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__(mdata)
        args = setup_args(self)
        latent_key = args["latent_key"]
        layout_obj = resolve_layout(mdata, latent_key, layout)
        slices = list(layout_obj.names if slices is None else slices)
        unknown = [s for s in slices if s not in layout_obj]
        if unknown or not slices:
            raise InvalidInputError(
                f"`slices` must name slices of the layout ({layout_obj.names}); got {describe_examples(unknown or slices)}."
            )
        check_positive_int(n_hidden, "n_hidden")
        check_positive_int(n_layers, "n_layers")
        self._module_kwargs = {
            "layout": layout_obj,
            "n_genes": mdata.mod[args["rna_key"]].n_vars,
            "rna_scale": args["rna_scale"],
            "predicted_slices": slices,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "dropout": dropout,
        }
        self.module = LatentRegressorModule(**self._module_kwargs)
        self.layout = layout_obj
        self.split_ = make_split(mdata, latent_key, split_key, split_fractions, seed)
        self._model_summary_string = (
            f"LatentRegressor: MLP {n_layers} x {n_hidden} from {mdata.mod[args['rna_key']].n_vars} genes to slices "
            f"{slices}"
        )
        layout = layout_obj.to_dict()
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        latent_key: str = DEFAULT_LATENT_KEY,
        rna_key: str = DEFAULT_RNA_KEY,
        rna_layer: str | None = None,
        rna_scale: Literal["counts", "log2", "zscore"] = "counts",
        **kwargs,
    ) -> None:
        """Register RNA and the target latent (validated first; nothing changes on error).

        Parameters
        ----------
        mdata
            MuData with RNA for every patient.
        latent_key
            ``mdata.obsm`` key of the target latent (NaN rows: not observed).
        rna_key, rna_layer, rna_scale
            The RNA modality, its layer and declared scale.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        cls._setup_imputer(mdata, cls._get_setup_method_args(**locals()), **kwargs)
