"""``cfmd.tl.downstream_rescue`` (seed 004's Table 2), ``cfmd.pl.downstream_rescue`` (Figure 3) and ``cfmd rescue``."""

from __future__ import annotations

import warnings

import anndata as ad
import matplotlib
import mudata as md
import numpy as np
import pandas as pd
import pytest
from _helpers import QUIET, assert_mudata_unchanged, snapshot

import cfmd
from cfmd.tl._downstream_rescue_tables import _classification_counts, _scores_from_counts

matplotlib.use("Agg")

#: Log-hazard per SD of the planted meth factor (the other term, 0.3 x rna_state[1], is much weaker).
METH_HAZARD = 2.0
NO_TEACHERS = {"use_geneformer": False, "use_esm": False, "ablation_fill": "rna"}
QUICK = {"imputers": ["zero_mask", "poe_rna_only"], "classifiers": ["logistic"], "survival_models": ["cox_head"],
         "n_boot": 100}  # fmt: skip


def rescue_cohort(n: int = 300, n_genes: int = 40, seed: int = 0) -> md.MuData:
    """A hand-built cohort (about 0.1 s) with a 9-d planted latent: rna_state (4) | meth (3) | cnv (2).

    RNA counts follow rna_state (and a faint trace of meth); cancer type shifts rna_state[0]; the log-hazard is
    ``METH_HAZARD * meth[0] + 0.3 * rna_state[1]``, so removing the meth slice must cost C-index and cnv must not
    matter. ``.obsm["X_structured_rna_only"]`` is a planted good imputer: the true latent plus N(0, 0.3^2) noise
    (standing in for the RNA-only posterior). 15% of the patients have RNA only; the split is 60/15/25.
    """
    rng = np.random.default_rng(seed)
    cancer = rng.choice(["BRCA", "LUAD", "KIRC"], n, p=[0.4, 0.35, 0.25])
    rna_state = rng.normal(size=(n, 4))
    rna_state[:, 0] += pd.Series(cancer).map({"BRCA": 0.0, "LUAD": 1.5, "KIRC": -1.5}).to_numpy()
    meth, cnv = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    truth = np.hstack([rna_state, meth, cnv])
    mean = 2.0 + rna_state @ rng.normal(scale=0.5, size=(4, n_genes)) + meth @ rng.normal(scale=0.15, size=(3, n_genes))
    counts = rng.poisson(np.exp(mean)).astype(np.float32)
    time = rng.exponential(np.exp(-(METH_HAZARD * meth[:, 0] + 0.3 * rna_state[:, 1]))) * 1000 + 1
    censor = rng.exponential(1500, n)
    names = np.array([f"P{i:03d}" for i in range(n)])
    has = rng.random(n) > 0.15
    genes = pd.DataFrame(index=[f"G{j}" for j in range(n_genes)])
    modalities = {"rna": ad.AnnData(counts, obs=pd.DataFrame(index=names), var=genes)}
    for name in ("meth", "cnv"):
        modalities[name] = ad.AnnData(
            rng.random((has.sum(), 5)).astype(np.float32),
            obs=pd.DataFrame(index=names[has]),
            var=pd.DataFrame(index=[f"{name}{j}" for j in range(5)]),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.MuData(modalities)
    mdata.obs["cancer_type"] = pd.Categorical(cancer)
    mdata.obs["os_time"] = np.minimum(time, censor)
    mdata.obs["os_event"] = (time <= censor).astype(int)
    latent = truth.astype(np.float32)
    latent[~has] = np.nan
    mdata.obsm["X_structured"] = latent
    # strategy "esm" run without teachers is CFMD's projector on the standardised RNA (see NO_TEACHERS)
    layout = cfmd.LatentLayout.from_sizes({"rna_state": (4, "esm"), "meth": (3, "esm"), "cnv": (2, "esm")})
    layout.write(mdata, "X_structured")
    cfmd.tl.split_patients(mdata, fractions=(0.6, 0.15, 0.25), seed=seed)
    mdata.uns["X_structured"] = {
        "modality_slices": np.array(["meth", "cnv"], dtype=object),
        "modality_names": np.array(["meth", "cnv"], dtype=object),
        "split_key": "cfmd_split",
    }
    mdata.obsm["X_structured_rna_only"] = (truth + rng.normal(scale=0.3, size=truth.shape)).astype(np.float32)
    return mdata


def rows_of(table: pd.DataFrame, **where) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


# ---------------------------------------------------------------------------------------------- the table
def test_writes_the_table2_shape_and_finds_the_planted_drop_and_rescue():
    mdata = rescue_cohort()
    cfmd.tl.downstream_rescue(mdata, **QUICK)
    result = mdata.uns["cfmd_downstream_rescue"]
    assert set(result) == {"results", "table", "comparisons", "per_cancer_type", "imputation_r2", "settings"}
    table = result["table"]
    assert list(table["pattern"].unique()) == ["meth", "cnv", "meth+cnv"]
    for column in ("full", "ablation", "cancer_type_only", "imputed_poe_rna_only", "drop_from_ablation",
                   "gain_poe_rna_only", "gain_zero_mask"):  # fmt: skip
        assert {column, f"{column}_low", f"{column}_high"} <= set(table.columns), column
    conditions = set(result["results"]["condition"])
    assert conditions == {"full", "ablation", "imputed:zero_mask", "imputed:poe_rna_only", "cancer_type_only"}
    assert result["settings"]["missing_slices"] == {"meth": ["meth"], "cnv": ["cnv"], "meth+cnv": ["meth", "cnv"]}

    # the hazard depends on meth: its removal costs C-index and the planted good imputer recovers it. Over cohort
    # seeds 0-5 the drop's upper bound ranged -0.08 to -0.22 and the gain's lower bound +0.07 to +0.19 (n_test ~64)
    meth = rows_of(table, task="survival", model="cox_head", pattern="meth").iloc[0]
    assert meth["drop_from_ablation_high"] < 0
    assert meth["gain_poe_rna_only_low"] > 0
    assert meth["drop_from_ablation"] == pytest.approx(meth["ablation"] - meth["full"])
    assert meth["gain_poe_rna_only"] == pytest.approx(meth["imputed_poe_rna_only"] - meth["ablation"])
    # cancer type says nothing of the planted survival: the cancer-type-only head ranks worse than the full one
    assert meth["cancer_type_only"] < meth["full"]
    # a cancer-type classifier has no cancer-type-only baseline
    clf = rows_of(table, task="classification")
    assert clf["cancer_type_only"].isna().all() and clf["full"].between(0, 1).all()
    # reconstruction of the missing slices: the planted imputer has noise variance 0.09 on unit-variance factors
    # (R^2 about 0.91); zero-masking explains nothing (R^2 <= 0)
    r2 = result["imputation_r2"].set_index(["imputer", "pattern"])["r2"]
    assert r2[("poe_rna_only", "meth")] > 0.8 and r2[("zero_mask", "meth")] <= 0
    comparisons = result["comparisons"]
    assert comparisons["p_value"].between(0, 1).all() and (comparisons["p_adjusted"] >= comparisons["p_value"]).all()
    per_type = result["per_cancer_type"]
    assert set(per_type["cancer_type"]) == {"BRCA", "LUAD", "KIRC"}
    assert set(per_type["task"]) == {"classification", "survival"}


def test_vectorised_scores_equal_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    pred[pred == 3] = 2  # a class never predicted
    indices = rng.integers(0, 40, size=(25, 40))
    scores = _scores_from_counts(_classification_counts(true, pred, 4, indices))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b, idx in enumerate(indices):
            assert scores["f1"][b] == pytest.approx(f1_score(true[idx], pred[idx], average="macro"))
            assert scores["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(true[idx], pred[idx]))


def test_a_stage_label_gets_a_cancer_type_only_baseline_and_per_type_scores():
    mdata = rescue_cohort()
    state = np.nan_to_num(np.asarray(mdata.obsm["X_structured_rna_only"])[:, 1])
    mdata.obs["stage"] = np.where(state > 0.5, "III", np.where(state > -0.5, "II", "I"))
    cfmd.tl.downstream_rescue(mdata, **{**QUICK, "survival_models": []}, label_key="stage", patterns=["meth"])
    result = mdata.uns["cfmd_downstream_rescue"]
    assert set(result["results"]["task"]) == {"classification"}
    row = result["table"].iloc[0]
    assert np.isfinite(row["cancer_type_only"]) and row["full"] > row["cancer_type_only"]
    per_type = rows_of(result["per_cancer_type"], condition="full", metric="f1")
    assert len(per_type) == 3 and per_type["value"].between(0, 1).all()


def test_same_seed_same_tables_and_copy_leaves_the_caller_alone():
    mdata = rescue_cohort()
    before = snapshot(mdata)
    options = {**QUICK, "n_boot": 20}
    out = cfmd.tl.downstream_rescue(mdata, **options, copy=True)
    assert_mudata_unchanged(before, mdata)
    cfmd.tl.downstream_rescue(mdata, **options)
    for name in ("results", "table", "comparisons", "per_cancer_type"):
        pd.testing.assert_frame_equal(
            out.uns["cfmd_downstream_rescue"][name], mdata.uns["cfmd_downstream_rescue"][name]
        )


def test_too_few_test_events_gives_nan_c_index_with_a_note():
    mdata = rescue_cohort()
    test = np.flatnonzero((mdata.obs["cfmd_split"] == "test").to_numpy())
    events = mdata.obs["os_event"].to_numpy().copy()
    events[test[np.flatnonzero(events[test])[2:]]] = 0  # two test events left
    mdata.obs["os_event"] = events
    with pytest.warns(UserWarning, match="too few for a C-index"):
        cfmd.tl.downstream_rescue(mdata, **{**QUICK, "classifiers": []}, label_key=None)
    result = mdata.uns["cfmd_downstream_rescue"]
    assert result["results"]["value"].isna().all()
    assert any("too few" in note for note in result["settings"]["notes"])


# ---------------------------------------------------------------------------------------------- no leakage
@pytest.mark.slow
def test_test_patients_never_reach_the_frozen_models_or_the_imputers():
    """Perturbing the test patients' owned slices and other modalities changes only the full-data scores."""
    imputers = ["zero_mask", "ridge", "poe_rna_only"]
    options = {**QUICK, "imputers": imputers, "classifiers": ["logistic", "random_forest"],
               "survival_models": ["cox_head", "random_survival_forest"], "n_estimators": 10, "n_boot": 20,
               "patterns": [["meth", "cnv"]]}  # fmt: skip
    clean = rescue_cohort()
    cfmd.tl.downstream_rescue(clean, **options)
    perturbed = rescue_cohort()
    test = (perturbed.obs["cfmd_split"] == "test").to_numpy()
    latent = np.array(perturbed.obsm["X_structured"])
    rng = np.random.default_rng(1)
    latent[test, 4:] = rng.normal(scale=3.0, size=(test.sum(), 5))  # the meth and cnv slices
    perturbed.obsm["X_structured"] = latent
    for name in ("meth", "cnv"):
        rows = perturbed[name].obs_names.isin(perturbed.obs_names[test])
        values = np.array(perturbed[name].X)
        values[rows] = rng.random((rows.sum(), values.shape[1]))
        perturbed[name].X = values
    cfmd.tl.downstream_rescue(perturbed, **options)
    a = clean.uns["cfmd_downstream_rescue"]["results"].set_index(["task", "model", "metric", "condition"])
    b = perturbed.uns["cfmd_downstream_rescue"]["results"].set_index(["task", "model", "metric", "condition"])
    blind = [c for c in a.index.get_level_values("condition").unique() if c != "full"]
    assert len(blind) == 2 + len(imputers)
    for condition in blind:
        pd.testing.assert_frame_equal(a.xs(condition, level="condition"), b.xs(condition, level="condition"))
    full_a, full_b = a.xs("full", level="condition")["value"], b.xs("full", level="condition")["value"]
    assert (full_a != full_b).any()  # the perturbation did reach what the full condition scores


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"imputers": ["nope"]}, "unknown method"),
        ({"patterns": ["rna"]}, "`patterns` entry 'rna'"),
        ({"patterns": "meth"}, "`patterns` must be a non-empty list"),
        ({"label_key": "stage"}, "stage"),
        ({"classifiers": ["svm"]}, "`classifiers` has unknown"),
        ({"survival_models": ["cox"]}, "`survival_models` has unknown"),
        ({"classifiers": [], "survival_models": []}, "Nothing to score"),
        ({"slice_modalities": {"nope": "meth"}}, "absent from the layout"),
        ({"n_boot": 0}, "`n_boot`"),
        ({"max_epochs": 0}, "`max_epochs`"),
        ({"max_epochs": {"ridge": 3}}, "not among the `imputers`"),
        ({"ci": 1.5}, "`ci`"),
        ({"seed": -1}, "`seed`"),
        ({"latent_key": "X_missing"}, "X_missing"),
        ({"split_key": "nope"}, "nope"),
    ],
)
def test_bad_input_is_refused_before_any_work_and_leaves_mdata_unchanged(options, message):
    mdata = rescue_cohort(n=120)
    before = snapshot(mdata)
    with pytest.raises(cfmd.InvalidInputError, match=message):
        cfmd.tl.downstream_rescue(mdata, **{**QUICK, **options})
    assert_mudata_unchanged(before, mdata)


def test_a_latent_without_recorded_ownership_needs_slice_modalities():
    mdata = rescue_cohort(n=120)
    del mdata.uns["X_structured"]["modality_slices"]
    with pytest.raises(cfmd.InvalidInputError, match="slice_modalities"):
        cfmd.tl.downstream_rescue(mdata, **{**QUICK, "imputers": ["zero_mask"]})
    cfmd.tl.downstream_rescue(
        mdata, **{**QUICK, "imputers": ["zero_mask"], "n_boot": 10}, slice_modalities={"meth": "meth"}
    )
    assert mdata.uns["cfmd_downstream_rescue"]["settings"]["patterns"] == ["meth"]


# ---------------------------------------------------------------------------------------------- the figure
def test_figure_draws_one_panel_per_model_and_one_bar_per_condition_and_pattern():
    import matplotlib.pyplot as plt

    mdata = rescue_cohort()
    cfmd.tl.downstream_rescue(mdata, **{**QUICK, "n_boot": 10})
    fig = cfmd.pl.downstream_rescue(mdata, return_fig=True)  # saving: the CLI test
    assert len(fig.axes) == 2
    classification, survival = fig.axes
    assert survival.get_ylabel() == "C-index" and classification.get_ylabel() == "Macro F1"
    # 3 patterns x 5 conditions
    assert len(survival.patches) == 15
    assert classification.get_legend() is None  # one legend, on the last panel
    legend = survival.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "Full data", "Ablation", "Imputed (zero_mask)", "Imputed (poe_rna_only)", "Cancer type only"
    ]  # fmt: skip
    results = mdata.uns["cfmd_downstream_rescue"]["results"]
    full = rows_of(results, model="cox_head", condition="full", pattern="meth")["value"].iloc[0]
    assert survival.patches[0].get_height() == pytest.approx(full)
    for axis, metric in zip(fig.axes, ["f1", "c_index"]):
        drawn = rows_of(results, model=axis.get_title().split(": ")[1], metric=metric)
        assert len(drawn)
        low, high = axis.get_ylim()  # the axis shows every interval whole, not only the bars
        assert low <= np.nanmin(drawn["value_low"]) and np.nanmax(drawn["value_high"]) <= high
    plt.close(fig)
    with pytest.raises(cfmd.InvalidInputError, match="`patterns` names"):
        cfmd.pl.downstream_rescue(mdata, patterns=["rna"])
    with pytest.raises(cfmd.InvalidInputError, match="`panels` names"):
        cfmd.pl.downstream_rescue(mdata, panels=[("svm", "f1")])


# ---------------------------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_cli_rescue_writes_tables_and_figure(capsys, tmp_path):
    from cfmd._cli import EXIT_INPUT, EXIT_OK, main

    mdata = rescue_cohort()
    path = tmp_path / "cohort.h5mu"
    mdata.write(path)
    out = tmp_path / "rescue"
    argv = [str(path), "--out", str(out), "--imputers", "zero_mask", "poe_rna_only", "--classifiers", "logistic",
            "--survival-models", "cox_head", "--n-boot", "20"]  # fmt: skip
    argv_patterns = [*argv, "--patterns", "meth", "meth+cnv"]
    assert main(["rescue", *argv_patterns]) == EXIT_OK
    stdout = capsys.readouterr().out
    assert stdout.startswith("| task | model | metric | pattern | full")
    for name in ("table.csv", "results.csv", "comparisons.csv", "per_cancer_type.csv", "table.md"):
        assert (out / name).is_file(), name
    assert (out / "downstream_rescue.png").stat().st_size > 0
    table = pd.read_csv(out / "table.csv")
    assert list(table["pattern"].unique()) == ["meth", "meth+cnv"]
    assert main(["rescue", *argv_patterns]) != EXIT_OK  # OUT exists and is not empty
    capsys.readouterr()
    assert main(["rescue", *argv, "--patterns", "rna", "--overwrite"]) == EXIT_INPUT
    assert "`patterns` entry" in capsys.readouterr().err


def test_cli_defaults_are_the_tool_defaults():
    import inspect

    from cfmd._cli import build_parser

    args = build_parser().parse_args(["rescue", "x.h5mu", "--out", "d"])
    defaults = inspect.signature(cfmd.tl.downstream_rescue).parameters
    for name in ("imputers", "label_key", "classifiers", "survival_models", "max_epochs", "n_boot", "n_estimators",
                 "seed", "latent_key", "split_key", "rna_scale"):  # fmt: skip
        expected = defaults[name].default
        assert getattr(args, name) == (list(expected) if isinstance(expected, tuple) else expected), name


# ---------------------------------------------------------------------------------------------- every imputer
@pytest.mark.slow
def test_neural_and_generative_imputers_run_through_the_registry():
    """CFMD (no teachers: the planted layout has none), latent diffusion and Coherent Denoising, tiny and short."""
    mdata = rescue_cohort(n=200)
    imputers = ["cfmd", "diffusion", "coherent_denoising"]
    cfmd.tl.downstream_rescue(
        mdata, imputers=imputers, patterns=["meth"], classifiers=["logistic"], survival_models=["cox_head"],
        max_epochs=2, cfmd_kwargs={**NO_TEACHERS, "d_hidden": 16}, geneformer_key=None, gene_embedding_key=None,
        generative_kwargs={"n_hidden": 16, "n_layers": 1, "num_train_timesteps": 10}, train_kwargs=QUIET, n_boot=20,
    )  # fmt: skip
    table = mdata.uns["cfmd_downstream_rescue"]["table"]
    for name in imputers:
        assert np.isfinite(table[f"imputed_{name}"]).all() and np.isfinite(table[f"gain_{name}"]).all(), name


def test_each_imputer_trains_for_its_own_default_unless_told():
    from cfmd._constants import CFMD_MAX_EPOCHS, DIFFUSION_MAX_EPOCHS
    from cfmd.tl._downstream_rescue import imputer_max_epochs

    assert imputer_max_epochs("cfmd", None) == CFMD_MAX_EPOCHS == 200
    assert imputer_max_epochs("diffusion", None) == imputer_max_epochs("coherent_denoising", None) == 2000
    assert DIFFUSION_MAX_EPOCHS == 2000
    assert imputer_max_epochs("diffusion", 7) == imputer_max_epochs("cfmd", 7) == 7  # one number for all
    assert imputer_max_epochs("cfmd", {"cfmd": 3}) == 3
    assert imputer_max_epochs("diffusion", {"cfmd": 3}) == 2000  # not named: its own default
