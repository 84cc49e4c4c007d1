"""Statistics: reconstruction R^2 and Pearson r, the stratified bootstrap, Harrell's C, the frozen survival head.

Pure functions on arrays (plus :class:`SurvivalHead`), one concept per module: ``_r2`` (per-slice multivariate
R^2, Pearson r), ``_bootstrap`` (stratified resamples, percentile intervals, paired differences, Bonferroni: the
one bootstrap every interval in cfmd comes from), ``_r2_bootstrap`` (R^2 on resamples from sufficient
statistics), ``_concordance`` (Harrell's C and its intervals) and ``_survival_head``.
The workflow functions that compute them on a :class:`~mudata.MuData` live in :mod:`cfmd.tl`
(:func:`~cfmd.tl.evaluate`, :func:`~cfmd.tl.benchmark`).
"""

from ._bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bonferroni,
    bootstrap_ci,
    bootstrap_p_value,
    make_strata,
    paired_bootstrap,
    paired_difference,
    percentile_interval,
    resampled_statistic,
    resolve_bootstrap_indices,
    stratified_bootstrap_indices,
)
from ._concordance import (
    MIN_EVENTS_TO_SCORE,
    c_index_with_ci,
    compare_c_index,
    concordance_index,
    harrell_c,
    paired_c_index,
)
from ._r2 import METRIC_COLUMNS, default_macro_slices, multivariate_r2, pearson_r, slice_metrics
from ._r2_bootstrap import bootstrap_slice_metrics, resampled_slice_metrics
from ._survival_head import MIN_VALIDATION_EVENTS, SurvivalHead

__all__ = [
    "METRIC_COLUMNS",
    "MIN_EVENTS_TO_SCORE",
    "MIN_VALIDATION_EVENTS",
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
    "harrell_c",
    "make_strata",
    "multivariate_r2",
    "paired_bootstrap",
    "paired_c_index",
    "paired_difference",
    "pearson_r",
    "percentile_interval",
    "resampled_slice_metrics",
    "resampled_statistic",
    "resolve_bootstrap_indices",
    "slice_metrics",
    "stratified_bootstrap_indices",
]

#: The names of :data:`__all__` that are new in :mod:`cfmd.metrics`; the others were in :mod:`cfmd.tl` before.
ADDED_IN_METRICS = frozenset(
    {
        "METRIC_COLUMNS",
        "MIN_EVENTS_TO_SCORE",
        "MIN_VALIDATION_EVENTS",
        "harrell_c",
        "paired_difference",
        "percentile_interval",
        "resampled_statistic",
        "resolve_bootstrap_indices",
    }
)
