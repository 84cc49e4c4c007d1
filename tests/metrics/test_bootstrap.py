"""Stratified bootstrap: resampling, intervals, paired differences, Bonferroni, per-slice R^2 intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfmd import InvalidInputError, LatentLayout
from cfmd.metrics import (
    bonferroni,
    bootstrap_ci,
    bootstrap_p_value,
    bootstrap_slice_metrics,
    make_strata,
    multivariate_r2,
    paired_bootstrap,
    resampled_slice_metrics,
    slice_metrics,
    stratified_bootstrap_indices,
)

STRATA = np.array(["BRCA"] * 5 + ["LUAD"] * 3 + ["KIRC"] * 1 + ["BRCA"] * 2 + ["LUAD"] * 4)


def test_make_strata_combines_labels():
    codes = make_strata(["BRCA", "LUAD", "BRCA", "BRCA"], [1, 0, 0, 1])
    np.testing.assert_array_equal(codes, [0, 1, 2, 0])
    np.testing.assert_array_equal(make_strata(pd.Series(["a", "b", "a"])), [0, 1, 0])


def test_indices_are_reproducible_with_a_seed():
    a = stratified_bootstrap_indices(STRATA, 50, seed=3)
    b = stratified_bootstrap_indices(STRATA, 50, seed=3)
    c = stratified_bootstrap_indices(STRATA, 50, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (50, len(STRATA))
    assert a.dtype.kind == "i"
    # a Generator is accepted (and advanced)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(stratified_bootstrap_indices(STRATA, 50, seed=rng), a)


def test_every_resample_keeps_the_strata():
    idx = stratified_bootstrap_indices(STRATA, 200, seed=0)
    # position i always holds a patient of patient i's stratum ...
    assert (STRATA[idx] == STRATA[None, :]).all()
    # ... hence every resample has exactly the original stratum sizes
    sizes = pd.Series(STRATA).value_counts()
    for row in idx[:20]:
        assert pd.Series(STRATA[row]).value_counts().equals(sizes)
    # the singleton stratum always resamples its only patient; other patients are all drawn at some point
    assert (idx[:, 8] == 8).all()
    assert set(np.unique(idx)) == set(range(len(STRATA)))
    # resampling is with replacement: some resample repeats a patient
    assert any(len(np.unique(row)) < len(row) for row in idx)


def test_bootstrap_ci_estimate_and_distribution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    res = bootstrap_ci(np.mean, x, strata=STRATA, n_boot=100, seed=5)
    idx = stratified_bootstrap_indices(STRATA, 100, seed=5)
    assert res.estimate == pytest.approx(x.mean())
    np.testing.assert_allclose(res.distribution, x[idx].mean(axis=1))
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(x[idx].mean(axis=1), [0.025, 0.975])))
    assert res.n_boot == 100 and res.n_invalid == 0 and res.ci == 0.95
    # the same resamples passed explicitly give the same result
    again = bootstrap_ci(np.mean, x, indices=idx)
    np.testing.assert_array_equal(again.distribution, res.distribution)
    assert set(res.to_dict()) == {"estimate", "ci_low", "ci_high", "ci", "n_boot", "n_invalid"}


def test_bootstrap_ci_resamples_rows_of_several_arrays_together():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(15, 3))
    yhat = y + 0.5 * rng.normal(size=y.shape)
    res = bootstrap_ci(multivariate_r2, y, yhat, strata=STRATA, n_boot=30, seed=0)
    idx = stratified_bootstrap_indices(STRATA, 30, seed=0)
    np.testing.assert_allclose(res.distribution, [multivariate_r2(y[i], yhat[i]) for i in idx])


def test_bootstrap_ci_counts_invalid_resamples():
    x = np.arange(15.0)
    res = bootstrap_ci(lambda v: np.nan if v[0] > 7 else v.mean(), x, strata=STRATA, n_boot=50, seed=0)
    assert 0 < res.n_invalid < 50
    assert np.isfinite(res.ci_low) and np.isfinite(res.ci_high)


def test_percentile_interval_covers_the_true_mean_at_about_the_nominal_rate():
    # 150 simulated samples of 60 patients (two strata); the 90% interval of the mean should cover mu ~90% of
    # the time (percentile intervals under-cover slightly at small n; the bounds allow for that and MC error).
    rng = np.random.default_rng(11)
    strata = np.repeat(["a", "b"], 30)
    covered = 0
    for rep in range(150):
        x = rng.normal(loc=2.0, size=60)
        res = bootstrap_ci(np.mean, x, strata=strata, n_boot=300, ci=0.9, seed=rep)
        covered += res.ci_low <= 2.0 <= res.ci_high
    assert 0.80 <= covered / 150 <= 0.97


def test_bootstrap_p_value_hand_computed():
    # B = 4: #{<=0} = 1 -> (1+1)/5 = 0.4; #{>=0} = 3 -> (1+3)/5 = 0.8; p = 2 * 0.4
    assert bootstrap_p_value([-1.0, 1.0, 2.0, 3.0]) == pytest.approx(0.8)
    # all positive: (1 + 0)/(3 + 1) = 0.25 -> p = 0.5
    assert bootstrap_p_value([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert bootstrap_p_value([0.0, 0.0]) == 1.0
    assert bootstrap_p_value(np.r_[np.ones(999), np.nan]) == pytest.approx(2 / 1000)
    assert np.isnan(bootstrap_p_value([np.nan]))


def test_paired_bootstrap_difference_and_p_value():
    rng = np.random.default_rng(3)
    x = rng.normal(size=15)
    res = paired_bootstrap(np.mean, (x,), (x - 5.0,), strata=STRATA, n_boot=200, seed=1)
    assert res.delta == pytest.approx(5.0)
    assert res.estimate_a == pytest.approx(x.mean()) and res.estimate_b == pytest.approx(x.mean() - 5)
    # the difference of paired resamples is exactly 5 every time (the per-patient shift), so the interval is tight
    np.testing.assert_allclose(res.distribution, 5.0)
    assert res.p_value == pytest.approx(2 / 201)
    same = paired_bootstrap(np.mean, (x,), (x,), strata=STRATA, n_boot=50, seed=1)
    assert same.delta == 0.0 and same.p_value == 1.0
    assert (same.ci_low, same.ci_high) == (0.0, 0.0)


def test_paired_bootstrap_uses_the_same_resamples_for_both_methods():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=15), rng.normal(size=15)
    idx = stratified_bootstrap_indices(STRATA, 40, seed=9)
    res = paired_bootstrap(np.mean, (a,), (b,), indices=idx)
    np.testing.assert_allclose(res.distribution, a[idx].mean(axis=1) - b[idx].mean(axis=1))
    assert res.delta == pytest.approx(a.mean() - b.mean())


def test_paired_p_value_agrees_with_the_interval():
    # a clear difference: the interval excludes 0 and p is small; no difference: the interval covers 0, p is large
    rng = np.random.default_rng(5)
    noise = rng.normal(size=15)
    shifted = paired_bootstrap(
        np.mean, (noise + 1.0,), (noise + rng.normal(scale=0.3, size=15),), strata=STRATA, n_boot=500, seed=0
    )
    assert shifted.ci_low > 0 and shifted.p_value < 0.05
    jitter = rng.normal(scale=0.3, size=15)
    null = paired_bootstrap(np.mean, (noise,), (noise + jitter - jitter.mean(),), strata=STRATA, n_boot=500, seed=0)
    assert null.delta == pytest.approx(0.0, abs=1e-12)
    assert null.ci_low < 0 < null.ci_high and null.p_value > 0.05


def test_bonferroni():
    np.testing.assert_allclose(bonferroni([0.01, 0.2, 0.04]), [0.03, 0.6, 0.12])
    np.testing.assert_allclose(bonferroni([0.5, 0.001]), [1.0, 0.002])
    s = bonferroni(pd.Series([0.01, 0.02], index=["ridge", "poe"], name="p"))
    assert list(s.index) == ["ridge", "poe"] and s["poe"] == pytest.approx(0.04)
    assert bonferroni({"a": 0.1, "b": 0.3}) == pytest.approx({"a": 0.2, "b": 0.6})
    assert bonferroni([]).size == 0
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        bonferroni([0.1, np.nan])
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        bonferroni([1.5])


# ---------------------------------------------------------------------------------------------------- slice R^2
LAYOUT = LatentLayout.from_sizes(
    [("prolif", 1, "rna"), ("state", 4, "geneformer"), ("meth", 3, "regional"), ("cnv", 2, "zero")]
)


def _latent(seed: int, n: int = 15):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 10)) * 3 + 50  # large means: the sufficient statistics must stay accurate
    pred = truth + rng.normal(size=truth.shape)
    pred[:, 8:] = 0.0
    return truth, pred


def test_resampled_slice_metrics_equal_recomputation_on_each_resample():
    truth, pred = _latent(0)
    idx = stratified_bootstrap_indices(STRATA, 25, seed=2)
    long = resampled_slice_metrics(truth, pred, LAYOUT, idx)
    assert list(long.columns) == ["resample", "slice", "kind", "r2", "pearson_r"]
    for b in range(25):
        expected = slice_metrics(truth[idx[b]], pred[idx[b]], LAYOUT)
        got = long[long["resample"] == b].reset_index(drop=True)
        assert list(got["slice"]) == list(expected["slice"])
        np.testing.assert_allclose(got["r2"], expected["r2"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got["pearson_r"], expected["pearson_r"], rtol=1e-9, atol=1e-9)


def test_resampled_slice_metrics_blocks_give_the_same_result(monkeypatch):
    truth, pred = _latent(1)
    idx = stratified_bootstrap_indices(STRATA, 30, seed=3)
    whole = resampled_slice_metrics(truth, pred, LAYOUT, idx)
    monkeypatch.setattr("cfmd.metrics._r2_bootstrap._BLOCK_ELEMENTS", 40)  # 2 resamples per block
    pd.testing.assert_frame_equal(resampled_slice_metrics(truth, pred, LAYOUT, idx), whole)


def test_bootstrap_slice_metrics_intervals():
    truth, pred = _latent(2)
    table = bootstrap_slice_metrics(truth, pred, LAYOUT, strata=STRATA, n_boot=200, seed=0)
    point = slice_metrics(truth, pred, LAYOUT)
    pd.testing.assert_frame_equal(table[point.columns], point)
    assert {"r2_ci_low", "r2_ci_high", "pearson_r_ci_low", "pearson_r_ci_high"} <= set(table.columns)
    assert table.attrs == {"n_boot": 200, "ci": 0.95}
    finite = table.dropna(subset=["r2_ci_low"])
    assert (finite["r2_ci_low"] <= finite["r2_ci_high"]).all()
    state = table.set_index("slice").loc["state"]
    assert state["r2_ci_low"] < state["r2"] < state["r2_ci_high"]
    prolif = table.set_index("slice").loc["prolif"]
    assert prolif["pearson_r_ci_low"] < prolif["pearson_r"] < prolif["pearson_r_ci_high"]
    assert table.set_index("slice")[["pearson_r_ci_low"]].drop("prolif").isna().all().all()
    again = bootstrap_slice_metrics(truth, pred, LAYOUT, strata=STRATA, n_boot=200, seed=0)
    pd.testing.assert_frame_equal(table, again)


def test_bootstrap_slice_metrics_checks_layouts_and_nan_rows():
    truth, pred = _latent(3)
    truth[4] = np.nan
    with pytest.raises(InvalidInputError, match=r"truth has 1 of 15 row"):
        bootstrap_slice_metrics(truth, pred, LAYOUT, strata=STRATA, n_boot=10, seed=0)
    truth, pred = _latent(3)
    other = LAYOUT.replace_strategies(cnv="regional")
    with pytest.raises(InvalidInputError, match="different LatentLayouts"):
        bootstrap_slice_metrics(truth, pred, LAYOUT, strata=STRATA, n_boot=10, seed=0, prediction_layout=other)


# ---------------------------------------------------------------------------------------------------- bad input
def test_bad_strata_and_seeds():
    x = np.arange(15.0)
    with pytest.raises(InvalidInputError, match="`strata` has 14 labels but the data have 15"):
        bootstrap_ci(np.mean, x, strata=STRATA[:-1], seed=0)
    with pytest.raises(InvalidInputError, match=r"1 missing label\(s\) \(rows 2\)"):
        stratified_bootstrap_indices(np.array(["a", "b", None]), 5, seed=0)
    with pytest.raises(InvalidInputError, match="`seed` is required"):
        bootstrap_ci(np.mean, x, strata=STRATA)
    with pytest.raises(InvalidInputError, match="`seed` must be"):
        stratified_bootstrap_indices(STRATA, 5, seed=1.5)
    with pytest.raises(InvalidInputError, match="n_boot"):
        stratified_bootstrap_indices(STRATA, 0, seed=0)
    with pytest.raises(InvalidInputError, match="either `indices`"):
        bootstrap_ci(np.mean, x, strata=STRATA, seed=0, indices=np.zeros((2, 15), dtype=int))
    with pytest.raises(InvalidInputError, match="Pass `strata`"):
        bootstrap_ci(np.mean, x, seed=0)


def test_bad_indices_arrays_and_ci():
    x = np.arange(15.0)
    with pytest.raises(InvalidInputError, match=r"must lie in \[0, 15\)"):
        bootstrap_ci(np.mean, x, indices=np.full((3, 15), 15))
    with pytest.raises(InvalidInputError, match="resamples 10 patients but the data have 15"):
        bootstrap_ci(np.mean, x, indices=np.zeros((3, 10), dtype=int))
    with pytest.raises(InvalidInputError, match="integer"):
        bootstrap_ci(np.mean, x, indices=np.zeros((3, 15)))
    with pytest.raises(InvalidInputError, match="lengths"):
        bootstrap_ci(lambda a, b: 0.0, x, x[:-1], strata=STRATA, seed=0)
    with pytest.raises(InvalidInputError, match="same patients"):
        paired_bootstrap(np.mean, (x,), (x[:-1],), strata=STRATA, seed=0)
    for ci in (0, 1, 1.5, "x"):
        with pytest.raises(InvalidInputError, match="`ci`"):
            bootstrap_ci(np.mean, x, strata=STRATA, seed=0, ci=ci)
    with pytest.raises(InvalidInputError, match="callable"):
        bootstrap_ci("mean", x, strata=STRATA, seed=0)


def test_bootstrap_slice_metrics_bounds_use_the_one_low_high_naming_and_keep_the_deprecated_copies():
    truth, pred = _latent(2)
    table = bootstrap_slice_metrics(truth, pred, LAYOUT, strata=STRATA, n_boot=50, seed=0)
    for metric in ("r2", "pearson_r"):
        for side in ("low", "high"):
            pd.testing.assert_series_equal(
                table[f"{metric}_{side}"], table[f"{metric}_ci_{side}"], check_names=False
            )  # deprecated copy, removed in the next minor release
