"""Safe save / load of cfmd models: safetensors for tensors, JSON for everything else; nothing is unpickled.

scvi-tools' ``BaseModelClass.load`` reads ``model.pt`` with ``torch.load(weights_only=False)``, which runs any
code a crafted file carries. cfmd models (:class:`~cfmd.models.CFMD`, :class:`~cfmd.models.StructuredVAE`,
:class:`~cfmd.models.LatentRegressor`) save and load through :class:`SafeIOMixin` instead. A model folder holds

``{prefix}model.safetensors``
    The module's ``state_dict`` (keys ``state/...``) and the arrays among the module's constructor arguments
    and the model's attributes (keys ``array/<n>``).
``{prefix}model.json``
    Format tag and version, model class, cfmd version, the data registry (setup arguments and registered
    fields, the model's gene names included), the module's constructor arguments, the model's attributes
    (split, layout, training history, init parameters) with arrays referenced by key.

Neither format can carry code. A ``model.pt`` (scvi-tools' pickle) is never opened.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS

from .._layout import LatentLayout
from .._validation import InvalidInputError
from ._deploy import DEFAULT_MIN_GENE_OVERLAP, align_to_model
from ._scvi_private import MODEL_NAME_KEY, SETUP_ARGS_KEY

__all__ = ["FORMAT", "FORMAT_VERSION", "SafeIOMixin", "model_files", "read_model_folder"]

FORMAT = "cfmd-model"
FORMAT_VERSION = 1
_FIELD_REGISTRIES, _STATE_REGISTRY = "field_registries", "state_registry"


def model_files(dir_path: str | PathLike, prefix: str | None = None) -> tuple[Path, Path]:
    """Paths of the tensors and metadata files of a model folder: ``{prefix}model.safetensors`` / ``.json``."""
    folder = Path(dir_path)
    prefix = prefix or ""
    return folder / f"{prefix}model.safetensors", folder / f"{prefix}model.json"


def check_model_folder(dir_path: str | PathLike, prefix: str | None = None) -> tuple[Path, Path]:
    """Check that ``dir_path`` holds a model saved by cfmd (with ``prefix``); clear errors otherwise.

    Returns
    -------
    The paths of the tensors and metadata files.
    """
    folder = Path(dir_path)
    tensors, meta = model_files(folder, prefix)
    if not folder.is_dir():
        raise InvalidInputError(f"Model folder {str(folder)!r} does not exist or is not a directory.")
    if tensors.is_file() and meta.is_file():
        return tensors, meta
    expected = f"{tensors.name} and {meta.name}"
    present = sorted(p.name for p in folder.iterdir())
    if not present:
        raise InvalidInputError(f"Model folder {str(folder)!r} is empty; expected {expected} written by `model.save`.")
    saved = sorted({p.name[: -len("model.json")] for p in folder.glob("*model.json")})
    if saved and (prefix or "") not in saved:
        shown = ", ".join(repr(s) if s else "None (no prefix)" for s in saved)
        raise InvalidInputError(
            f"Model folder {str(folder)!r} has no {expected} (prefix={prefix!r}); it holds a model saved with "
            f"prefix {shown}: pass that `prefix=`."
        )
    pickles = [p for p in present if p.endswith("model.pt")]
    if pickles:
        raise InvalidInputError(
            f"{str(folder / pickles[0])!r} is a pickle (scvi-tools' format, written by cfmd < 0.3); cfmd does not "
            f"unpickle model files (a pickle can run code when read). Expected {expected} written by cfmd's "
            "`model.save`: retrain, or re-save the model with cfmd's `save` in the session that trained it."
        )
    missing = [p.name for p in (tensors, meta) if not p.is_file()]
    raise InvalidInputError(
        f"Model folder {str(folder)!r} lacks {' and '.join(missing)}; expected {expected} written by `model.save` "
        f"(found: {', '.join(present)})."
    )


def read_model_folder(
    dir_path: str | PathLike, *, prefix: str | None = None, expected_class: str | None = None
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a cfmd model folder without unpickling anything.

    Returns
    -------
    The decoded metadata (JSON, arrays resolved) and the module's ``state_dict``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors_path, meta_path = check_model_folder(dir_path, prefix)
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInputError(
            f"{str(meta_path)!r} is not a readable cfmd model description (JSON written by `model.save`): {err}."
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InvalidInputError(f"{str(meta_path)!r} is not a cfmd model description (no format tag {FORMAT!r}).")
    if raw.get("format_version") != FORMAT_VERSION:
        raise InvalidInputError(
            f"{str(meta_path)!r} has format version {raw.get('format_version')!r}; this cfmd reads {FORMAT_VERSION}."
        )
    if expected_class is not None and raw.get("class") != expected_class:
        raise InvalidInputError(
            f"{str(meta_path)!r} holds a {raw.get('class')!r} model; load it with that class, not {expected_class}."
        )
    try:
        tensors = load_file(str(tensors_path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InvalidInputError(
            f"{str(tensors_path)!r} is not a readable safetensors file written by `model.save` "
            f"(corrupt or truncated?): {err}."
        ) from None
    arrays = {k.removeprefix("array/"): v for k, v in tensors.items() if k.startswith("array/")}
    state = {k.removeprefix("state/"): v for k, v in tensors.items() if k.startswith("state/")}
    try:
        meta = {k: _decode(v, arrays) for k, v in raw.items()}
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInputError(
            f"{str(meta_path)!r} does not match {str(tensors_path)!r} (missing or malformed entry {err})."
        ) from None
    return meta, state


# ---------------------------------------------------------------------- JSON encoding with array references
def _encode(value: Any, arrays: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, LatentLayout):
        return {"__layout__": _encode(value.to_dict(), arrays)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__dataclass__": f"{type(value).__module__}:{type(value).__qualname__}",
            "fields": _encode(dataclasses.asdict(value), arrays),
        }
    if isinstance(value, pd.DataFrame):
        return {
            "__dataframe__": {
                "index": _encode(np.asarray(value.index), arrays),
                "index_name": value.index.name,
                "columns": [str(c) for c in value.columns],
                "data": [_encode(value[c].to_numpy(), arrays) for c in value.columns],
            }
        }
    if isinstance(value, pd.Index):
        return _encode(np.asarray(value), arrays)
    if isinstance(value, torch.Tensor):
        return _encode(value.detach().cpu().numpy(), arrays)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            key = str(len(arrays))
            arrays[key] = torch.from_numpy(np.array(value, copy=True, order="C"))
            return {"__array__": key, "dtype": value.dtype.str}
        return {"__ndarray__": [_encode(v, arrays) for v in value.ravel().tolist()], "dtype": value.dtype.str,
                "shape": list(value.shape)}  # fmt: skip
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, arrays) for k, v in value.items()}
        return {"__items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a cfmd model file")


_DATACLASSES = {}


def _dataclass(name: str):
    if name not in _DATACLASSES:
        from ._structured_vae_module import ModalitySpec

        _DATACLASSES.update({f"{ModalitySpec.__module__}:{ModalitySpec.__qualname__}": ModalitySpec})
    return _DATACLASSES[name]  # only known classes, never an import by name


def _decode(value: Any, arrays: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]].numpy().astype(np.dtype(value["dtype"]), copy=True)
    if "__ndarray__" in value:
        items = [_decode(v, arrays) for v in value["__ndarray__"]]
        dtype = np.dtype(value["dtype"])
        out = np.empty(len(items), dtype=dtype) if dtype.kind == "O" else np.asarray(items, dtype=dtype)
        if dtype.kind == "O":
            out[:] = items
        return out.reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in value["__items__"]}
    if "__layout__" in value:
        return LatentLayout.from_dict(_decode(value["__layout__"], arrays))
    if "__dataclass__" in value:
        return _dataclass(value["__dataclass__"])(**_decode(value["fields"], arrays))
    if "__dataframe__" in value:
        frame = value["__dataframe__"]
        data = {c: _decode(v, arrays) for c, v in zip(frame["columns"], frame["data"])}
        index = pd.Index(_decode(frame["index"], arrays), name=frame["index_name"])
        return pd.DataFrame(data, index=index, columns=frame["columns"])
    return {k: _decode(v, arrays) for k, v in value.items()}


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


# ---------------------------------------------------------------------- the mixin
class SafeIOMixin:
    """``save`` / ``load`` without pickles, and deployment on new MuData (genes matched by name).

    A model class using it sets ``self._module_kwargs`` (the keyword arguments its module was built with) in
    ``__init__`` and defines ``_module_cls``, ``_saved_attributes`` (attributes beyond scvi-tools' ``*_`` ones),
    ``_gene_mean_buffer`` (the module buffer with the per-gene training mean of the log-normalised expression)
    and ``_register_fields(mdata, setup_method_args, source_registry=None)``.
    """

    _module_cls: type
    _saved_attributes: tuple[str, ...] = ()
    _gene_mean_buffer: str = "gene_mean"
    #: Smallest fraction of the model's genes new data must have (set by ``load(min_gene_overlap=)``).
    min_gene_overlap: float = DEFAULT_MIN_GENE_OVERLAP

    # ------------------------------------------------------------------ save
    def save(self, dir_path: str | PathLike, *, overwrite: bool = False, prefix: str | None = None) -> None:
        """Save the model to a folder: ``{prefix}model.safetensors`` and ``{prefix}model.json``.

        No data are saved (apply the model to any MuData with :meth:`load`). Nothing is pickled.

        Parameters
        ----------
        dir_path
            Folder to save to (created if needed).
        overwrite
            Replace the files of a model already saved there with the same ``prefix``.
        prefix
            Prefix of the file names (several models in one folder).
        """
        from safetensors.torch import save_file

        from .. import __version__

        folder = Path(dir_path)
        tensors_path, meta_path = model_files(folder, prefix)
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(f"`dir_path` {str(folder)!r} exists and is not a folder.")
        if not overwrite and (tensors_path.exists() or meta_path.exists()):
            raise InvalidInputError(
                f"{str(folder)!r} already holds a saved model ({tensors_path.name}); pass `overwrite=True` to replace it."
            )
        arrays: dict[str, torch.Tensor] = {}
        attributes = {name: getattr(self, name) for name in self._attribute_names()}
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "cfmd_version": __version__,
            "registry": _encode(self.adata_manager.registry, arrays),
            "module_kwargs": _encode(self._module_kwargs, arrays),
            "attributes": _encode(attributes, arrays),
        }
        tensors = {f"array/{k}": v for k, v in arrays.items()}
        tensors.update(
            {f"state/{k}": v.detach().cpu().clone().contiguous() for k, v in self.module.state_dict().items()}
        )
        folder.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tensors_path), metadata={"format": FORMAT, "class": type(self).__name__})
        meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")

    def _attribute_names(self) -> list[str]:
        names = [n for n in vars(self) if n.endswith("_") and not n.startswith("_") and n != "registry_"]
        return sorted({*names, *self._saved_attributes, "_model_summary_string"})

    # ------------------------------------------------------------------ load
    @classmethod
    def load(
        cls,
        dir_path: str | PathLike,
        adata: MuData | None = None,
        *,
        prefix: str | None = None,
        min_gene_overlap: float = DEFAULT_MIN_GENE_OVERLAP,
    ):
        """Load a model saved with :meth:`save` and set it up on ``adata`` (new patients welcome).

        ``adata`` needs RNA only: the target latent and the other modalities may be absent (they are "not
        observed"). Genes are matched by name (see :func:`cfmd.models._deploy.align_to_model`): a different
        order is reordered, missing genes are padded with their training mean (zero in the model's normalised
        units) with a ``UserWarning``. Nothing is unpickled.

        Parameters
        ----------
        dir_path
            Folder of the saved model.
        adata
            MuData to apply the model to.
        prefix
            Prefix the model was saved with.
        min_gene_overlap
            Smallest fraction of the model's genes ``adata`` must have (default 0.5).

        Returns
        -------
        The model, registered on ``adata`` (or, when genes or modalities differ, on an aligned copy of it,
        available as ``model.adata``; ``adata`` itself is not changed then).
        """
        meta, state = read_model_folder(dir_path, prefix=prefix, expected_class=cls.__name__)
        if adata is None:
            raise InvalidInputError(
                "`adata` is required: cfmd model folders hold no data; pass the MuData to apply the model to."
            )
        registry = meta["registry"]
        if registry.get(MODEL_NAME_KEY) != cls.__name__ or SETUP_ARGS_KEY not in registry:
            raise InvalidInputError(f"The registry in {str(dir_path)!r} was not written for a {cls.__name__} model.")
        module = cls._module_cls(**meta["module_kwargs"])
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InvalidInputError(
                f"The weights in {str(model_files(dir_path, prefix)[0])!r} do not match the model described in "
                f"{str(model_files(dir_path, prefix)[1])!r}: {err}"
            ) from None
        aligned = cls._align(
            adata, registry, module, min_gene_overlap=min_gene_overlap, model_name=f"{cls.__name__} model"
        )
        setup_method_args = {k: registry[k] for k in registry if k != _FIELD_REGISTRIES}
        with warnings.catch_warnings():
            if aligned is not adata:  # padded counts are not integers: expected, said in the padding warning
                warnings.filterwarnings("ignore", message=".*does not contain unnormalized count data")
            try:
                cls._register_fields(aligned, setup_method_args, source_registry=registry)
            except (KeyError, ValueError) as err:
                if isinstance(err, InvalidInputError):
                    raise
                raise InvalidInputError(
                    f"The {cls.__name__} model in {str(dir_path)!r} cannot use `adata`: {err}"
                ) from None
        model = cls.__new__(cls)
        super(SafeIOMixin, model).__init__(aligned)
        model.module = module
        model._module_kwargs = meta["module_kwargs"]
        for name, value in meta["attributes"].items():
            setattr(model, name, value)
        model.min_gene_overlap = float(min_gene_overlap)
        model.is_trained_ = True
        model.module.eval()
        return model

    # ------------------------------------------------------------------ deployment
    @classmethod
    def _modality_features(cls, registry: dict) -> dict[str, np.ndarray]:
        """``{modality: feature names}`` of the registered non-RNA modalities (none by default)."""
        return {}

    @classmethod
    def _gene_roles(cls, module) -> dict[str, np.ndarray]:
        """``{what reads them: gene positions}`` (for the missing-genes warning)."""
        return {}

    @classmethod
    def _align(cls, mdata, registry, module, *, min_gene_overlap, model_name) -> MuData:
        args = registry[SETUP_ARGS_KEY]
        genes = registry[_FIELD_REGISTRIES][REGISTRY_KEYS.X_KEY][_STATE_REGISTRY]["column_names"]
        return align_to_model(
            mdata,
            rna_key=args["rna_key"],
            rna_layer=args.get("rna_layer"),
            rna_scale=args["rna_scale"],
            genes=genes,
            gene_mean=getattr(module, cls._gene_mean_buffer).detach().cpu().numpy(),
            modalities=cls._modality_features(registry),
            gene_roles=cls._gene_roles(module),
            min_gene_overlap=min_gene_overlap,
            model_name=model_name,
        )

    def _deployment_data(self, mdata: MuData | None) -> MuData:
        """``mdata`` aligned to the model's genes and modalities (the registered data when ``None``)."""
        if mdata is None or mdata is self.adata:
            return self.adata
        return self._align(
            mdata,
            self.adata_manager.registry,
            self.module,
            min_gene_overlap=self.min_gene_overlap,
            model_name=f"{type(self).__name__} model",
        )

    def _validate_deployment(self, mdata: MuData) -> MuData:
        """Register (transfer) ``mdata`` for this model; padded counts do not warn twice."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not contain unnormalized count data")
            try:
                return self._validate_anndata(mdata)
            except InvalidInputError:
                raise
            except (KeyError, ValueError) as err:
                raise InvalidInputError(f"The {type(self).__name__} model cannot use `mdata`: {err}") from None
