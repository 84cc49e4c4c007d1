"""CFMD: isolation, recovery of planted teacher signal on held-out patients, reproducibility, bad input."""

import mudata as md
import numpy as np
import pytest
import torch

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd.metrics import slice_metrics
from cfmd.models import CFMD, CFMDModule

SMALL_RMD = {"d_model": 32, "d_feedforward": 64, "d_gene_hidden": 64, "n_heads": 4, "dropout": 0.0}
PLANTED = {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"}


@pytest.fixture(scope="module")
def cohort(latent_cohort_session):
    return latent_cohort_session


@pytest.fixture(scope="module")
def trained(cohort):
    mdata = cohort.copy()
    model = cfmd.tl.impute(
        mdata,
        **PLANTED,
        fill="all",
        max_epochs=150,
        model_kwargs={"rmd_kwargs": SMALL_RMD, "d_hidden": 128},
        train_kwargs={"enable_progress_bar": False, "early_stopping_patience": 30, "lr": 2e-3},
    )
    return mdata, model


def test_isolation_exact_zero_gradients():
    layout = LatentLayout.cfmd328()
    torch.manual_seed(0)
    n_genes = 60
    module = CFMDModule(
        layout=layout,
        n_genes=n_genes,
        rna_scale="counts",
        rna_head_genes=np.arange(5),
        d_geneformer=16,
        esm_genes=np.arange(10, 40),
        esm_embeddings=np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32),
        tme_genes=np.arange(20, 60),
        tme_chromosomes=np.arange(40) % 23,
        rmd_kwargs=SMALL_RMD,
        d_hidden=32,
    )
    module.eval()
    x = torch.poisson(torch.full((6, n_genes), 20.0))
    gf = torch.randn(6, 16)
    out = module.inference(x, gf)
    z = out["z"]
    z.retain_grad()
    # a loss on the residual slice only ...
    layout.take(z, "residual").square().sum().backward()
    # ... reaches P_E and the learned temperature, and nothing else
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.projector_esm.parameters())
    assert module.fingerprint.raw_temperature.grad is not None
    for name in ("projector_geneformer", "regional_methylation_decoder", "rna_head"):
        for p in getattr(module, name).parameters():
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    # every dimension outside the residual slice receives exactly zero gradient
    outside = ~torch.as_tensor(layout.mask("residual"))
    assert torch.count_nonzero(z.grad[:, outside]) == 0
    # zero-masked slices are exact zeros
    assert torch.count_nonzero(layout.take(z, "ctx")) == 0 and torch.count_nonzero(layout.take(z, "cnv")) == 0


def test_dense_shared_trunk_leaks_gradient():
    layout = LatentLayout.cfmd328()
    module = CFMDModule(
        layout=layout, n_genes=30, rna_scale="counts", rna_head_genes=np.arange(3), d_geneformer=8,
        esm_genes=np.arange(10), esm_embeddings=np.ones((10, 4), dtype=np.float32), tme_genes=np.arange(30),
        tme_chromosomes=np.arange(30) % 23, architecture="shared_trunk", d_hidden=16,
    )  # fmt: skip
    x = torch.poisson(torch.full((4, 30), 10.0))
    z = module.inference(x, torch.randn(4, 8))["z"]
    layout.take(z, "residual").square().sum().backward()
    first = module.trunk.trunk[0]
    assert torch.count_nonzero(first.weight.grad) > 0  # shared parameters move with any slice's loss


def test_recovers_planted_signal_on_held_out_patients(trained):
    mdata, model = trained
    test = model.split_indices(mdata)["test"]
    truth = np.asarray(mdata.obsm["X_structured"])[test]
    pred = mdata.obsm["X_cfmd"][test]
    layout = model.layout
    table = slice_metrics(truth, pred, layout).set_index("slice")
    zero = slice_metrics(truth, np.zeros_like(pred), layout).set_index("slice")
    for name in ("pathway", "residual", "meth"):
        assert table.loc[name, "r2"] > max(zero.loc[name, "r2"], 0) + 0.2, (name, table.loc[name, "r2"])
    assert zero.loc["meth", "r2"] < 0  # zero-masking a slice with a non-zero mean is worse than predicting it
    assert table.loc["prolif", "pearson_r"] > 0.6
    assert np.count_nonzero(layout.take(pred, "ctx")) == 0 and np.count_nonzero(layout.take(pred, "cnv")) == 0
    history = model.history
    assert {"mse_pathway_train", "mse_meth_train", "ortho_train", "tau_train"} <= set(history)


def test_split_is_patient_disjoint_and_honours_the_split_column(trained):
    mdata, model = trained
    parts = {k: set(v) for k, v in model.split_.items()}
    assert not parts["train"] & parts["test"] and not parts["train"] & parts["validation"]
    split = mdata.obs["cfmd_split"].astype(str)
    assert parts["test"] == set(split.index[split == "test"])
    provenance = mdata.obsm["X_cfmd_provenance"]
    assert set(provenance["cnv"].unique()) == {"zero-masked"}
    assert mdata.uns["X_cfmd"]["fill"] == "all"


def test_fill_missing_keeps_observed_rows(cohort, trained):
    _, model = trained
    mdata = cohort.copy()
    cfmd.tl.impute(mdata, model=model)
    observed = np.isfinite(mdata.obsm["X_structured"]).all(1)
    np.testing.assert_array_equal(
        mdata.obsm["X_cfmd"][observed], mdata.obsm["X_structured"][observed].astype(np.float32)
    )
    assert (mdata.obsm["X_cfmd_provenance"].loc[observed, "pathway"] == "observed").all()
    assert (mdata.obsm["X_cfmd_provenance"].loc[~observed, "pathway"] == "imputed").all()


def test_save_load_round_trip_exact(cohort, trained, tmp_path):
    mdata, model = trained
    model.save(tmp_path / "cfmd", overwrite=True)
    other = cohort.copy()
    loaded_from_dir = cfmd.tl.impute(other, model=tmp_path / "cfmd", fill="all")
    np.testing.assert_array_equal(other.obsm["X_cfmd"], mdata.obsm["X_cfmd"])
    assert {k: list(v) for k, v in loaded_from_dir.split_.items()} == {k: list(v) for k, v in model.split_.items()}


def test_imputes_rna_only_patients_of_another_object(trained):
    mdata, model = trained
    rna_only = md.MuData({"rna": mdata["rna"][:20].copy()})
    out = model.get_imputed_latent(rna_only)
    np.testing.assert_allclose(out, mdata.obsm["X_cfmd"][:20], rtol=1e-5, atol=1e-5)


def test_other_genes_are_matched_by_name(trained, tmp_path):
    mdata, model = trained
    fewer = md.MuData({"rna": mdata["rna"][:, 5:].copy()})
    with pytest.warns(UserWarning, match="lacks 5 of the 500 genes the CFMD model was trained on"):
        model.get_imputed_latent(fewer)
    model.save(tmp_path / "saved", overwrite=True)
    renamed = mdata["rna"].copy()
    renamed.var_names = [f"other_{g}" for g in renamed.var_names]
    renamed = md.MuData({"rna": renamed})
    with pytest.raises(InvalidInputError, match=r"has 0 of the 500 genes the CFMD model was trained on"):
        cfmd.tl.impute(renamed, model=tmp_path / "saved")
    assert "X_cfmd" not in renamed.obsm
    with pytest.warns(UserWarning, match="lacks 5 of the 500 genes"):
        cfmd.tl.impute(fewer, model=tmp_path / "saved")
    assert fewer.obsm["X_cfmd"].shape == (mdata.n_obs, 328)


def test_same_seed_same_result(cohort):
    def run():
        mdata = cohort.copy()
        cfmd.tl.impute(
            mdata, **PLANTED, fill="all", max_epochs=3, seed=123,
            model_kwargs={"rmd_kwargs": SMALL_RMD, "d_hidden": 16}, train_kwargs={"enable_progress_bar": False},
        )  # fmt: skip
        return mdata.obsm["X_cfmd"]

    np.testing.assert_array_equal(run(), run())


def test_pointwise_methylation_baseline_on_the_same_split(trained):
    mdata, regional = trained
    meth_only = LatentLayout.cfmd328().replace_strategies(prolif="zero", pathway="zero", residual="zero")
    CFMD.setup_mudata(mdata, geneformer_key=None, gene_embedding_key=None)
    pointwise = CFMD(mdata, layout=meth_only, methylation_decoder="pointwise")
    pointwise.train(max_epochs=60, enable_progress_bar=False, early_stopping_patience=15)
    assert {k: list(v) for k, v in pointwise.split_.items()} == {k: list(v) for k, v in regional.split_.items()}
    assert pointwise.provenance["meth"] == "imputed" and pointwise.provenance["pathway"] == "zero-masked"
    test = pointwise.split_indices()["test"]
    truth = np.asarray(mdata.obsm["X_structured"])[test]
    r2 = (
        slice_metrics(truth, pointwise.get_imputed_latent(indices=test), meth_only).set_index("slice").loc["meth", "r2"]
    )
    assert r2 > 0.2


# ---------------------------------------------------------------------- bad input
@pytest.fixture
def small():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=60, n_genes=250, seed=2)
    layout = LatentLayout.cfmd328()
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((60, 328)).astype(np.float32)
    latent[~mdata.obs_names.isin(mdata["meth"].obs_names)] = np.nan
    mdata.obsm["X_structured"] = latent
    layout.write(mdata, "X_structured")
    return mdata


def _state(mdata):
    return set(mdata.obsm.keys()), set(mdata.uns.keys()), set(mdata["rna"].obsm.keys())


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        ("wide_latent", PLANTED, "has 330 dimensions but its LatentLayout describes 328"),
        (None, {"geneformer_key": "X_geneformer"}, "no Geneformer embedding 'X_geneformer'"),
        (
            None,
            {"gene_embedding_key": "X_esm2", "geneformer_key": "transcriptomic_context"},
            "no gene embedding 'X_esm2'",
        ),
        ("partial_nan", PLANTED, "some but not all values NaN"),
        ("no_latent", PLANTED, "no key 'X_structured'"),
        ("all_nan", PLANTED, "no patient with an observed latent"),
        ("negative_counts", PLANTED, "non-negative counts"),
        ("few_patients", PLANTED, "Too few patients"),
    ],
)
def test_bad_input_is_clear_and_leaves_mdata_unchanged(small, mutate, kwargs, message):
    if mutate == "wide_latent":
        small.obsm["X_structured"] = np.zeros((60, 330), dtype=np.float32)
    elif mutate == "partial_nan":
        small.obsm["X_structured"][0, :5] = np.nan
        small.obsm["X_structured"][0, 5:] = 1.0
    elif mutate == "no_latent":
        del small.obsm["X_structured"]
    elif mutate == "all_nan":
        small.obsm["X_structured"][:] = np.nan
    elif mutate == "negative_counts":
        small["rna"].X = small["rna"].X.copy()
        small["rna"].X.data[0] = -3
    elif mutate == "few_patients":
        keep = np.zeros(60, dtype=bool)
        keep[np.flatnonzero(np.isfinite(small.obsm["X_structured"][:, 0]))[:6]] = True
        small.obsm["X_structured"][~keep] = np.nan
    before = _state(small)
    with pytest.raises(InvalidInputError, match=message):
        cfmd.tl.impute(small, max_epochs=1, split_key=None, **kwargs)
    assert _state(small) == before
    assert "X_cfmd" not in small.obsm


def test_layout_strategy_needing_missing_input(small):
    CFMD.setup_mudata(small, geneformer_key=None, gene_embedding_key=None)
    with pytest.raises(InvalidInputError, match="no Geneformer embedding was registered"):
        CFMD(small)
    custom = LatentLayout.cfmd328().replace_strategies(cnv="copy_number_model")
    with pytest.raises(InvalidInputError, match="cannot fill slices with strategy 'copy_number_model'"):
        CFMD(small, layout=custom)
    no_gf = LatentLayout.cfmd328().replace_strategies(pathway="zero")
    with pytest.raises(InvalidInputError, match="'esm' slices but"):
        CFMD(small, layout=no_gf)


def test_bad_model_argument(small):
    with pytest.raises(InvalidInputError, match="not a directory"):
        cfmd.tl.impute(small, model="/nonexistent/model")
    with pytest.raises(InvalidInputError, match="`fill`"):
        cfmd.tl.impute(small, fill="some")


def test_max_epochs_default_is_each_models_own(monkeypatch):
    import importlib

    from cfmd._cli._impute import training_defaults
    from cfmd._constants import CFMD_MAX_EPOCHS, DIFFUSION_MAX_EPOCHS

    impute_module = importlib.import_module("cfmd.tl._impute")
    generate_module = importlib.import_module("cfmd.tl._generate")
    seen = {}
    monkeypatch.setattr(generate_module, "generate", lambda mdata, **kwargs: seen.update(generative=kwargs))
    monkeypatch.setattr(impute_module, "_impute", lambda mdata, **kwargs: seen.update(cfmd=kwargs))
    mdata = cfmd.datasets.synthetic_cohort(n_patients=20, n_genes=220)  # neither path runs: what they receive counts
    cfmd.tl.impute(mdata, model="diffusion")
    cfmd.tl.impute(mdata)
    assert seen["generative"]["max_epochs"] == DIFFUSION_MAX_EPOCHS == 2000
    assert seen["cfmd"]["max_epochs"] == CFMD_MAX_EPOCHS == 200
    cfmd.tl.impute(mdata, model="coherent_denoising", max_epochs=7)
    assert seen["generative"]["max_epochs"] == 7
    assert training_defaults()["max_epochs"] == CFMD_MAX_EPOCHS  # `cfmd impute` trains CFMD
