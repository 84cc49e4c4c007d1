"""cfmd.tl.unconditional_check / cfmd.pl.unconditional_check (seed 004's privacy table, issue 16)."""

from __future__ import annotations

import contextlib
import io

import matplotlib
import numpy as np
import pytest
from _helpers import assert_mudata_unchanged, snapshot
from test_latent_diffusion import TINY, truth_cohort

import cfmd
from cfmd import InvalidInputError
from cfmd.models import CoherentDenoising, LatentDiffusion

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def two_models():
    """A multi-condition model and an ensemble (no redraws), 2 epochs each: the wiring, not the quality, is under test.

    Each model is registered on its own copy (scvi-tools re-registers a shared object at every switch, ~1 s).
    """
    mdata = truth_cohort(100, seed=0)
    cfmd.tl.split_patients(mdata, seed=0)
    other = mdata.copy()
    LatentDiffusion.setup_mudata(mdata)
    ld = LatentDiffusion(mdata, target="meth", conditions=["rna", "pathway"], seed=0, **TINY)
    ld.train(max_epochs=2, validate_every=2)
    CoherentDenoising.setup_mudata(other)
    cd = CoherentDenoising(other, target="meth", conditions=["rna", "pathway"], seed=0, max_redraws=0, **TINY)
    cd.train(max_epochs=2, validate_every=2)
    return mdata, ld, cd


@pytest.mark.slow  # dcor compiles its numba kernels on import (~10 s)
def test_energy_distance_is_dcor_and_prdc_is_prdc():
    import dcor
    import prdc

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(0.3, 1.2, size=(45, 4))
    found = cfmd.tl.unconditional_metrics(real, fake, nearest_k=5)
    assert abs(found["energy_distance"] - dcor.energy_distance(real, fake)) < 1e-8
    with contextlib.redirect_stdout(io.StringIO()):
        direct = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert found[name] == pytest.approx(float(direct[name]), abs=1e-12)
    p, r = found["precision"], found["recall"]
    assert found["f1"] == pytest.approx(2 * p * r / (p + r))
    same = cfmd.tl.unconditional_metrics(real, real, nearest_k=5)
    assert same["energy_distance"] == pytest.approx(0.0, abs=1e-12) and same["coverage"] == 1.0
    far = cfmd.tl.unconditional_metrics(real, real + 100.0, nearest_k=5)
    assert far["f1"] == 0.0 and far["coverage"] == 0.0


def test_unconditional_metrics_bad_input_named_before_work():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(45, 4))
    with pytest.raises(InvalidInputError, match="more than `nearest_k`"):
        cfmd.tl.unconditional_metrics(real[:5], fake, nearest_k=5)
    with pytest.raises(InvalidInputError, match="same width"):
        cfmd.tl.unconditional_metrics(real, fake[:, :3])
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        cfmd.tl.unconditional_metrics(real, np.full_like(fake, np.nan))


def test_unconditional_samples_ignore_every_patient_input(two_models):
    mdata, ld, cd = two_models
    for model in (ld, cd):  # every condition masked: which patients' rows are passed does not matter
        a = model.generate(indices=np.arange(10), n_samples=1, conditions=[], seed=3)
        b = model.generate(indices=np.arange(30, 40), n_samples=1, conditions=[], seed=3)
        np.testing.assert_array_equal(a, b)
        conditional = model.generate(indices=np.arange(10), n_samples=1, seed=3)
        assert not np.array_equal(a, conditional)


def test_table_recomputes_from_the_models_own_draws(two_models):
    mdata, ld, cd = two_models
    before = snapshot(mdata)
    out = cfmd.tl.unconditional_check(mdata, {"multi": ld, "ensemble": cd}, n_runs=2, embeddings=("pca",), copy=True)
    assert_mudata_unchanged(before, mdata)
    result = out.uns["cfmd_unconditional"]
    runs, summary = result["runs"], result["summary"]
    assert list(summary["model"]) == ["held-out patients", "multi", "ensemble"]
    train_rows = np.sort(mdata.obs_names.get_indexer(ld.split_["train"]))
    train = np.asarray(mdata.obsm["X_structured"])[train_rows][:, ld.module.target_index].astype(float)
    mean, sd = train.mean(0), train.std(0, ddof=1)
    generated = ld.generate(indices=train_rows, n_samples=1, conditions=[], seed=1)[0]
    expected = cfmd.tl.unconditional_metrics((train - mean) / sd, (generated - mean) / sd)
    row = runs[(runs["model"] == "multi") & (runs["run"] == 1)].iloc[0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12)
    multi = summary.set_index("model").loc["multi"]
    assert multi["n_generated"] == multi["n_train"] == train.shape[0]
    assert multi["energy_distance_mean"] == pytest.approx(runs.loc[runs["model"] == "multi", "energy_distance"].mean())
    picture = result["embedding"]
    assert set(picture["basis"]) == {"pca"} and set(picture["source"]) == {"training", "generated"}
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform((train - mean) / sd)
    mine = picture[(picture["model"] == "multi") & (picture["source"] == "training")][["x", "y"]].to_numpy()
    np.testing.assert_allclose(mine, xy, atol=1e-8)


def test_bad_input_named_before_work(two_models, tmp_path):
    mdata, ld, _ = two_models
    fresh = truth_cohort(60, seed=1)
    LatentDiffusion.setup_mudata(fresh)
    untrained = LatentDiffusion(fresh, target="meth", conditions=["rna"], **TINY)
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match="`models`"):
        cfmd.tl.unconditional_check(mdata, {})
    with pytest.raises(InvalidInputError, match="`models\\['x'\\]`"):
        cfmd.tl.unconditional_check(mdata, {"x": "not_a_model"})
    with pytest.raises(InvalidInputError, match="`embeddings`"):
        cfmd.tl.unconditional_check(mdata, {"m": ld}, embeddings=("tsne",))
    with pytest.raises(InvalidInputError, match="n_runs"):
        cfmd.tl.unconditional_check(mdata, {"m": ld}, n_runs=0)
    with pytest.raises(InvalidInputError, match="not trained"):
        cfmd.tl.unconditional_check(mdata, {"m": untrained})
    assert_mudata_unchanged(before, mdata)


def test_plot_draws_training_and_generated_per_panel(two_models, tmp_path):
    mdata, ld, cd = two_models
    out = cfmd.tl.unconditional_check(mdata, {"multi": ld, "ensemble": cd}, n_runs=1, embeddings=("pca",), copy=True)
    fig = cfmd.pl.unconditional_check(out, return_fig=True, save=tmp_path / "u.png")
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("multi\nenergy distance")
    picture = out.uns["cfmd_unconditional"]["embedding"]
    n = (picture["model"] == "multi").sum()
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == n
    with pytest.raises(InvalidInputError, match="`models`"):
        cfmd.pl.unconditional_check(out, models=["nope"])
    matplotlib.pyplot.close("all")
