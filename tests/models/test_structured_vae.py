"""StructuredVAE: slices mean what the layout says (on the synthetic cohort), bad input, save/load."""

import mudata as md
import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LinearRegression, Ridge

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd.models import StructuredVAE


def _held_out_r2(Z, Y, train, test):
    pred = Ridge(alpha=1e-2).fit(Z[train], Y[train]).predict(Z[test])
    return 1 - ((Y[test] - pred) ** 2).sum() / ((Y[test] - Y[test].mean(0)) ** 2).sum()


@pytest.fixture(scope="module")
def fitted():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=800, n_genes=1000, n_cancer_types=3, seed=7)
    cfmd.tl.split_patients(mdata, seed=0)
    model = cfmd.tl.fit_latent(mdata, max_epochs=100, seed=0, train_kwargs={"enable_progress_bar": False})
    split = mdata.obs["cfmd_split"].astype(str).to_numpy()
    train = np.flatnonzero(np.isin(split, ["train", "validation"]))
    test = np.flatnonzero(split == "test")
    return mdata, model, train, test


def test_fields_written(fitted):
    mdata, model, _, _ = fitted
    latent = mdata.obsm["X_structured"]
    assert latent.shape == (800, 328)
    has_all = mdata.obs_names.isin(mdata["meth"].obs_names)
    assert np.isfinite(latent[has_all]).all() and np.isnan(latent[~has_all]).all()
    assert np.isfinite(mdata.obsm["X_structured_rna_only"]).all()
    assert LatentLayout.from_mudata(mdata, "X_structured") == LatentLayout.cfmd328()
    assert mdata.uns["X_structured"]["split_key"] == "cfmd_split"
    assert model.gene_set_coverage_["n_mapped"].min() >= 3


# Thresholds of the quality tests below (issue 11), set from the measured spread over training seeds, not guessed.
# Measured with `python benchmarks/threshold_spread.py --seeds 0 1 2 3 4` on the `fitted` fixture (800 patients x
# 1,000 genes, 100 epochs, owned slices), 2026-12-01, torch 2.13 CPU / scvi-tools 1.4.2. Rule: threshold = (min over
# seeds - margin), rounded down to 0.05, where margin = max(0.05, max - min over seeds): a new dependency release
# moves a figure about as much as a new seed does, so the test allows once more the spread it was measured with.
# A real regression (a slice that stops meaning what it says, or RNA overwriting an owned slice) moves these
# figures by far more (without ownership r2 cnv slice -> cnv was 0.57 on a fresh machine).
#
# figure                                  seed 0  seed 1  seed 2  seed 3  seed 4    min  margin  threshold
# r2 meth slice -> meth state              0.986   0.984   0.984   0.988   0.988  0.984   0.050   > 0.90
# ... minus r2 pathway slice -> meth       0.795   0.796   0.791   0.884   0.830  0.791   0.093   > 0.65
# ... minus r2 cnv slice -> meth           1.017   1.025   1.043   1.006   1.065  1.006   0.059   > 0.90
# r2 cnv slice -> cnv                      0.966   0.966   0.966   0.965   0.968  0.965   0.050   > 0.90
# ... minus max r2 other slice -> cnv      0.948   0.940   0.944   0.947   0.937  0.937   0.050   > 0.85
# r2 ctx slice -> ctx                      0.594   0.621   0.604   0.603   0.644  0.594   0.050   > 0.50
# median r own pathway block               0.775   0.778   0.759   0.778   0.785  0.759   0.050   > 0.70
# ... minus median r other block           0.714   0.690   0.681   0.676   0.646  0.646   0.068   > 0.55
# |r| prolif                               0.620   0.632   0.707   0.653   0.650  0.620   0.087   > 0.50
# full - RNA-only, meth slice -> meth      0.532   0.554   0.611   0.558   0.516  0.516   0.095   > 0.40
# full - RNA-only, cnv slice -> cnv        0.957   0.996   0.976   1.035   1.022  0.957   0.078   > 0.85
#
# Previous thresholds (no measured margin): 0.8, 0.4, 0.4, 0.6, 0.4, 0.4, 0.6, 0.4, 0.5, 0.1, 0.3. Every new one
# is at least as strict.


def test_slices_mean_what_they_say(fitted):
    mdata, _, train, test = fitted
    layout = LatentLayout.cfmd328()
    latent = mdata.obsm["X_structured"]
    meth_state = np.asarray(mdata.obsm["truth_meth_state"])
    cnv = np.asarray(mdata.obsm["truth_cnv"])

    def r2(slice_name, truth):
        return _held_out_r2(layout.take(latent, slice_name), truth, train, test)

    # the meth slice predicts the planted methylation state far better than the pathway or cnv slices
    r2_meth = r2("meth", meth_state)
    assert r2_meth > 0.9
    assert r2_meth - r2("pathway", meth_state) > 0.65
    assert r2_meth - r2("cnv", meth_state) > 0.9
    # the cnv slice tracks the planted copy-number factors, other slices do not
    r2_cnv = r2("cnv", cnv)
    assert r2_cnv > 0.9
    assert r2_cnv - max(r2("meth", cnv), r2("pathway", cnv), r2("residual", cnv)) > 0.85
    # the ctx slice carries the (RNA-invisible) context factors
    assert r2("ctx", np.asarray(mdata.obsm["truth_ctx"])) > 0.5


def test_each_pathway_block_tracks_its_pathway(fitted):
    mdata, _, train, test = fitted
    latent = mdata.obsm["X_structured"]
    truth = np.asarray(mdata.obsm["truth_pathway"])
    pathway = LatentLayout.cfmd328()["pathway"]
    own, other = [], []
    for k in range(50):
        block = latent[:, pathway.group_slice(k)]
        pred = LinearRegression().fit(block[train], truth[train, k]).predict(block[test])
        own.append(np.corrcoef(pred, truth[test, k])[0, 1])
        pred_other = LinearRegression().fit(block[train], truth[train, (k + 17) % 50]).predict(block[test])
        other.append(np.corrcoef(pred_other, truth[test, (k + 17) % 50])[0, 1])
    assert np.median(own) > 0.7
    assert np.median(own) - np.median(other) > 0.55


def test_rna_only_posterior_is_worse_on_meth_and_cnv(fitted):
    mdata, _, train, test = fitted
    layout = LatentLayout.cfmd328()
    full, rna_only = mdata.obsm["X_structured"], mdata.obsm["X_structured_rna_only"]
    for slice_name, truth_key, margin in [("meth", "truth_meth_state", 0.4), ("cnv", "truth_cnv", 0.85)]:
        truth = np.asarray(mdata.obsm[truth_key])
        r2_full = _held_out_r2(layout.take(full, slice_name), truth, train, test)
        r2_rna = _held_out_r2(layout.take(rna_only, slice_name), truth, train, test)
        assert r2_full - r2_rna > margin, (slice_name, r2_full, r2_rna)


def test_proliferation_dimension(fitted):
    mdata, _, _, test = fitted
    r = np.corrcoef(mdata.obsm["X_structured"][test, 0], mdata.obs["truth_prolif"].to_numpy()[test])[0, 1]
    assert abs(r) > 0.5


def test_latent_api_and_reconstruction(fitted):
    mdata, model, _, _ = fitted
    a = model.get_latent_representation(mdata, modalities=["rna"])
    np.testing.assert_allclose(a, mdata.obsm["X_structured_rna_only"], rtol=1e-5, atol=1e-5)
    only_meth = model.get_latent_representation(mdata, modalities=["rna", "meth"], indices=np.arange(10))
    assert only_meth.shape == (10, 328)
    with pytest.raises(InvalidInputError, match="unknown modality 'atac'"):
        model.get_latent_representation(mdata, modalities=["atac"])
    beta = model.get_reconstruction(mdata, modality="meth", indices=np.arange(5))
    assert beta.shape == (5, mdata["meth"].n_vars) and (beta > 0).all() and (beta < 1).all()
    expr = model.get_reconstruction(mdata, modality="rna", indices=np.arange(5))
    np.testing.assert_allclose(expr.sum(1), 1.0, rtol=1e-4)


def test_save_load_round_trip_is_exact(fitted, tmp_path):
    mdata, model, _, _ = fitted
    model.save(tmp_path / "vae", overwrite=True)
    loaded = StructuredVAE.load(tmp_path / "vae", adata=mdata)
    np.testing.assert_array_equal(loaded.get_latent_representation(mdata), model.get_latent_representation(mdata))
    assert loaded.layout == model.layout


@pytest.mark.slow
def test_same_seed_same_latent():
    def run():
        mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=3)
        cfmd.tl.fit_latent(mdata, max_epochs=2, seed=5, train_kwargs={"enable_progress_bar": False})
        return mdata.obsm["X_structured_rna_only"]

    np.testing.assert_array_equal(run(), run())


@pytest.mark.slow
def test_log2_scale_uses_gaussian_likelihood():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=3)
    rna = mdata["rna"]
    rna.layers["log2"] = np.log2(rna.X.toarray() / rna.X.sum(1).A * 1e6 + 1)
    model = cfmd.tl.fit_latent(
        mdata, rna_layer="log2", rna_scale="log2", max_epochs=2, train_kwargs={"enable_progress_bar": False}
    )
    assert model.module.rna_likelihood == "normal"
    assert np.isfinite(mdata.obsm["X_structured_rna_only"]).all()


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def cohort():
    return cfmd.datasets.synthetic_cohort(n_patients=80, n_genes=250, seed=2)


def _unchanged(mdata, before_obsm, before_uns):
    return set(mdata.obsm.keys()) == before_obsm and set(mdata.uns.keys()) == before_uns


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        (None, {"modalities": {"meth": "methylation"}}, "no modality 'methylation'"),
        (None, {"rna_scale": "tpm"}, "rna_scale"),
        (None, {"rna_scale": "log2"}, "not a log2 value"),
        (None, {"rna_scale": "zscore"}, "raw counts"),
        (None, {"likelihoods": {"meth": "poisson"}}, "likelihoods"),
        ("negative_counts", {}, "non-negative counts"),
        ("fractional_counts", {}, "non-integer value"),  # message of _expression.check_expression_scale
        ("nan_counts", {}, "finite"),
        ("all_nan_feature", {}, "all-NaN feature"),
        ("beta_out_of_range", {}, "beta values"),
        ("patient_without_rna", {}, "Every patient needs RNA"),
    ],
)
def test_bad_input_fails_before_any_change(cohort, mutate, kwargs, message):
    if mutate == "negative_counts":
        cohort["rna"].X = cohort["rna"].X.copy()
        cohort["rna"].X.data[0] = -1
    elif mutate == "fractional_counts":
        cohort["rna"].X = cohort["rna"].X.copy()
        cohort["rna"].X.data[0] = 1.5
    elif mutate == "nan_counts":
        cohort["rna"].X = cohort["rna"].X.copy()
        cohort["rna"].X.data[0] = np.nan
    elif mutate == "all_nan_feature":
        cohort["meth"].X[:, 3] = np.nan
    elif mutate == "beta_out_of_range":
        cohort["meth"].X[0, 0] = 1.5
        cohort["meth"].uns["scale"] = "beta"
    elif mutate == "patient_without_rna":
        mods = dict(cohort.mod.items())
        mods["rna"] = mods["rna"][1:].copy()
        cohort = md.MuData(mods)
    before_obsm, before_uns = set(cohort.obsm.keys()), set(cohort.uns.keys())
    with pytest.raises(InvalidInputError, match=message):
        cfmd.tl.fit_latent(cohort, max_epochs=1, **kwargs)
    assert _unchanged(cohort, before_obsm, before_uns)


def test_layout_problems_are_clear_errors(cohort):
    StructuredVAE.setup_mudata(cohort)
    without_meth = LatentLayout.from_sizes(
        [
            ("prolif", 1, "rna"),
            ("pathway", 200, "geneformer"),
            ("ctx", 31, "zero"),
            ("residual", 16, "esm"),
            ("cnv", 32, "zero"),
        ]
    )
    with pytest.raises(InvalidInputError, match="no slice 'meth'"):
        StructuredVAE(cohort, layout=without_meth)
    odd_pathway = LatentLayout.from_sizes(
        [
            ("prolif", 1, "rna"),
            ("pathway", 101, "geneformer"),
            ("ctx", 31, "zero"),
            ("residual", 16, "esm"),
            ("meth", 48, "regional_methylation"),
            ("cnv", 32, "zero"),
        ]
    )
    with pytest.raises(InvalidInputError, match="do not split into 50 blocks"):
        StructuredVAE(cohort, layout=odd_pathway)
    with pytest.raises(InvalidInputError, match="have no gene set"):
        StructuredVAE(cohort, gene_sets={"A": ["TP53"]})
    no_genes = {name: ["NOT_A_GENE"] for name in cfmd.datasets.hallmark_gene_sets()}
    with pytest.raises(InvalidInputError, match="have no gene in"):
        StructuredVAE(cohort, gene_sets=no_genes)


def test_setup_anndata_not_supported(cohort):
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        StructuredVAE.setup_anndata(cohort["rna"])


@pytest.mark.slow
def test_sparse_csc_counts_accepted(cohort):
    cohort["rna"].X = sparse.csc_matrix(cohort["rna"].X)
    cfmd.tl.fit_latent(cohort, max_epochs=1, train_kwargs={"enable_progress_bar": False})
    assert cohort.obsm["X_structured"].shape == (80, 328)
