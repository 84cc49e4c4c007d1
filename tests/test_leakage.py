"""No leakage from held-out patients: changing the test patients' inputs changes nothing the training patients get.

For each model the same fit is run twice with the same seed, once on the cohort and once after the test patients'
inputs were changed (genes shuffled, noise on methylation / CNV / teacher embeddings, mutations flipped, their
latent replaced): the training patients' outputs and every module buffer and parameter must be bitwise identical.
"""

import numpy as np
import pytest
import torch
from _helpers import dense, perturb_patients

import cfmd
from cfmd import LatentLayout
from cfmd.tl._methods import MethodContext, get_method

TRAIN_KWARGS = {"enable_progress_bar": False}
TEACHERS = {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"}

#: Every check trains a model twice (about a second each): run by `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


def _cohort():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata, seed=0)
    return mdata


def _with_latent(mdata):
    """A planted observed latent (NaN for RNA-only patients) with the default layout: no VAE fit needed."""
    layout = LatentLayout.cfmd328()
    observed = mdata.obs_names.isin(mdata["meth"].obs_names)
    latent = np.random.default_rng(0).standard_normal((mdata.n_obs, layout.n_dims)).astype(np.float32)
    latent[~observed] = np.nan
    mdata.obsm["X_structured"] = latent
    layout.write(mdata, "X_structured")
    return mdata


def _labels(mdata, *labels):
    return np.flatnonzero(mdata.obs["cfmd_split"].isin(labels).to_numpy())


def _perturbed(mdata, obsm_keys=(), latent_key=None):
    test = mdata.obs_names[_labels(mdata, "test")]
    assert len(test) > 0
    perturb_patients(mdata, test, obsm_keys=obsm_keys)
    if latent_key is not None:
        latent = np.array(mdata.obsm[latent_key])
        rows = _labels(mdata, "test")
        latent[rows] = latent[rows] * -3.0 + 1.0
        mdata.obsm[latent_key] = latent
    return mdata


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"buffers/parameters depend on the test patients: {differing}"


def test_perturbation_changes_the_test_patients():
    """The perturbation used below really changes the test patients' inputs (and only theirs)."""
    a, b = _cohort(), _perturbed(_cohort(), obsm_keys=["transcriptomic_context"])
    test, others = _labels(a, "test"), _labels(a, "train", "validation", "rna_only")
    assert not np.array_equal(dense(a["rna"].X)[test], dense(b["rna"].X)[test])
    np.testing.assert_array_equal(dense(a["rna"].X)[others], dense(b["rna"].X)[others])
    rows = a["meth"].obs_names.get_indexer(a.obs_names[test])
    assert not np.array_equal(a["meth"].X[rows], b["meth"].X[rows])
    assert not np.array_equal(
        a["rna"].obsm["transcriptomic_context"][test], b["rna"].obsm["transcriptomic_context"][test]
    )


@pytest.mark.slow
def test_structured_vae_does_not_see_test_patients():
    runs = []
    for perturb in (False, True):
        mdata = _cohort()
        if perturb:
            _perturbed(mdata)
        vae = cfmd.tl.fit_latent(mdata, max_epochs=2, seed=0, train_kwargs=TRAIN_KWARGS)
        runs.append((mdata, _state(vae.module)))
    (a, state_a), (b, state_b) = runs
    _assert_same_state(state_a, state_b)
    train = _labels(a, "train", "rna_only")
    for key in ("X_structured", "X_structured_rna_only"):
        assert np.array_equal(a.obsm[key][train], b.obsm[key][train], equal_nan=True), key
    # the test patients' own latents do change: the check above is not vacuous
    test = _labels(a, "test")
    assert not np.array_equal(a.obsm["X_structured_rna_only"][test], b.obsm["X_structured_rna_only"][test])


@pytest.mark.slow
def test_cfmd_does_not_see_test_patients():
    runs = []
    for perturb in (False, True):
        mdata = _with_latent(_cohort())
        if perturb:
            _perturbed(mdata, obsm_keys=["transcriptomic_context"], latent_key="X_structured")
        model = cfmd.tl.impute(
            mdata,
            **TEACHERS,
            fill="all",
            max_epochs=2,
            model_kwargs={"rmd_kwargs": {"d_model": 16, "d_feedforward": 32}, "d_hidden": 32},
            train_kwargs=TRAIN_KWARGS,
        )
        runs.append((mdata, _state(model.module)))
    (a, state_a), (b, state_b) = runs
    _assert_same_state(state_a, state_b)
    train = _labels(a, "train", "validation", "rna_only")
    np.testing.assert_array_equal(a.obsm["X_cfmd"][train], b.obsm["X_cfmd"][train])
    test = _labels(a, "test")
    assert not np.array_equal(a.obsm["X_cfmd"][test], b.obsm["X_cfmd"][test])


@pytest.mark.parametrize("kind", ["pesd", "matched"])
def test_latent_regressor_does_not_see_test_patients(kind):
    import scvi

    from cfmd.models import LatentRegressor

    runs = []
    for perturb in (False, True):
        mdata = _with_latent(_cohort())
        if perturb:
            _perturbed(mdata, latent_key="X_structured")
        scvi.settings.seed = 0  # as cfmd.tl's method runners do, before the model is built
        LatentRegressor.setup_mudata(mdata, latent_key="X_structured")
        slices = None if kind == "pesd" else ["prolif", "pathway", "residual", "meth"]
        model = LatentRegressor(mdata, slices=slices, n_hidden=32, split_key="cfmd_split", seed=0)
        model.train(max_epochs=2, **TRAIN_KWARGS)
        runs.append((mdata, _state(model.module), model.get_imputed_latent(mdata)))
    (a, state_a, pred_a), (b, state_b, pred_b) = runs
    _assert_same_state(state_a, state_b)
    train = _labels(a, "train", "validation", "rna_only")
    np.testing.assert_array_equal(pred_a[train], pred_b[train])
    assert not np.array_equal(pred_a[_labels(a, "test")], pred_b[_labels(a, "test")])


def test_ridge_baseline_does_not_see_test_patients():
    preds = []
    for perturb in (False, True):
        mdata = _with_latent(_cohort())
        if perturb:
            _perturbed(mdata, latent_key="X_structured")
        context = MethodContext(mdata, "X_structured", LatentLayout.cfmd328(), "cfmd_split", seed=0)
        preds.append((mdata, get_method("ridge").fit_predict(context)))
    (a, pred_a), (_, pred_b) = preds
    train = _labels(a, "train", "validation", "rna_only")
    np.testing.assert_array_equal(pred_a[train], pred_b[train])
    assert not np.array_equal(pred_a[_labels(a, "test")], pred_b[_labels(a, "test")])
