"""Tools: split patients, fit the structured latent, impute, evaluate, audit."""

from ._benchmark import DEFAULT_METHODS, benchmark, format_markdown, write_benchmark
from ._bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bonferroni,
    bootstrap_ci,
    bootstrap_p_value,
    bootstrap_slice_metrics,
    make_strata,
    paired_bootstrap,
    resampled_slice_metrics,
    stratified_bootstrap_indices,
)
from ._evaluate import evaluate, evaluation_settings, score_methods
from ._fit_latent import fit_latent
from ._impute import impute
from ._loco import loco_audit
from ._methods import METHODS, ImputationMethod, MethodContext, get_method
from ._metrics import default_macro_slices, multivariate_r2, pearson_r, slice_metrics
from ._slice_semantics import slice_semantics
from ._split import DEFAULT_SPLIT_KEY, SPLIT_LABELS, split_patients
from ._survival import SurvivalHead, c_index_with_ci, compare_c_index, concordance_index, paired_c_index

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "ImputationMethod",
    "MethodContext",
    "benchmark",
    "evaluate",
    "evaluation_settings",
    "format_markdown",
    "get_method",
    "loco_audit",
    "score_methods",
    "write_benchmark",
    "DEFAULT_SPLIT_KEY",
    "SPLIT_LABELS",
    "BootstrapResult",
    "PairedBootstrapResult",
    "SurvivalHead",
    "bonferroni",
    "bootstrap_ci",
    "bootstrap_p_value",
    "bootstrap_slice_metrics",
    "c_index_with_ci",
    "compare_c_index",
    "concordance_index",
    "default_macro_slices",
    "fit_latent",
    "impute",
    "make_strata",
    "multivariate_r2",
    "paired_bootstrap",
    "pearson_r",
    "resampled_slice_metrics",
    "slice_metrics",
    "slice_semantics",
    "split_patients",
    "stratified_bootstrap_indices",
]
