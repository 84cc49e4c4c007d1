"""evaluate / benchmark / loco_audit: shapes of the results, hand-checkable values, bad input."""

import numpy as np
import pandas as pd
import pytest

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd.metrics import concordance_index, slice_metrics

TINY = {"rmd_kwargs": {"d_model": 16, "d_feedforward": 32, "d_gene_hidden": 8, "n_heads": 2}, "d_hidden": 16}
PLANTED = {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"}


@pytest.fixture
def with_predictions(latent_cohort):
    mdata = latent_cohort
    truth = np.asarray(mdata.obsm["X_structured"])
    rng = np.random.default_rng(0)
    filled = np.where(np.isfinite(truth), truth, 0.0)
    mdata.obsm["X_good"] = (filled + 0.1 * rng.standard_normal(truth.shape)).astype(np.float32)
    mdata.obsm["X_noise"] = rng.standard_normal(truth.shape).astype(np.float32)
    return mdata


def test_evaluate_matches_direct_metrics(with_predictions):
    mdata = with_predictions
    cfmd.tl.evaluate(mdata, predicted_keys={"good": "X_good", "noise": "X_noise"}, n_boot=100, seed=1)
    result = mdata.uns["cfmd_evaluation"]
    test = np.flatnonzero(mdata.obs["cfmd_split"].to_numpy() == "test")
    layout = LatentLayout.from_mudata(mdata, "X_structured")
    direct = slice_metrics(mdata.obsm["X_structured"][test], mdata.obsm["X_good"][test], layout).set_index("slice")
    slices = result["slices"].set_index(["method", "slice"])
    for name in layout.names + ["full"]:
        assert slices.loc[("good", name), "r2"] == pytest.approx(direct.loc[name, "r2"])
        assert (
            slices.loc[("good", name), "r2_low"]
            <= slices.loc[("good", name), "r2"]
            <= slices.loc[("good", name), "r2_high"]
        )
    summary = result["summary"].set_index("method")
    assert summary.loc["good", "latent_r2"] > 0.9 > summary.loc["noise", "latent_r2"]
    # the survival head is frozen and trained on training patients only: C-index of "good" = C of its risks
    assert 0.5 < summary.loc["good", "c_index"] <= 1
    assert np.isnan(summary.loc["good", "p_value"]) and 0 <= summary.loc["noise", "p_adjusted"] <= 1
    assert set(result["per_cancer_type"]["cancer_type"]) <= set(mdata.obs["cancer_type"].astype(str))
    assert result["params"]["n_patients"] == len(test)


def test_evaluate_bootstrap_is_reproducible(with_predictions):
    a = cfmd.tl.evaluate(with_predictions, predicted_keys="X_good", n_boot=50, seed=3, copy=True)
    b = cfmd.tl.evaluate(with_predictions, predicted_keys="X_good", n_boot=50, seed=3, copy=True)
    pd.testing.assert_frame_equal(a.uns["cfmd_evaluation"]["slices"], b.uns["cfmd_evaluation"]["slices"])
    pd.testing.assert_frame_equal(a.uns["cfmd_evaluation"]["summary"], b.uns["cfmd_evaluation"]["summary"])
    assert "cfmd_evaluation" not in with_predictions.uns  # copy=True leaves the input alone


def test_evaluate_bad_input(with_predictions):
    mdata = with_predictions
    test = mdata.obs["cfmd_split"] == "test"
    no_events = mdata.copy()
    no_events.obs.loc[test, "os_event"] = 0
    with pytest.raises(InvalidInputError, match="test split has no event"):
        cfmd.tl.evaluate(no_events, predicted_keys="X_good", n_boot=10)
    only_test = mdata.copy()
    cancer = only_test.obs["cancer_type"].astype(str).to_numpy()
    cancer[np.flatnonzero(test.to_numpy())[:2]] = "NEWTYPE"
    only_test.obs["cancer_type"] = cancer
    with pytest.raises(InvalidInputError, match="'NEWTYPE'.*not in training"):
        cfmd.tl.evaluate(only_test, predicted_keys="X_good", n_boot=10)
    other_layout = mdata.copy()
    LatentLayout.cfmd328().replace_strategies(cnv="rna").write(other_layout, "X_good")
    with pytest.raises(InvalidInputError, match="layout of .obsm\\['X_good'\\] differs"):
        cfmd.tl.evaluate(other_layout, predicted_keys="X_good", n_boot=10)
    with pytest.raises(InvalidInputError, match="no key 'X_missing'"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_missing", n_boot=10)
    narrow = mdata.copy()
    narrow.obsm["X_narrow"] = np.zeros((narrow.n_obs, 10), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="must have 328 columns"):
        cfmd.tl.evaluate(narrow, predicted_keys="X_narrow", n_boot=10)
    assert "cfmd_evaluation" not in mdata.uns


def test_c_index_used_by_evaluate_matches_hand_value():
    # times 1..4, all events, risk perfectly reversed -> every comparable pair discordant
    assert concordance_index(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4, bool), np.array([1.0, 2.0, 3.0, 4.0])) == 0.0


def test_benchmark_runs_every_method_on_one_split(latent_cohort, tmp_path):
    mdata = latent_cohort
    manager_before = mdata.uns.get("_scvi_manager_uuid")
    methods = [
        "zero_mask",
        "cfmd",
        "pesd",
        "ridge",
        "poe_rna_only",
        "matched_mlp",
        "cfmd_no_ortho",
        "pointwise_meth_mlp",
    ]
    result = cfmd.tl.benchmark(
        mdata, methods=methods, seeds=(1, 2), max_epochs=2, n_boot=50, cfmd_kwargs=TINY, **PLANTED
    )
    table3 = result["table3"].set_index("method")
    assert list(table3.index) == [m for m in methods if m != "pointwise_meth_mlp"]
    assert np.isnan(table3.loc["zero_mask", "latent_r2"]) and np.isfinite(table3.loc["ridge", "latent_r2"])
    assert np.isnan(table3.loc["cfmd", "p_adjusted"]) and (table3.drop("cfmd")["p_adjusted"] <= 1).all()
    assert set(result["timing"]["seed"]) == {1, 2} and len(result["timing"]) == 2 * len(methods)
    table1 = result["table1"].set_index("slice")
    assert {"meth (point)", "meth (region)", "Full latent"} <= set(table1.index)
    assert table1.loc["ctx", "teacher_or_method"] == "Zero-mask"
    table2 = result["table2"].set_index("method")
    assert list(table2.index) == ["zero_mask", "pesd"]
    assert "cfmd_benchmark" in mdata.uns
    assert mdata.uns.get("_scvi_manager_uuid") == manager_before  # models were registered on a copy
    files = cfmd.tl.write_benchmark(result, tmp_path / "tables")
    assert (tmp_path / "tables" / "table3.csv").exists() and "PESD StudentEncoder" in (
        tmp_path / "tables" / "tables.md"
    ).read_text()
    assert len(files) == 7
    with pytest.raises(InvalidInputError, match="exists"):
        cfmd.tl.write_benchmark(result, tmp_path / "tables")
    # the plots read the benchmark straight from mdata.uns: every method's slices, Table 3's points
    import matplotlib.pyplot as plt

    fig = cfmd.pl.slice_r2(mdata, return_fig=True)
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} == set(methods)
    fig = cfmd.pl.reconstruction_utility(mdata, return_fig=True)
    assert fig.axes[0].get_xlabel()
    plt.close("all")


def test_benchmark_bad_input(latent_cohort):
    with pytest.raises(InvalidInputError, match="unknown method\\(s\\) 'cfdm'"):
        cfmd.tl.benchmark(latent_cohort, methods=["cfdm"])
    with pytest.raises(InvalidInputError, match="needs 'cfmd' to run before it"):
        cfmd.tl.benchmark(latent_cohort, methods=["matched_mlp", "cfmd"])
    no_split = latent_cohort.copy()
    del no_split.obs["cfmd_split"]
    with pytest.raises(InvalidInputError, match="cfmd_split"):
        cfmd.tl.benchmark(no_split, methods=["zero_mask"])
    transductive = latent_cohort.copy()
    transductive.uns["X_structured"] = {**transductive.uns["X_structured"], "split_key": ""}
    with pytest.raises(InvalidInputError, match="seen the test patients"):
        cfmd.tl.benchmark(transductive, methods=["poe_rna_only"], seeds=(1,), n_boot=10)


def test_loco_fast_and_strict(latent_cohort):
    mdata = latent_cohort
    cfmd.tl.loco_audit(
        mdata, mode="fast", chromosomes=["1", "X"], max_epochs=2, cfmd_kwargs={"rmd_kwargs": TINY["rmd_kwargs"]}
    )
    fast = mdata.uns["cfmd_loco"]
    table = fast["per_chromosome"]
    assert list(table["chromosome"]) == ["1", "X", "1", "X"] and set(table["decoder"]) == {"regional", "pointwise"}
    np.testing.assert_allclose(table["delta_r2"], table["r2_random"] - table["r2"])
    assert "r2_shuffled_positions" in fast["summary"]
    cfmd.tl.loco_audit(
        mdata, mode="strict", decoders=["pointwise"], chromosomes=["7"], negative_control=False, max_epochs=2,
        key_added="strict",
    )  # fmt: skip
    strict = mdata.uns["strict"]
    assert strict["summary"]["mode"] == "strict" and len(strict["per_chromosome"]) == 1
    with pytest.raises(InvalidInputError, match="unknown chromosome"):
        cfmd.tl.loco_audit(mdata, chromosomes=["Y"])
    with pytest.raises(InvalidInputError, match="`decoders`"):
        cfmd.tl.loco_audit(mdata, decoders=["cnn"])


# ------------------------------------------------------------------ honest evaluation by construction (issue 12)
@pytest.fixture
def readme_flow():
    """The README's "A first look" flow at tiny sizes: X_cfmd (fill="missing") and X_cfmd_all (fill="all")."""
    from _helpers import tiny_imputed_cohort

    return tiny_imputed_cohort()


@pytest.mark.slow
def test_readme_flow_cannot_score_observed_latents(readme_flow):
    mdata, _ = readme_flow
    test = mdata.obs["cfmd_split"].to_numpy() == "test"
    # fill="missing" (the default) keeps the observed latent of the test patients: scoring it would give R^2 = 1
    np.testing.assert_array_equal(mdata.obsm["X_cfmd"][test], mdata.obsm["X_structured"][test])
    with pytest.raises(InvalidInputError, match=r"mdata\.obsm\['X_cfmd'\] holds the observed latent.*fill='all'"):
        cfmd.tl.evaluate(mdata, n_boot=10)
    assert "cfmd_evaluation" not in mdata.uns
    # fill="all": the model's predictions are scored, and they are not the truth
    cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", n_boot=10)
    result = mdata.uns["cfmd_evaluation"]
    slices = result["slices"]
    assert (slices["r2"] < 1).all() and result["summary"].loc[0, "latent_r2"] < 1
    assert not slices["in_sample"].any() and result["settings"]["in_sample"] is False
    assert result["params"]["n_patients"] == int(test.sum())


@pytest.mark.slow
def test_evaluate_refuses_the_truth_and_its_copies(readme_flow):
    mdata, _ = readme_flow
    with pytest.raises(InvalidInputError, match="names the truth key 'X_structured' itself"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_structured", n_boot=10)
    mdata.obsm["X_copy"] = np.asarray(mdata.obsm["X_structured"]).copy()
    with pytest.raises(InvalidInputError, match=r"mdata\.obsm\['X_copy'\].*equals the observed latent"):
        cfmd.tl.evaluate(mdata, predicted_keys={"mine": "X_copy"}, n_boot=10)
    # one copied row among honest predictions is refused too
    mixed = np.asarray(mdata.obsm["X_cfmd_all"]).copy()
    first_test = np.flatnonzero(mdata.obs["cfmd_split"].to_numpy() == "test")[0]
    mixed[first_test] = mdata.obsm["X_structured"][first_test]
    mdata.obsm["X_mixed"] = mixed
    with pytest.raises(InvalidInputError, match="on 1 of the"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_mixed", n_boot=10)


@pytest.mark.slow
def test_evaluate_in_sample_needs_the_option_and_is_labelled(readme_flow):
    mdata, _ = readme_flow
    with pytest.raises(InvalidInputError, match="`subset='train'`.*in_sample=True"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", subset="train", n_boot=10)
    with pytest.warns(UserWarning, match="IN-SAMPLE"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", subset="train", in_sample=True, n_boot=10)
    result = mdata.uns["cfmd_evaluation"]
    assert set(result["slices"]["method"]) == {"X_cfmd_all (in-sample)"}
    assert result["slices"]["in_sample"].all() and result["summary"]["in_sample"].all()
    assert result["settings"]["in_sample"] is True and result["params"]["in_sample"] is True


@pytest.mark.slow
def test_evaluate_refuses_a_mistyped_split_key(readme_flow):
    mdata, _ = readme_flow
    with pytest.raises(InvalidInputError, match="`split_key` 'cfmd_splt' is not a column of mdata.obs.*'cfmd_split'"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", split_key="cfmd_splt", n_boot=10)


@pytest.mark.slow
def test_evaluate_refuses_patients_the_model_trained_on(readme_flow):
    mdata, model = readme_flow
    recorded = mdata.uns["X_cfmd_all"]["split"]
    assert set(recorded["train"]) == set(model.split_["train"])
    trained = recorded["train"][0]
    split = mdata.obs["cfmd_split"].copy()
    split[trained] = "test"  # a training patient relabelled test after the model was trained
    mdata.obs["cfmd_split"] = split
    with pytest.raises(
        InvalidInputError, match=f"1 of the .* test patients scored were in the train / validation.*'{trained}'"
    ):
        cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", n_boot=10, survival=False)
    with pytest.warns(UserWarning, match="IN-SAMPLE"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", n_boot=10, survival=False, in_sample=True)
    assert mdata.uns["cfmd_evaluation"]["slices"]["in_sample"].all()


@pytest.mark.slow
def test_evaluate_warns_when_a_latent_has_no_split_record(readme_flow):
    mdata, _ = readme_flow
    mdata.obsm["X_mine"] = np.asarray(mdata.obsm["X_cfmd_all"]).copy()  # a user's own latent: no .uns record
    with pytest.warns(UserWarning, match=r"mdata\.uns\['X_mine'\] has no record of the split"):
        cfmd.tl.evaluate(mdata, predicted_keys="X_mine", n_boot=10, survival=False)
    assert mdata.uns["cfmd_evaluation"]["params"]["predicted_keys"] == {"X_mine": "X_mine"}


@pytest.mark.slow
def test_survival_head_ignores_the_test_patients(readme_flow):
    """Leakage proof: the frozen head is a function of the training (and validation) patients only."""
    mdata, _ = readme_flow
    cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", n_boot=10)
    head = mdata.uns["cfmd_evaluation"]["settings"]["survival_head"]
    test = np.flatnonzero(mdata.obs["cfmd_split"].to_numpy() == "test")
    rng = np.random.default_rng(1)
    perturbed = mdata.copy()
    truth = np.asarray(perturbed.obsm["X_structured"]).copy()
    truth[test] += rng.standard_normal((test.size, truth.shape[1])).astype(truth.dtype)
    perturbed.obsm["X_structured"] = truth
    prediction = np.asarray(perturbed.obsm["X_cfmd_all"]).copy()
    prediction[test] = rng.standard_normal((test.size, prediction.shape[1]))
    perturbed.obsm["X_cfmd_all"] = prediction
    cfmd.tl.evaluate(perturbed, predicted_keys="X_cfmd_all", n_boot=10)
    again = perturbed.uns["cfmd_evaluation"]["settings"]["survival_head"]
    assert again["alpha"] == head["alpha"] and again["n_train"] == head["n_train"]
    np.testing.assert_array_equal(again["coef"], head["coef"])  # bitwise identical
    before = mdata.uns["cfmd_evaluation"]["slices"].set_index("slice")["r2"]
    after = perturbed.uns["cfmd_evaluation"]["slices"].set_index("slice")["r2"]
    assert not np.allclose(before, after)  # the perturbation did reach the scores


@pytest.mark.slow
def test_evaluation_settings_survive_h5mu(readme_flow, tmp_path):
    import mudata

    from cfmd.pl._base import resolve_table

    mdata, _ = readme_flow
    cfmd.tl.evaluate(mdata, predicted_keys="X_cfmd_all", n_boot=12, ci=0.9, seed=5)
    attrs = mdata.uns["cfmd_evaluation"]["summary"].attrs
    mdata.write(tmp_path / "evaluated.h5mu")
    back = mudata.read_h5mu(tmp_path / "evaluated.h5mu")
    settings = cfmd.tl.evaluation_settings(back.uns["cfmd_evaluation"])
    assert settings["n_boot"] == 12 and settings["ci"] == pytest.approx(0.9) and settings["seed"] == 5
    assert settings["reference"] == "X_cfmd_all" and not settings["in_sample"] and settings["subset"] == "test"
    assert settings["survival_head"]["alpha"] == attrs["survival_head"]["alpha"]
    np.testing.assert_array_equal(settings["survival_head"]["coef"], attrs["survival_head"]["coef"])
    # the plots read the confidence level from the stored settings once .attrs are gone
    table, _, _ = resolve_table(back, uns_keys=[("cfmd_evaluation", "slices")], field="table")
    assert table.attrs["ci"] == pytest.approx(0.9)
    import matplotlib.pyplot as plt

    fig = cfmd.pl.slice_r2(back, key="cfmd_evaluation", return_fig=True)
    assert "90% bootstrap CI" in fig.axes[0].get_legend().get_title().get_text()
    plt.close("all")
