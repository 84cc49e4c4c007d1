"""The one place cfmd reaches into scvi-tools' private names.

scvi-tools keeps the registry keys and the MuData validation switch in private modules
(``scvi.data._constants``, ``scvi.data._manager``). Every cfmd module imports them from here, so a rename in a
new scvi-tools release is fixed in one file.
"""

from __future__ import annotations

from scvi.data._constants import _DR_ATTR_KEY, _DR_ATTR_NAME, _DR_MOD_KEY, _MODEL_NAME_KEY, _SETUP_ARGS_KEY
from scvi.data._manager import AnnDataManagerValidationCheck

__all__ = [
    "DR_ATTR_KEY",
    "DR_ATTR_NAME",
    "DR_MOD_KEY",
    "MODEL_NAME_KEY",
    "SETUP_ARGS_KEY",
    "AnnDataManagerValidationCheck",
    "setup_args",
    "unpaired_validation",
]

#: Registry key of the arguments given to ``setup_anndata`` / ``setup_mudata``.
SETUP_ARGS_KEY = _SETUP_ARGS_KEY
#: Registry key of the model's class name.
MODEL_NAME_KEY = _MODEL_NAME_KEY
#: Data-registry entry keys: the modality, the AnnData attribute (``obsm``, ``layers``, ...) and its key.
DR_MOD_KEY, DR_ATTR_NAME, DR_ATTR_KEY = _DR_MOD_KEY, _DR_ATTR_NAME, _DR_ATTR_KEY


def setup_args(model) -> dict:
    """The ``setup_mudata`` arguments a registered model (or its ``AnnDataManager``) was set up with."""
    manager = getattr(model, "adata_manager", model)
    return manager.registry[SETUP_ARGS_KEY]


def unpaired_validation() -> AnnDataManagerValidationCheck:
    """The validation of a MuData whose modalities need not hold every patient."""
    return AnnDataManagerValidationCheck(check_fully_paired_mudata=False)
