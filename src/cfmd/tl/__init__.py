"""Tools: fit the structured latent, impute, evaluate, audit."""

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
from ._metrics import default_macro_slices, multivariate_r2, pearson_r, slice_metrics
from ._survival import SurvivalHead, c_index_with_ci, compare_c_index, concordance_index, paired_c_index

__all__ = [
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
    "make_strata",
    "multivariate_r2",
    "paired_bootstrap",
    "pearson_r",
    "resampled_slice_metrics",
    "slice_metrics",
    "stratified_bootstrap_indices",
]
