"""cfmd.tl.prioritize_assays / cfmd.pl.acquisition_curve and the planted subgroup of synthetic_cohort (issue 16)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from _helpers import assert_mudata_unchanged, snapshot
from test_latent_diffusion import TINY, truth_cohort

import cfmd
from cfmd import InvalidInputError

matplotlib.use("Agg")

N_GEN = 8  # generations per patient: 4 repeats x 2


def oracle_cohort(n_patients: int = 400, seed: int = 2):
    """Planted cohort whose "generations" are the exact conditional of the methylation latent given what RNA sees.

    Outside the planted subgroup the methylation state is a function of what RNA reads, so every generation equals
    the truth; inside it the RNA-independent part is N(0, 2^2) per dimension, drawn afresh per generation. The
    split is fixed: 50% train, 10% validation, 40% test of the patients with methylation.
    """
    mdata = truth_cohort(
        n_patients, seed=seed, meth_key="truth_meth_observed", unpredictable_noise=2.0, unpredictable_outcome=1.0
    )
    has = np.isfinite(mdata.obsm["X_structured"]).all(1)
    names = mdata.obs_names[has]
    rng = np.random.default_rng(0)
    names = names[rng.permutation(names.size)]
    n_train, n_val = int(0.5 * names.size), int(0.1 * names.size)
    split = {"train": names[:n_train], "validation": names[n_train : n_train + n_val], "test": names[n_train + n_val :]}
    state = np.asarray(mdata.obsm["truth_meth_state"], dtype=np.float32)
    flagged = mdata.obs["truth_unpredictable"].to_numpy()
    noise = rng.standard_normal((mdata.n_obs, N_GEN, state.shape[1])).astype(np.float32)
    mdata.obsm["X_gen_samples"] = state[:, None, :] + 2.0 * noise * flagged[:, None, None]
    mdata.uns["X_gen"] = {
        "split": {k: [str(n) for n in v] for k, v in split.items()},
        "target_slices": ["meth"],
        "latent_key": "X_structured",
    }
    return mdata, split


@pytest.fixture(scope="module")
def oracle():
    mdata, split = oracle_cohort()
    cfmd.tl.prioritize_assays(mdata, "meth", generated_key="X_gen", n_repeats=4, n_random=5, seed=0)
    return mdata, split


def test_planted_outcome_changes_only_the_subgroup():
    plain = cfmd.datasets.synthetic_cohort(
        n_patients=120, n_genes=250, seed=5, protein_sequences=False, unpredictable_noise=2.0
    )
    planted = cfmd.datasets.synthetic_cohort(
        n_patients=120, n_genes=250, seed=5, protein_sequences=False, unpredictable_noise=2.0, unpredictable_outcome=1.0
    )
    assert "risk_group" not in plain.obs and "truth_meth_only_log_hazard" not in plain.obs
    assert (plain["rna"].X != planted["rna"].X).nnz == 0
    np.testing.assert_array_equal(plain["meth"].X, planted["meth"].X)
    flagged = planted.obs["truth_unpredictable"].to_numpy()
    for column in ("os_time", "os_event", "truth_log_hazard"):  # the other patients' outcome is untouched
        np.testing.assert_array_equal(plain.obs[column].to_numpy()[~flagged], planted.obs[column].to_numpy()[~flagged])
    # the subgroup's log-hazard reads the measured methylation state: the added term is the methylation-only part
    signal = planted.uns["synthetic"]["signal"]
    only = planted.obsm["truth_meth_observed"].astype(float) - planted.obsm["truth_meth_state"].astype(float)
    expected = (signal["hazard_meth_state_0"] * only[:, 0] + signal["hazard_meth_state_1"] * only[:, 1]) * flagged
    np.testing.assert_allclose(planted.obs["truth_meth_only_log_hazard"], expected, atol=1e-5)
    np.testing.assert_allclose(planted.obs["truth_log_hazard"] - plain.obs["truth_log_hazard"], expected, atol=1e-5)
    high = planted.obs["risk_group"] == "high"
    assert high.sum() == 60 and (planted.obs.loc[high, "truth_log_hazard"].min()
                                 > planted.obs.loc[~high, "truth_log_hazard"].max())  # fmt: skip
    with pytest.raises(InvalidInputError, match="unpredictable_outcome"):
        cfmd.datasets.synthetic_cohort(n_patients=40, n_genes=250, unpredictable_outcome=1.0)
    with pytest.raises(InvalidInputError, match="unpredictable_outcome"):
        cfmd.datasets.synthetic_cohort(n_patients=40, n_genes=250, unpredictable_noise=1.0, unpredictable_outcome=-1)


def test_scores_find_the_planted_subgroup_exactly(oracle):
    mdata, split = oracle
    score = mdata.obs["cfmd_prioritize_score"]
    test = mdata.obs_names.isin(split["test"])
    assert score[~test].isna().all() and score[test].notna().all()
    flagged = mdata.obs["truth_unpredictable"].to_numpy()
    # every generation of a predictable patient equals its truth: zero spread, exactly; the subgroup's is positive
    assert (score[test & ~flagged] == 0).all() and (score[test & flagged] > 0).all()
    rank = mdata.obs["cfmd_prioritize_rank"][test]
    assert sorted(rank) == list(range(1, int(test.sum()) + 1))
    assert rank[flagged[test]].max() == flagged[test].sum()  # the subgroup is ranked first, all of it


def test_informed_curve_reaches_full_information_once_the_subgroup_is_observed(oracle):
    mdata, split = oracle
    result = mdata.uns["cfmd_prioritize"]
    curves, settings = result["curves"], result["settings"]
    assert (
        settings["metric"] == "c_index" and settings["n_generations"] == 2 and settings["n_test"] == len(split["test"])
    )
    informed = curves[curves["strategy"] == "informed"].pivot(index="repeat", columns="fraction", values="value")
    random = curves[curves["strategy"] == "random"].pivot(index="repeat", columns="fraction", values="value")
    np.testing.assert_array_equal(informed[0.0], random[0.0])  # nobody observed: the same predictions
    np.testing.assert_array_equal(informed[1.0], random[1.0])  # everybody observed
    # outside the subgroup the imputation equals the truth, so observing the subgroup gives the full-data metric
    test = mdata.obs_names.isin(split["test"])
    share = mdata.obs["truth_unpredictable"][test].mean()
    after = [f for f in informed.columns if f >= share + 1e-9]
    for fraction in after:
        np.testing.assert_array_equal(informed[fraction], informed[1.0])
    areas = result["areas"]
    np.testing.assert_allclose(areas["difference"], areas["informed"] - areas["random"])
    np.testing.assert_allclose(areas["informed"], np.trapezoid(informed.to_numpy(), informed.columns, axis=1))
    summary = result["summary"]
    mean = summary[summary["strategy"] == "informed"].set_index("fraction")["mean"]
    np.testing.assert_allclose(mean.to_numpy(), informed.mean(0).to_numpy())
    assert (summary["low"] <= summary["mean"] + 1e-12).all() and (summary["high"] >= summary["mean"] - 1e-12).all()
    assert 0 <= result["test"]["p_wilcoxon"] <= 1
    per_type = result["per_cancer_type"]
    assert per_type["n_patients"].sum() == len(split["test"])


def test_classification_ablation_and_copy():
    mdata, split = oracle_cohort(200, seed=3)
    before = snapshot(mdata)
    out = cfmd.tl.prioritize_assays(
        mdata, "meth", generated_key="X_gen", task="classification", label_key="risk_group", score="ablation",
        unobserved="ablated", n_repeats=2, n_random=2, n_steps=5, key_added="cls", copy=True,
    )  # fmt: skip
    assert_mudata_unchanged(before, mdata)
    result = out.uns["cls"]
    assert result["settings"]["metric"] == "f1_macro" and result["settings"]["unobserved"] == "ablated"
    curves = result["curves"]
    assert set(curves["fraction"]) == {0.0, 0.25, 0.5, 0.75, 1.0} and curves["value"].between(0, 1).all()
    # ablated: with nobody observed, the model sees the training mean whatever the generations were
    repeat0 = curves[(curves["fraction"] == 0.0)]["value"].to_numpy()
    assert np.ptp(repeat0) == 0
    assert (out.obs["cls_score"].dropna() >= 0).all()


def test_bad_input_named_before_work_and_mdata_unchanged():
    mdata, _ = oracle_cohort(160, seed=4)
    before = snapshot(mdata)
    cases = [
        ({"generated_key": "nope"}, "generated_key"),
        ({"task": "regression"}, "`task`"),
        ({"score": "entropy"}, "`score`"),
        ({"unobserved": "zero"}, "`unobserved`"),
        ({"n_repeats": 1}, "n_repeats"),
        ({"n_repeats": 5}, "needs at least 10 generations"),
        ({"task": "classification"}, "label_key"),
        ({"task": "classification", "label_key": "stage"}, "stage"),
        ({"time_key": "survival_days"}, "survival_days"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            cfmd.tl.prioritize_assays(mdata, "meth", **{"generated_key": "X_gen", "n_repeats": 4, **kwargs})
    with pytest.raises(InvalidInputError, match="rppa"):
        cfmd.tl.prioritize_assays(mdata, "rppa", generated_key="X_gen", n_repeats=4)
    with pytest.raises(InvalidInputError, match="does not hold"):
        cfmd.tl.prioritize_assays(mdata, "cnv", generated_key="X_gen", n_repeats=4)
    assert_mudata_unchanged(before, mdata)


def test_acquisition_curve_draws_the_stored_summary(oracle, tmp_path):
    mdata, _ = oracle
    fig = cfmd.pl.acquisition_curve(mdata, return_fig=True, save=tmp_path / "curve.png")
    axis = fig.axes[0]
    summary = mdata.uns["cfmd_prioritize"]["summary"]
    lines = {line.get_label(): line for line in axis.get_lines()}
    informed = lines["informed (counterfactual score)"]
    expected = summary[summary["strategy"] == "informed"].sort_values("fraction")
    np.testing.assert_allclose(informed.get_ydata(), expected["mean"])
    assert "Wilcoxon p" in axis.get_legend().get_title().get_text()
    assert (tmp_path / "curve.png").stat().st_size > 0
    with pytest.raises(InvalidInputError, match="No result table"):
        cfmd.pl.acquisition_curve(mdata, key="nope")
    with pytest.raises(InvalidInputError, match="lacks column"):
        cfmd.pl.acquisition_curve(pd.DataFrame({"strategy": ["random"], "fraction": [0.0]}))
    matplotlib.pyplot.close("all")


@pytest.mark.slow  # trains a tiny diffusion model (~3 s alone)
def test_end_to_end_with_generate():
    mdata = truth_cohort(
        160, seed=1, meth_key="truth_meth_observed", unpredictable_noise=2.0, unpredictable_outcome=1.0
    )
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.generate(mdata, model="diffusion", target="meth", conditions=["rna", "cancer_type"], n_samples=4,
                     return_samples=True, model_kwargs=TINY, max_epochs=5, train_kwargs={"validate_every": 5})  # fmt: skip
    cfmd.tl.prioritize_assays(mdata, "meth", n_repeats=2, n_random=2, n_steps=3)
    result = mdata.uns["cfmd_prioritize"]
    test = mdata.obs["cfmd_split"] == "test"
    assert mdata.obs.loc[test, "cfmd_prioritize_score"].notna().all()
    assert mdata.obs.loc[~test, "cfmd_prioritize_score"].isna().all()
    assert list(result["scores"].index) == list(mdata.obs_names[test])


def test_macro_f1_equals_scikit_learn():
    from sklearn.metrics import f1_score

    from cfmd.tl._prioritize_downstream import macro_f1

    rng = np.random.default_rng(0)
    for n_classes, n in ((2, 30), (4, 50), (5, 7)):  # (5, 7): some classes absent from both
        true, predicted = rng.integers(0, n_classes, n), rng.integers(0, n_classes, n)
        expected = f1_score(true, predicted, average="macro", zero_division=0)
        assert macro_f1(true, predicted, n_classes) == pytest.approx(expected, abs=1e-12)
    assert macro_f1(np.array([1, 1]), np.array([0, 0]), 3) == 0.0
