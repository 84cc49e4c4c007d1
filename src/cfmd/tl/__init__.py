"""Tools: split patients, fit the structured latent, impute, evaluate, audit.

The statistics these workflows compute (R^2, bootstrap, C-index, survival head) live in :mod:`cfmd.metrics`; their
old names under ``cfmd.tl`` still resolve, with a :class:`FutureWarning`.
"""

import warnings as _warnings

from .. import metrics as _metrics
from ._benchmark import DEFAULT_METHODS, benchmark, format_markdown, write_benchmark
from ._decode import decode
from ._downstream_rescue import (
    RESCUE_CLASSIFIERS,
    RESCUE_CONDITIONS,
    RESCUE_IMPUTERS,
    RESCUE_SURVIVAL_MODELS,
    downstream_rescue,
)
from ._evaluate import evaluate, evaluation_settings
from ._fit_latent import fit_latent
from ._generate import GENERATIVE_MODELS, generate
from ._impute import impute
from ._latent_umap import latent_umap, umap_key
from ._loco import loco_audit
from ._methods import METHODS, ImputationMethod, MethodContext, get_method
from ._prioritize_assays import PRIORITIZE_SCORES, PRIORITIZE_TASKS, prioritize_assays
from ._scoring import score_methods
from ._slice_semantics import slice_semantics
from ._split import DEFAULT_SPLIT_KEY, SPLIT_LABELS, split_patients
from ._unconditional_check import UNCONDITIONAL_METRICS, unconditional_check, unconditional_metrics

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "ImputationMethod",
    "MethodContext",
    "benchmark",
    "decode",
    "downstream_rescue",
    "RESCUE_CLASSIFIERS",
    "RESCUE_CONDITIONS",
    "RESCUE_IMPUTERS",
    "RESCUE_SURVIVAL_MODELS",
    "evaluate",
    "generate",
    "GENERATIVE_MODELS",
    "evaluation_settings",
    "format_markdown",
    "get_method",
    "PRIORITIZE_SCORES",
    "PRIORITIZE_TASKS",
    "prioritize_assays",
    "loco_audit",
    "score_methods",
    "write_benchmark",
    "DEFAULT_SPLIT_KEY",
    "SPLIT_LABELS",
    "fit_latent",
    "impute",
    "latent_umap",
    "umap_key",
    "slice_semantics",
    "split_patients",
    "UNCONDITIONAL_METRICS",
    "unconditional_check",
    "unconditional_metrics",
]

#: Statistics that moved to :mod:`cfmd.metrics` (issue 14); ``cfmd.tl.<name>`` still resolves, with a FutureWarning.
_MOVED_TO_METRICS = tuple(
    name
    for name in _metrics.__all__
    if name not in _metrics.ADDED_IN_METRICS  # names that never were in cfmd.tl
)


def __getattr__(name: str):
    if name in _MOVED_TO_METRICS:
        _warnings.warn(
            f"`cfmd.tl.{name}` moved to `cfmd.metrics.{name}`; the old name will be removed in a future release.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(_metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
