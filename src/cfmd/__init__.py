"""cfmd: Complementary Foundation Model Distillation for missing-modality imputation (scverse plugin).

Sub-packages follow scanpy's layout: :mod:`cfmd.pp` (tokenisation and teacher embeddings),
:mod:`cfmd.tl` (fit, impute, evaluate, audit), :mod:`cfmd.metrics` (R^2, bootstrap, C-index),
:mod:`cfmd.pl` (plots), :mod:`cfmd.models`
(scvi-tools models) and :mod:`cfmd.datasets` (synthetic cohort, TCGA/Xena loaders, references).
Sub-packages are imported on first use, so ``import cfmd`` stays fast (torch and scvi-tools load only
when a model or a teacher is needed).
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

from ._layout import STRATEGIES, LatentLayout, Slice
from ._validation import InvalidInputError

# No global settings are changed at import (mudata options, loggers, warning filters): cfmd sets what its own
# calls need locally, e.g. `mudata.set_options(pull_on_update=False)` as a context manager (see `_utils`).
try:
    __version__ = version("cfmd")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_SUBPACKAGES = ("datasets", "metrics", "models", "pl", "pp", "tl")

__all__ = ["STRATEGIES", "InvalidInputError", "LatentLayout", "Slice", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBPACKAGES])
