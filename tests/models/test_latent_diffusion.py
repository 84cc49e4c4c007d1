"""LatentDiffusion / CoherentDenoising (seed 004): network, training protocol, generation, save/load, tl wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import assert_mudata_unchanged, snapshot

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd.datasets._synthetic import TCGA_CANCER_TYPES
from cfmd.models import LatentDiffusion
from cfmd.models.nn import ConditionalNoiseMLP, StackedNoiseTrunks

TINY = {"n_hidden": 32, "n_layers": 2, "time_embedding_dim": 16, "condition_embedding_dim": 8,
        "num_train_timesteps": 20}  # fmt: skip
TRAIN = {"max_epochs": 10, "validate_every": 5}


def truth_cohort(n_patients: int = 160, *, seed: int = 0, meth_key: str = "truth_meth_state", **kwargs):
    """Synthetic cohort whose latent is built from planted truth (no VAE: fast): pathway(4), meth(6), cnv(4)."""
    mdata = cfmd.datasets.synthetic_cohort(n_patients=n_patients, n_genes=250, seed=seed, **kwargs)
    has = mdata.obs_names.isin(mdata["meth"].obs_names)
    latent = np.concatenate(
        [mdata.obsm["truth_pathway"][:, :4], mdata.obsm[meth_key], mdata.obsm["truth_cnv"][:, :4]], axis=1
    ).astype(np.float32)
    latent[~has] = np.nan
    mdata.obsm["X_structured"] = latent
    LatentLayout.from_sizes({"pathway": (4, "geneformer"), "meth": (6, "zero"), "cnv": (4, "zero")}).write(
        mdata, "X_structured"
    )
    return mdata


@pytest.fixture(scope="module")
def trained():
    mdata = truth_cohort()
    LatentDiffusion.setup_mudata(mdata, geneformer_key="transcriptomic_context")
    model = LatentDiffusion(mdata, target="meth", conditions=["rna", "cancer_type", "pathway"], seed=1, **TINY)
    model.train(**TRAIN)
    return mdata, model


def test_masked_condition_contributes_exact_zero():
    torch.manual_seed(0)
    net = ConditionalNoiseMLP(5, {"a": 3, "b": 4}, n_hidden=8, n_layers=2, time_embedding_dim=6).eval()
    x, t = torch.randn(7, 5), torch.randint(0, 10, (7,))
    a, b = torch.randn(7, 3), torch.randn(7, 4)
    masked = net(x, t, {"a": a, "b": b}, {"a": torch.ones(7), "b": torch.zeros(7)})
    absent = net(x, t, {"a": a})
    torch.testing.assert_close(masked, absent, rtol=0, atol=0)
    assert not torch.allclose(masked, net(x, t, {"a": a, "b": b}))


def test_stacked_members_equal_their_own_forward():
    torch.manual_seed(0)
    nets = [ConditionalNoiseMLP(5, {f"c{i}": 3 + i}, n_hidden=8, n_layers=3, time_embedding_dim=6) for i in range(3)]
    for net in nets:  # non-trivial BatchNorm statistics, then evaluation mode
        net.train()
        net(
            torch.randn(32, 5),
            torch.randint(0, 10, (32,)),
            {net.condition_names[0]: torch.randn(32, 3 + nets.index(net))},
        )
        net.eval()
    x, t = torch.randn(6, 5), torch.full((6,), 4)
    conds = [torch.randn(6, 3 + i) for i in range(3)]
    c_emb = torch.stack([n.embed_conditions({n.condition_names[0]: c}) for n, c in zip(nets, conds)])
    stacked = StackedNoiseTrunks(nets)(x, t[:1], c_emb)
    for i, (net, c) in enumerate(zip(nets, conds)):
        torch.testing.assert_close(stacked[i], net(x, t, {net.condition_names[0]: c}), rtol=1e-5, atol=1e-5)
    session = StackedNoiseTrunks(nets).session(c_emb, torch.tensor([9, 4]))  # biases of the steps precomputed
    for step in (9, 4, 7, 9):  # 7: not precomputed (computed on first use)
        eps = session(x, torch.tensor([step]))
        for i, (net, c) in enumerate(zip(nets, conds)):
            expected = net(x, torch.full((6,), step), {net.condition_names[0]: c})
            torch.testing.assert_close(eps[i], expected, rtol=1e-5, atol=1e-5)


def test_split_normalisation_and_history(trained):
    mdata, model = trained
    split = model.split_
    assert not set(split["test"]) & (set(split["train"]) | set(split["validation"]))
    train_rows = mdata.obs_names.get_indexer(split["train"])
    target = mdata.obsm["X_structured"][train_rows][:, model.module.target_index]
    np.testing.assert_allclose(model.module.target_stats.mean.numpy(), target.mean(0), rtol=1e-5, atol=1e-5)
    assert model.history_["validation_mse"] and np.isfinite(model.history_["best_validation_mse"])
    assert model.module.scheduler_config["clip_sample"] is False


def test_generation_reproducible_and_save_load_round_trip(trained, tmp_path):
    mdata, model = trained
    first = model.generate(n_samples=3, seed=5)
    assert first.shape == (3, mdata.n_obs, 6) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, model.generate(n_samples=3, seed=5))
    assert not np.array_equal(first, model.generate(n_samples=3, seed=6))
    model.save(tmp_path / "m")
    fresh = truth_cohort()
    del fresh.obsm["X_structured"]  # new patients: RNA only (slice conditions then masked)
    loaded = LatentDiffusion.load(tmp_path / "m", adata=fresh)
    for key, value in model.module.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[key], value, rtol=0, atol=0)
    assert all(np.array_equal(loaded.split_[k], model.split_[k]) for k in ("train", "validation", "test"))
    rna_only = loaded.generate(n_samples=2, seed=5)
    assert rna_only.shape == (2, fresh.n_obs, 6) and np.isfinite(rna_only).all()
    same = model.generate(fresh, n_samples=2, seed=5)
    np.testing.assert_allclose(rna_only, same, rtol=1e-6, atol=1e-6)


def test_bad_inputs_named_before_work(trained):
    mdata, model = trained
    with pytest.raises(InvalidInputError, match="Unknown condition 'nope'"):
        LatentDiffusion(mdata, target="meth", conditions=["nope"], **TINY)
    with pytest.raises(InvalidInputError, match="target slice"):
        LatentDiffusion(mdata, target="meth", conditions=["meth"], **TINY)
    with pytest.raises(InvalidInputError, match="`target` 'rppa'"):
        LatentDiffusion(mdata, target="rppa", **TINY)
    with pytest.raises(InvalidInputError, match="`clip_denoised` must be True or False"):
        LatentDiffusion(mdata, target="meth", clip_denoised="yes", **TINY)
    with pytest.raises(InvalidInputError, match="n_samples"):
        model.generate(n_samples=0)
    with pytest.raises(InvalidInputError, match="not conditions of this model"):
        model.generate(conditions=["geneformer"])
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match="`fill`"):
        cfmd.tl.generate(mdata, model=model, fill="some")
    with pytest.raises(InvalidInputError, match="`model` must be one of"):
        cfmd.tl.generate(mdata, model="difusion")
    assert_mudata_unchanged(before, mdata)


def test_tl_generate_fields_and_impute_dispatch(trained):
    mdata, model = trained
    mdata = mdata.copy()
    cfmd.tl.generate(mdata, model=model, key_added="X_gen", fill="all", n_samples=4, return_samples=True)
    assert mdata.obsm["X_gen"].shape == (mdata.n_obs, 14)
    assert (mdata.obsm["X_gen"][:, 4:10] != 0).any() and (mdata.obsm["X_gen"][:, :4] == 0).all()
    assert list(mdata.obsm["X_gen_variance"].columns) == ["meth"]
    assert (mdata.obs["X_gen_uncertainty"] > 0).all()
    assert mdata.obsm["X_gen_samples"].shape == (mdata.n_obs, 4, 6)
    np.testing.assert_allclose(mdata.obsm["X_gen_samples"].mean(1), mdata.obsm["X_gen"][:, 4:10], atol=1e-5)
    record = mdata.uns["X_gen"]
    assert record["model"] == "LatentDiffusion" and set(record["split"]) == {"train", "validation", "test"}
    assert record["provenance"] == {"pathway": "zero-masked", "meth": "imputed", "cnv": "zero-masked"}
    out = mdata.copy()
    cfmd.tl.impute(out, model="diffusion", key_added="X_imp", max_epochs=5, n_samples=2,
                   model_kwargs=TINY, generate_kwargs={"target": "cnv", "conditions": ["rna"]})  # fmt: skip
    observed = np.isfinite(out.obsm["X_structured"]).all(1)
    np.testing.assert_array_equal(out.obsm["X_imp"][observed], out.obsm["X_structured"][observed])
    assert out.uns["X_imp"]["target_slices"] == ["cnv"] and "X_imp_uncertainty" in out.obs


def test_generate_from_saved_model_on_new_patients(trained, tmp_path):
    mdata, model = trained
    model.save(tmp_path / "saved")
    fresh = truth_cohort(60)  # same genes (seed 0), other patients
    del fresh.obsm["X_structured"]
    cfmd.tl.generate(fresh, model=str(tmp_path / "saved"), key_added="X_new", n_samples=2)
    assert fresh.obsm["X_new"].shape == (60, 14) and fresh.uns["X_new"]["model_path"] == str(tmp_path / "saved")
    assert np.isfinite(fresh.obs["X_new_uncertainty"]).all()


def test_methods_registered_and_run():
    from cfmd.tl import METHODS, MethodContext

    assert {"diffusion", "coherent_denoising"} <= set(METHODS)
    mdata = truth_cohort(120)
    cfmd.tl.split_patients(mdata)
    layout = LatentLayout.from_mudata(mdata, "X_structured")
    context = MethodContext(mdata=mdata, latent_key="X_structured", layout=layout, split_key="cfmd_split",
                            geneformer_key=None, max_epochs=3, state={"diffusion_kwargs": TINY})  # fmt: skip
    out = METHODS["diffusion"].fit_predict(context)
    assert out.shape == (mdata.n_obs, 14) and np.isfinite(out).all()
    assert context.state["diffusion_uncertainty"].shape == (mdata.n_obs,)


@pytest.mark.slow  # 150 epochs: ~2 s alone, >10 s on a loaded machine
def test_unpredictable_subgroup_gets_higher_uncertainty():
    # planted: last cancer type's methylation state + N(0, 2^2) noise independent of RNA. Measured ratio of mean
    # uncertainty (subgroup / rest), 200 patients, T = 20, 150 epochs: 1.70 / 1.52 / 1.65 for seeds 0 / 1 / 2.
    mdata = truth_cohort(200, seed=1, meth_key="truth_meth_observed", unpredictable_noise=2.0)
    LatentDiffusion.setup_mudata(mdata)
    model = LatentDiffusion(mdata, target="meth", conditions=["rna", "cancer_type"], seed=1, **TINY)
    model.train(max_epochs=150, validate_every=10, batch_size=32, early_stopping_patience=100)
    cfmd.tl.generate(mdata, model=model, key_added="g", fill="all", n_samples=8)
    uncertainty, flagged = mdata.obs["g_uncertainty"].to_numpy(), mdata.obs["truth_unpredictable"].to_numpy()
    assert uncertainty[flagged].mean() > 1.2 * uncertainty[~flagged].mean()


def test_decode_writes_an_imputed_modality(tmp_path):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300)
    vae = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    LatentDiffusion.setup_mudata(mdata)
    model = LatentDiffusion(mdata, target="meth", conditions=["rna"], seed=0, **TINY)
    model.train(max_epochs=3, validate_every=3)
    cfmd.tl.generate(mdata, model=model, key_added="X_gen", n_samples=2)
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match="`modality`"):
        cfmd.tl.decode(mdata, latent_key="X_gen", vae=vae, modality="rppa")
    assert_mudata_unchanged(before, mdata)
    missing = ~mdata.obs_names.isin(mdata["meth"].obs_names)
    adata = cfmd.tl.decode(mdata, latent_key="X_gen", vae=vae, modality="meth")
    assert "meth_imputed" in mdata.mod and adata.n_obs == int(missing.sum())
    assert list(adata.var["feature"]) == list(mdata["meth"].var_names) and mdata.var_names.is_unique
    assert ((adata.X > 0) & (adata.X < 1)).all()  # beta means
    vae.save(tmp_path / "vae")
    again = cfmd.tl.decode(mdata, latent_key="X_gen", vae=tmp_path / "vae", modality="meth", key_added="m2")
    np.testing.assert_allclose(again.X, adata.X, rtol=1e-5, atol=1e-6)


def test_planted_subgroup_leaves_default_outputs_unchanged():
    plain = cfmd.datasets.synthetic_cohort(n_patients=80, n_genes=250, seed=4, protein_sequences=False)
    planted = cfmd.datasets.synthetic_cohort(
        n_patients=80, n_genes=250, seed=4, protein_sequences=False, unpredictable_noise=2.0
    )
    assert "truth_unpredictable" not in plain.obs and "truth_meth_observed" not in plain.obsm
    assert (plain["rna"].X != planted["rna"].X).nnz == 0
    np.testing.assert_array_equal(plain["cnv"].X, planted["cnv"].X)
    flagged = planted.obs["truth_unpredictable"].to_numpy()
    last = sorted(set(planted.obs["cancer_type"]), key=list(TCGA_CANCER_TYPES).index)[-1]
    np.testing.assert_array_equal(flagged, (planted.obs["cancer_type"] == last).to_numpy())
    changed = ~np.isclose(plain["meth"].X, planted["meth"].X).all(1)
    in_meth = planted.obs.loc[planted["meth"].obs_names, "truth_unpredictable"].to_numpy()
    np.testing.assert_array_equal(changed, in_meth)
    with pytest.raises(InvalidInputError, match="unpredictable_noise"):
        cfmd.datasets.synthetic_cohort(n_patients=40, n_genes=250, unpredictable_noise=-1.0)


def esm_cohort(n_patients: int = 80, seed: int = 0):
    """Truth cohort with per-gene 'ESM-2' embeddings (the planted structural features; a few genes without one)."""
    mdata = truth_cohort(n_patients, seed=seed, protein_sequences=False)
    table = np.array(mdata["rna"].varm["structural_features"], dtype=np.float32)
    table[::7] = np.nan  # genes without an embedding are left out of the fingerprint
    mdata["rna"].varm["X_esm2"] = table
    return mdata


def test_esm_condition_is_the_structural_fingerprint_and_checked_first():
    mdata = esm_cohort()
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match="no gene embedding 'X_nope'"):
        LatentDiffusion.setup_mudata(mdata, gene_embedding_key="X_nope")
    assert_mudata_unchanged(before, mdata)
    LatentDiffusion.setup_mudata(mdata)
    with pytest.raises(InvalidInputError, match="Condition 'esm' needs `gene_embedding_key`"):
        LatentDiffusion(mdata, target="meth", conditions=["esm"], **TINY)
    LatentDiffusion.setup_mudata(mdata, gene_embedding_key="X_esm2")
    with pytest.raises(InvalidInputError, match="fingerprint_tau"):
        LatentDiffusion(mdata, target="meth", conditions=["esm"], fingerprint_tau=0.0, **TINY)
    model = LatentDiffusion(mdata, target="meth", conditions=["esm", "rna"], fingerprint_tau=2.0, **TINY)
    assert model.module.conditions[0] == {"name": "esm", "kind": "esm", "dim": 32}
    assert "esm" in [c["name"] for c in LatentDiffusion(mdata, target="meth", **TINY).module.conditions]  # default
    # the condition is cfmd.pp.structural_fingerprint's fingerprint, computed from the RNA counts
    rna = mdata["rna"].copy()
    cfmd.pp.structural_fingerprint(rna, embedding_key="X_esm2", tau=2.0)
    raw = model._raw_inputs(mdata)["conditions"]["esm"].numpy()
    np.testing.assert_allclose(raw, rna.obsm["X_fingerprint"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # trains two tiny models: ~1.5 s alone, ~6 s on a loaded machine
def test_esm_condition_trains_generates_and_survives_save_load(tmp_path):
    from cfmd.models import CoherentDenoising

    mdata = esm_cohort()
    CoherentDenoising.setup_mudata(mdata, gene_embedding_key="X_esm2")
    model = CoherentDenoising(mdata, target="meth", conditions=["esm", "cancer_type"], fingerprint_tau=2.0, **TINY)
    model.train(max_epochs=4, validate_every=2)
    model.save(tmp_path / "esm")
    fresh = esm_cohort(40, seed=0)  # same genes, RNA only and no embedding table: the model stores it
    del fresh.obsm["X_structured"], fresh["rna"].varm["X_esm2"]
    loaded = CoherentDenoising.load(tmp_path / "esm", adata=fresh)
    np.testing.assert_allclose(
        loaded.generate(n_samples=2, seed=3), model.generate(fresh, n_samples=2, seed=3), rtol=1e-6, atol=1e-6
    )

    out = mdata.copy()
    cfmd.tl.generate(out, model="diffusion", conditions=["esm"], gene_embedding_key="X_esm2", key_added="X_gen",
                     max_epochs=2, n_samples=2, model_kwargs=TINY, train_kwargs={"validate_every": 2})  # fmt: skip
    assert out.uns["X_gen"]["conditions"] == ["esm"] and np.isfinite(out.obs["X_gen_uncertainty"]).all()
    rna_only = ~np.isfinite(out.obsm["X_structured"]).all(1)
    assert rna_only.any() and np.isfinite(out.obsm["X_gen"][rna_only, 4:10]).all()
    assert (out.obsm["X_gen"][rna_only, 4:10] != 0).all(1).all()  # generated from the fingerprint


def test_gene_constant_in_training_is_centred_not_amplified():
    from cfmd.models import LatentDiffusionModule

    layout = LatentLayout.from_sizes({"a": (2, "zero"), "b": (2, "zero")})
    module = LatentDiffusionModule(layout=layout, target_slices=["a"], n_genes=3, rna_scale="counts",
                                   conditions=[{"name": "rna", "kind": "rna", "dim": 3}], n_hidden=8, n_layers=1,
                                   time_embedding_dim=4, condition_embedding_dim=2, num_train_timesteps=5)  # fmt: skip
    x = torch.tensor([[5.0, 0.0, 3.0], [7.0, 0.0, 1.0], [6.0, 0.0, 2.0]])  # gene 1: never expressed in training
    ones = torch.ones(3)
    module.fit_normalisation({"x": x, "target": torch.randn(3, 2), "conditions": {"rna": x}, "masks": {"rna": ones}})
    new = torch.tensor([[5.0, 4.0, 3.0]])  # a new patient expressing it
    value = module.standardise({"conditions": {"rna": new}, "masks": {"rna": torch.ones(1)}})["conditions"]["rna"]
    expected = torch.log1p(new[0, 1] / new.sum() * 1e4)  # centred at the training mean 0, SD 1: not divided by ~0
    torch.testing.assert_close(value[0, 1], expected)


@pytest.mark.parametrize("variance_type", ["fixed_large", "fixed_small"])
def test_clipped_step_is_the_schedulers_clip_sample(variance_type):
    """With bounds, the fused step is diffusers' own step with ``clip_sample`` (here a scalar range, as diffusers has)."""
    from cfmd._utils import import_diffusers
    from cfmd.models._ddpm import FusedDDPMStep

    config = {"num_train_timesteps": 20, "beta_start": 0.005, "beta_end": 0.4, "variance_type": variance_type}
    scheduler = import_diffusers().DDPMScheduler(**config, clip_sample=False)
    reference = import_diffusers().DDPMScheduler(**config, clip_sample=True, clip_sample_range=1.5)
    step = FusedDDPMStep(scheduler, 20, (torch.full((6,), -1.5), torch.full((6,), 1.5)))
    reference.set_timesteps(20)
    x = torch.randn((12, 6), generator=torch.Generator().manual_seed(0))
    expected = x.clone()
    fused_noise, reference_noise = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    bad_predictions = torch.Generator().manual_seed(2)
    for index, t in enumerate(step.timesteps):
        eps = 3.0 * torch.randn((12, 6), generator=bad_predictions)  # a noise network that is far off
        expected = reference.step(eps, t, expected, generator=reference_noise).prev_sample
        step(index, eps, x, fused_noise)
        torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)
    assert x.abs().max() <= 1.5 + 1e-6  # the last step returns the clipped x_0 estimate itself


def test_generations_stay_in_the_training_range_unless_unclipped(trained):
    mdata, model = trained
    low, high = model.module.denoised_bounds()
    split = model.split_
    train_rows = mdata.obs_names.get_indexer(split["train"])
    standardised = (
        torch.as_tensor(mdata.obsm["X_structured"][train_rows][:, model.module.target_index])
        - model.module.target_stats.mean
    ) / model.module.target_stats.std
    torch.testing.assert_close(low, standardised.min(0).values)
    torch.testing.assert_close(high, standardised.max(0).values)
    generated = torch.as_tensor(model.generate(n_samples=3, seed=0))
    in_units = (generated - model.module.target_stats.mean) / model.module.target_stats.std
    assert (in_units >= low - 1e-4).all() and (in_units <= high + 1e-4).all()
    model.module.clip_denoised = False
    try:
        assert model.module.denoised_bounds() is None
        unclipped = model.generate(n_samples=3, seed=0)
    finally:
        model.module.clip_denoised = True
    assert not np.allclose(unclipped, generated.numpy())


@pytest.mark.slow  # trains twice, saves and loads: ~1.2 s alone
def test_rna_components_are_fitted_on_the_training_patients_only(tmp_path):
    from sklearn.decomposition import PCA

    from cfmd._expression import log_normalise

    mdata = truth_cohort(120)
    LatentDiffusion.setup_mudata(mdata)
    model = LatentDiffusion(mdata, target="meth", conditions=["rna"], rna_components=5, seed=1, **TINY)
    assert model.module.conditions[0]["dim"] == 5 and model.module.rna_pca_components.shape == (5, 250)
    model.train(max_epochs=2, validate_every=1)
    module, train_rows = model.module, model.split_indices()["train"]
    standardised = (
        log_normalise(model._prepared(mdata, train_rows)["x"], "counts") - module.gene_mean
    ) / module.gene_std
    pca = PCA(n_components=5, svd_solver="full").fit(standardised.double().numpy())
    np.testing.assert_allclose(module.rna_pca_components.numpy(), pca.components_, rtol=1e-4, atol=1e-5)

    # perturbing the test patients' RNA leaves every fitted statistic unchanged
    perturbed = mdata.copy()
    rna = perturbed["rna"]
    test = rna.obs_names.isin(model.split_["test"])
    assert test.any()
    counts = rna.X.toarray() if hasattr(rna.X, "toarray") else np.array(rna.X)
    counts[test] = counts[test][:, ::-1] * 3
    rna.X = counts
    LatentDiffusion.setup_mudata(perturbed)
    again = LatentDiffusion(perturbed, target="meth", conditions=["rna"], rna_components=5, seed=1, **TINY)
    again.train(max_epochs=2, validate_every=1)
    for key in ("gene_mean", "gene_std", "rna_pca_mean", "rna_pca_components"):
        torch.testing.assert_close(again.module.state_dict()[key], module.state_dict()[key], rtol=0, atol=0)

    model.save(tmp_path / "m")
    loaded = LatentDiffusion.load(tmp_path / "m", adata=truth_cohort(120))
    assert loaded.module.rna_components == 5
    np.testing.assert_array_equal(loaded.generate(n_samples=2, seed=3), model.generate(n_samples=2, seed=3))


def test_rna_components_checked_before_work():
    mdata = truth_cohort(60)
    LatentDiffusion.setup_mudata(mdata)
    for bad in (0, 2.5, "32"):
        with pytest.raises(InvalidInputError, match="rna_components"):
            LatentDiffusion(mdata, target="meth", conditions=["rna"], rna_components=bad, **TINY)
    model = LatentDiffusion(mdata, target="meth", conditions=["rna"], rna_components=200, **TINY)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(InvalidInputError, match="`rna_components=200` needs more than 200 training patients"):
        model.train(**TRAIN)
    for key, value in model.module.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
