"""benchmark(cv=k), the per-slice ridge / students='auto', and the survival head's small-sample behaviour."""

import warnings

import numpy as np
import pytest
from _helpers import PLANTED, QUIET, SMALL_CFMD

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd.metrics import SurvivalHead
from cfmd.tl import score_methods
from cfmd.tl._cv import cv_assignments

NO_TEACHERS = {"use_geneformer": False, "use_esm": False, **SMALL_CFMD}


@pytest.fixture(scope="module")
def linear_cohort():
    """A synthetic cohort whose latent is a planted linear map of log-RNA plus noise (no VAE: fast)."""
    mdata = cfmd.datasets.synthetic_cohort(n_patients=90, n_genes=220, seed=1)
    layout = LatentLayout.cfmd328()
    x = np.log1p(np.asarray(mdata["rna"].X.toarray(), dtype=float))[:, :60]
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    rng = np.random.default_rng(0)
    latent = x @ rng.normal(size=(x.shape[1], layout.n_dims)) / np.sqrt(x.shape[1])
    latent += 0.5 * rng.normal(size=latent.shape)
    mdata.obsm["X_structured"] = latent.astype(np.float32)
    layout.write(mdata, "X_structured")
    return mdata


def _cv(mdata, **kwargs):
    options = {"methods": ["zero_mask", "ridge"], "cv": 3, "n_boot": 20, "seeds": (0,), "cv_repeats": 2, **kwargs}
    return cfmd.tl.benchmark(mdata, **options)


def test_cv_assignments_are_disjoint_complete_and_stratified():
    strata = np.array(["A|1"] * 10 + ["A|0"] * 20 + ["B|1"] * 7 + ["B|0"] * 13, dtype=object)
    folds = cv_assignments(strata, 5, 3, seed=0)
    assert folds.shape == (3, 50)
    assert set(np.unique(folds)) == set(range(5))  # every patient in exactly one fold per repeat
    for repeat in folds:
        for label in set(strata):
            sizes = np.bincount(repeat[strata == label], minlength=5)
            assert sizes.max() - sizes.min() <= 1  # every stratum spread evenly
    assert not np.array_equal(folds[0], folds[1])  # repeats deal differently


@pytest.mark.slow
def test_benchmark_cv_scores_every_patient_once_per_repeat(linear_cohort):
    mdata = linear_cohort.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = _cv(mdata)
    entry = mdata.uns["cfmd_benchmark_cv"]
    assignment = entry["assignment"]
    for _, part in assignment.groupby("repeat"):
        assert part["patient"].is_unique and len(part) == mdata.n_obs
    folds = result["folds"]
    full = folds[(folds["kind"] == "full") & (folds["method"] == "ridge")]
    assert full.groupby("repeat")["n_test"].sum().tolist() == [mdata.n_obs, mdata.n_obs]
    # the training, validation and test parts of a fold are disjoint and cover the scored patients
    assert ((full["n_train"] + full["n_validation"] + full["n_test"]) == mdata.n_obs).all()
    assert entry["oof_predictions"]["ridge"].shape == (2, mdata.n_obs, 328)
    assert np.isfinite(entry["oof_predictions"]["ridge"]).all()
    slices = result["slices"].set_index(["method", "slice"])
    assert slices.loc[("ridge", "meth"), "r2_low"] <= slices.loc[("ridge", "meth"), "r2"]
    assert slices.loc[("ridge", "full"), "r2"] > 0.3  # the planted linear map is recovered out of fold
    assert {"c_index", "c_index_note"} <= set(result["per_cancer_type"].columns)
    assert {"slice", "best", "r2_fold_sd_ridge"} <= set(result["verdict"].columns)
    assert entry["params"]["cv"] == 3 and entry["params"]["cv_repeats"] == 2
    assert "cfmd_benchmark" not in mdata.uns  # cv results have their own key


@pytest.mark.slow
def test_benchmark_cv_leaks_nothing_from_test_patients(linear_cohort):
    """The out-of-fold prediction of a patient depends on no test patient's latent nor on the RNA of others.

    Perturbing (1) the latents of one fold's test patients leaves their out-of-fold predictions unchanged (they
    were predicted by models that never saw them), and (2) the RNA of half of a fold's test patients leaves the
    other half's predictions unchanged (normalisation and penalties come from the fold's training part only).
    """
    base = linear_cohort.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _cv(base, cv_repeats=1)
    entry = base.uns["cfmd_benchmark_cv"]
    fold0 = np.flatnonzero(entry["assignment"]["fold"].to_numpy() == 0)
    before = entry["oof_predictions"]["ridge"][0]

    latent = linear_cohort.copy()
    z = np.asarray(latent.obsm["X_structured"]).copy()
    z[fold0] += 100.0
    latent.obsm["X_structured"] = z
    rna = linear_cohort.copy()
    x = rna["rna"].X.toarray()
    half, other = fold0[: fold0.size // 2], fold0[fold0.size // 2 :]
    x[half] *= 50
    from scipy import sparse

    rna["rna"].X = sparse.csr_matrix(x)
    for perturbed, keep in ((latent, fold0), (rna, other)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _cv(perturbed, cv_repeats=1)
        after = perturbed.uns["cfmd_benchmark_cv"]["oof_predictions"]["ridge"][0]
        np.testing.assert_allclose(after[keep], before[keep], rtol=1e-5, atol=1e-5)
    # ... while the perturbation does reach the other folds' models (the check can fail)
    assert not np.allclose(latent.uns["cfmd_benchmark_cv"]["oof_predictions"]["ridge"][0], before)


def test_benchmark_cv_bad_input(linear_cohort):
    with pytest.raises(InvalidInputError, match="`cv` must"):
        cfmd.tl.benchmark(linear_cohort, methods=["ridge"], cv=1)
    with pytest.raises(InvalidInputError, match="'poe_rna_only' cannot be cross-validated"):
        cfmd.tl.benchmark(linear_cohort, methods=["ridge", "poe_rna_only"], cv=3)
    with pytest.raises(InvalidInputError, match="refit_latent=True is not implemented"):
        cfmd.tl.benchmark(linear_cohort, methods=["ridge"], cv=3, refit_latent=True)
    assert "cfmd_benchmark_cv" not in linear_cohort.uns


# ---------------------------------------------------------------------------------------------------- survival
def _noise_survival(seed, n, n_events):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 12))
    time = rng.exponential(1.0, n)
    event = np.zeros(n, dtype=bool)
    event[rng.choice(n, n_events, replace=False)] = True
    return latent, time, event, np.array(["LIHC"] * n)


def test_head_falls_back_to_inner_cv_when_validation_has_few_events():
    train = _noise_survival(0, 60, 25)
    validation = _noise_survival(1, 8, 3)  # the real-cohort failure: 8 validation patients, 3 events
    with pytest.warns(UserWarning, match=r"validation split has 3 event\(s\).*inner CV"):
        head = SurvivalHead().fit(*train, validation=validation)
    assert head.selection_["penalty_by"] == "inner_cv"
    assert head.alpha_ in head.to_dict()["alphas"]
    assert np.isfinite(head.to_dict()["validation_c_index"]).any()  # inner-CV C per penalty
    with pytest.warns(UserWarning, match="inner CV"):
        explicit = SurvivalHead().fit(*train, validation="inner_cv")
    assert explicit.alpha_ == head.alpha_  # the fallback is deterministic and ignores the tiny validation split


def test_head_warns_when_it_selects_no_feature():
    train = _noise_survival(0, 40, 10)
    with pytest.warns(UserWarning, match="selected no latent feature: all 12 latent coefficients are zero"):
        head = SurvivalHead(alpha=50.0).fit(*train)
    assert head.selection_["n_nonzero_latent"] == 0 and not np.any(head.coef)


def test_score_methods_reports_nan_c_index_below_five_events():
    from cfmd.tl._evaluate import SurvivalData

    layout = LatentLayout.cfmd328()
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(12, 328))
    train = _noise_survival(0, 60, 25)
    val = _noise_survival(1, 30, 12)
    test_time = rng.exponential(1.0, 12)
    test_event = np.zeros(12, dtype=bool)
    test_event[:3] = True
    surv = SurvivalData(
        rng.normal(size=(60, 328)), train[1], train[2], train[3], (rng.normal(size=(30, 328)), *val[1:]),
        test_time, test_event, np.array(["LIHC"] * 12),
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"3 event\(s\) \(< 5\).*NaN"):
        out = score_methods(truth, {"a": [truth + 0.1]}, layout, cancer_type=np.array(["LIHC"] * 12), survival=surv)
    summary = out["summary"]
    assert np.isnan(summary["c_index"]).all() and "3 event" in summary.attrs["c_index_note"]


# ---------------------------------------------------------------------------------------------------- students
@pytest.mark.slow
def test_impute_students_auto_picks_the_better_student_and_survives_save_load(tmp_path):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata)
    cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs=QUIET)
    options = {"max_epochs": 2, "model_kwargs": SMALL_CFMD, "train_kwargs": QUIET, "fill": "all", **PLANTED}
    paper = mdata.copy()
    cfmd.tl.impute(paper, **options)
    shown = paper.uns["X_cfmd"]["students"]
    assert shown["mode"] == "paper" and set(shown["chosen"].values()) == {"cfmd"}
    assert all({"cfmd", "ridge"} <= set(v) for v in shown["scores"].values())  # ridge shown next to CFMD

    model = cfmd.tl.impute(mdata, students="auto", save_model=tmp_path / "m", **options)
    record = mdata.uns["X_cfmd"]["students"]
    assert record["mode"] == "auto" and "inner 3-fold CV" in record["rule"]  # 96 training patients < 200
    for name, scores in record["scores"].items():
        # never worse than the best single student on the held-out patients that chose, by construction
        assert scores[record["chosen"][name]] == max(scores.values())
        if scores["ridge"] > scores["cfmd"]:
            assert record["chosen"][name] == "ridge"
    assert "ridge" in record["chosen"].values()  # 2-epoch CFMD loses to the ridge on some slice
    assert (mdata.obsm["X_cfmd_provenance"]["meth"] == "imputed").all()  # provenance categories unchanged
    # a ridge-filled slice holds the ridge, a CFMD-filled one CFMD's student
    layout = model.layout
    cfmd_only = model.get_imputed_latent(mdata)
    for name, student in record["chosen"].items():
        s = layout[name]
        same = np.allclose(mdata.obsm["X_cfmd"][:, s.start : s.stop], cfmd_only[:, s.start : s.stop])
        assert same == (student == "cfmd") or layout[name].strategy == "zero"
    # the composite is saved as JSON arrays beside the model and reloads without training data
    fresh = mdata.copy()
    del fresh.obsm["X_structured"]
    cfmd.tl.impute(fresh, model=tmp_path / "m", students="auto", fill="all")
    np.testing.assert_allclose(fresh.obsm["X_cfmd"], mdata.obsm["X_cfmd"], rtol=1e-4, atol=1e-4)
    before = fresh.copy()
    with pytest.raises(InvalidInputError, match="students='auto' with the saved model"):
        cfmd.tl.impute(fresh, model=tmp_path / "nothing", students="auto")
    assert set(before.uns) == set(fresh.uns)


@pytest.mark.slow
def test_benchmark_runs_without_teachers(linear_cohort):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata)
    cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs=QUIET)
    assert "X_geneformer" not in mdata["rna"].obsm  # the default teacher keys are absent
    result = cfmd.tl.benchmark(
        mdata, methods=["cfmd", "ridge", "cfmd_auto"], seeds=(1,), max_epochs=2, n_boot=20, cfmd_kwargs=NO_TEACHERS,
        train_kwargs=QUIET,
    )  # fmt: skip
    assert np.isfinite(result["table3"].set_index("method").loc["cfmd", "latent_r2"])
    students = mdata.uns["cfmd_benchmark"]["students"]
    assert set(students["slice"]) == {"prolif", "pathway", "residual", "meth"}
    assert {"validation_r2_cfmd", "validation_r2_ridge", "better"} <= set(students.columns)
    with pytest.raises(InvalidInputError, match="no Geneformer embedding"):
        cfmd.tl.benchmark(mdata, methods=["cfmd"], seeds=(1,), max_epochs=1, n_boot=10)
