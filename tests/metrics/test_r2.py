"""Reconstruction metrics: multivariate R^2, Pearson r, per-slice table (hand-computed values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import r2_score

from cfmd import InvalidInputError, LatentLayout
from cfmd.metrics import default_macro_slices, multivariate_r2, pearson_r, slice_metrics

# A 4-patient latent with three slices, worked out by hand below.
LAYOUT = LatentLayout.from_sizes([("prolif", 1, "rna"), ("state", 2, "geneformer"), ("ctx", 1, "zero")])
TRUTH = np.array(
    [
        [1.0, 0.0, 1.0, 2.0],
        [2.0, 1.0, 1.0, 0.0],
        [3.0, 2.0, 3.0, 0.0],
        [4.0, 1.0, 3.0, 2.0],
    ]
)
PRED = np.array(
    [
        [2.0, 0.0, 1.0, 0.0],
        [2.0, 1.0, 2.0, 0.0],
        [3.0, 1.0, 3.0, 0.0],
        [5.0, 1.0, 3.0, 0.0],
    ]
)
# prolif: truth 1..4 (mean 2.5, SST = 2.25+0.25+0.25+2.25 = 5), errors (1,0,0,1): SSE = 2 -> R^2 = 1 - 2/5 = 0.6.
#   Pearson: x - mean = (-1.5,-0.5,0.5,1.5), pred (2,2,3,5) - 3 = (-1,-1,0,2): sxy = 5, sxx = 5, syy = 6 -> 5/sqrt(30).
# state: column (0,1,2,1) mean 1, SST 2, SSE 1; column (1,1,3,3) mean 2, SST 4, SSE 1 -> R^2 = 1 - 2/6 = 2/3.
# ctx (zero-masked): truth (2,0,0,2) mean 1, SST 4; prediction 0: SSE 8 -> R^2 = 1 - 8/4 = -1; r undefined (NaN).
# full: SSE 2 + 2 + 8 = 12, SST 5 + 6 + 4 = 15 -> R^2 = 1 - 12/15 = 0.2.
# macro (default: strategies other than zero/rna = state only) = 2/3.


def test_multivariate_r2_hand_computed():
    y = [[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]
    # column 0: SST = 4 + 0 + 4 = 8, SSE = 1 + 0 + 1 = 2; column 1 constant and exact -> 1 - 2/8
    assert multivariate_r2(y, [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]) == pytest.approx(0.75)
    # an error on the constant column still counts in the numerator: 1 - (2 + 1)/8
    assert multivariate_r2(y, [[1.0, 1.0], [2.0, 1.0], [3.0, 2.0]]) == pytest.approx(0.625)


def test_multivariate_r2_is_variance_weighted_and_single_column_is_ordinary_r2():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(30, 5)) * np.array([1, 2, 3, 0.5, 4])
    yhat = y + rng.normal(size=y.shape)
    assert multivariate_r2(y, yhat) == pytest.approx(r2_score(y, yhat, multioutput="variance_weighted"))
    assert multivariate_r2(y[:, 0], yhat[:, 0]) == pytest.approx(r2_score(y[:, 0], yhat[:, 0]))
    assert multivariate_r2(y, y) == 1.0
    # predicting every column's mean gives 0
    assert multivariate_r2(y, np.broadcast_to(y.mean(axis=0), y.shape)) == pytest.approx(0.0, abs=1e-12)


def test_multivariate_r2_undefined_when_truth_is_constant():
    assert np.isnan(multivariate_r2(np.ones((4, 2)), np.zeros((4, 2))))


def test_pearson_r_hand_computed():
    # x - mean = (-1, 0, 1); y - mean = (-7/3, -1/3, 8/3): sxy = 5, sxx = 2, syy = 114/9
    assert pearson_r([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]) == pytest.approx(5 / np.sqrt(2 * 114 / 9))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert pearson_r(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert pearson_r(x[:, None], y[:, None]) == pytest.approx(stats.pearsonr(x, y)[0])
    assert np.isnan(pearson_r(x, np.zeros(50)))


def test_pearson_r_rejects_multi_column_input():
    with pytest.raises(InvalidInputError, match="1-dimensional"):
        pearson_r(np.zeros((5, 2)), np.zeros((5, 2)))


def test_slice_metrics_hand_computed():
    table = slice_metrics(TRUTH, PRED, LAYOUT)
    assert list(table["slice"]) == ["prolif", "state", "ctx", "macro", "full"]
    assert list(table["kind"]) == ["slice", "slice", "slice", "macro", "full"]
    assert list(table["dims"]) == [1, 2, 1, 2, 4]
    assert (table["n_obs"] == 4).all()
    r2 = table.set_index("slice")["r2"]
    assert r2["prolif"] == pytest.approx(0.6)
    assert r2["state"] == pytest.approx(2 / 3)
    assert r2["ctx"] == pytest.approx(-1.0)
    assert r2["macro"] == pytest.approx(2 / 3)
    assert r2["full"] == pytest.approx(0.2)
    r = table.set_index("slice")["pearson_r"]
    assert r["prolif"] == pytest.approx(5 / np.sqrt(30))
    assert r[["state", "ctx", "macro", "full"]].isna().all()


def test_slice_metrics_macro_over_given_slices_and_subset_of_rows():
    table = slice_metrics(TRUTH, PRED, LAYOUT, slices=["state"], macro_slices=["prolif", "state"])
    assert list(table["slice"]) == ["state", "macro", "full"]
    assert table.set_index("slice").loc["macro", "r2"] == pytest.approx((0.6 + 2 / 3) / 2)
    assert table.set_index("slice").loc["macro", "dims"] == 3
    # full R^2 is over the whole latent whatever rows are reported
    assert table.set_index("slice").loc["full", "r2"] == pytest.approx(0.2)
    no_macro = slice_metrics(TRUTH, PRED, LAYOUT, macro_slices=[])
    assert "macro" not in set(no_macro["kind"])


def test_default_macro_slices_is_the_papers_actively_imputed_set():
    layout = LatentLayout.cfmd328(pathway_names=[f"pathway_{i}" for i in range(50)])
    assert default_macro_slices(layout) == ["pathway", "residual", "meth"]


def test_slice_metrics_matches_per_slice_function_on_random_data():
    layout = LatentLayout.cfmd328(pathway_names=[f"pathway_{i}" for i in range(50)])
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(40, 328))
    pred = truth + rng.normal(size=truth.shape)
    table = slice_metrics(truth, pred, layout).set_index("slice")
    for s in layout:
        assert table.loc[s.name, "r2"] == pytest.approx(multivariate_r2(truth[:, s.as_slice], pred[:, s.as_slice]))
    assert table.loc["prolif", "pearson_r"] == pytest.approx(pearson_r(truth[:, 0], pred[:, 0]))
    assert table.loc["full", "r2"] == pytest.approx(multivariate_r2(truth, pred))
    assert table.loc["macro", "r2"] == pytest.approx(table.loc[["pathway", "residual", "meth"], "r2"].mean())


def test_slice_metrics_accepts_dataframes_and_leaves_inputs_unchanged():
    truth, pred = pd.DataFrame(TRUTH.copy()), PRED.copy()
    slice_metrics(truth, pred, LAYOUT)
    np.testing.assert_array_equal(truth.to_numpy(), TRUTH)
    np.testing.assert_array_equal(pred, PRED)


@pytest.mark.parametrize(
    ("truth", "pred", "match"),
    [
        (TRUTH[:, :3], PRED[:, :3], "truth has 3 dimensions but its LatentLayout describes 4"),
        (TRUTH, np.hstack([PRED, PRED[:, :1]]), "prediction has 5 dimensions"),
        (TRUTH, PRED[:3], "same order; got 4 and 3 rows"),
        (TRUTH[:1], PRED[:1], "at least 2"),
        (TRUTH[:, 0], PRED[:, 0], "2-dimensional"),
        (TRUTH.astype(str), PRED, "must hold numbers"),
    ],
)
def test_slice_metrics_rejects_bad_shapes(truth, pred, match):
    with pytest.raises(InvalidInputError, match=match):
        slice_metrics(truth, pred, LAYOUT)


def test_slice_metrics_counts_nan_rows_in_truth():
    truth = TRUTH.copy()
    truth[[1, 3], 2] = np.nan
    before = truth.copy()
    with pytest.raises(InvalidInputError, match=r"truth has 2 of 4 row\(s\) with NaN.*rows 1, 3"):
        slice_metrics(truth, PRED, LAYOUT)
    np.testing.assert_array_equal(truth, before)
    pred = PRED.copy()
    pred[0, 0] = np.inf
    with pytest.raises(InvalidInputError, match=r"prediction has 1 of 4 row"):
        slice_metrics(TRUTH, pred, LAYOUT)


def test_slice_metrics_rejects_layouts_that_differ_between_truth_and_prediction():
    other = LatentLayout.from_sizes([("prolif", 1, "rna"), ("state", 1, "geneformer"), ("ctx", 2, "zero")])
    with pytest.raises(InvalidInputError, match=r"different LatentLayouts.*'ctx', 'state'"):
        slice_metrics(TRUTH, PRED, LAYOUT, prediction_layout=other)
    restrategised = LAYOUT.replace_strategies(state="zero")
    with pytest.raises(InvalidInputError, match="different strategies"):
        slice_metrics(TRUTH, PRED, LAYOUT, prediction_layout=restrategised)
    # an equal layout is fine
    slice_metrics(TRUTH, PRED, LAYOUT, prediction_layout=LatentLayout.from_dict(LAYOUT.to_dict()))
    with pytest.raises(InvalidInputError, match="must be a cfmd.LatentLayout"):
        slice_metrics(TRUTH, PRED, {"prolif": 1})


def test_slice_metrics_rejects_unknown_slices():
    with pytest.raises(InvalidInputError, match="'meth'.*slices: \\['prolif', 'state', 'ctx'\\]"):
        slice_metrics(TRUTH, PRED, LAYOUT, slices=["state", "meth"])
    with pytest.raises(InvalidInputError, match="macro_slices"):
        slice_metrics(TRUTH, PRED, LAYOUT, macro_slices=["nope"])


def test_metric_functions_reject_mismatched_and_non_finite_input():
    with pytest.raises(InvalidInputError, match="same shape"):
        multivariate_r2(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(InvalidInputError, match="same shape"):
        pearson_r([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="finite"):
        multivariate_r2([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match="finite"):
        pearson_r([1.0, 2.0, 3.0], [1.0, np.inf, 3.0])
