"""The MuData as cfmd leaves it chains with scanpy (neighbours, UMAP, clustering) and muon (plots)."""

import importlib.util

import matplotlib
import numpy as np
import pytest
from _helpers import tiny_imputed_cohort

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def scanpy_umap_cohort():
    """The tiny imputed cohort after ``sc.pp.neighbors(use_rep="X_cfmd")`` and ``sc.tl.umap``."""
    import scanpy as sc

    mdata, _ = tiny_imputed_cohort()
    sc.pp.neighbors(mdata, use_rep="X_cfmd", n_neighbors=10, random_state=0)
    sc.tl.umap(mdata, random_state=0)
    return mdata


def test_scanpy_neighbors_and_umap_on_the_imputed_latent(scanpy_umap_cohort):
    assert scanpy_umap_cohort.uns["neighbors"]["params"]["use_rep"] == "X_cfmd"
    assert scanpy_umap_cohort.obsp["connectivities"].shape == (scanpy_umap_cohort.n_obs, scanpy_umap_cohort.n_obs)
    assert scanpy_umap_cohort.obsm["X_umap"].shape == (scanpy_umap_cohort.n_obs, 2)
    assert np.isfinite(scanpy_umap_cohort.obsm["X_umap"]).all()


@pytest.mark.skipif(
    importlib.util.find_spec("leidenalg") is None and importlib.util.find_spec("igraph") is None,
    reason="sc.tl.leiden needs igraph/leidenalg, not installed here",
)
def test_scanpy_leiden_on_the_imputed_latent(scanpy_umap_cohort):
    import scanpy as sc

    sc.tl.leiden(scanpy_umap_cohort, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2)
    assert scanpy_umap_cohort.obs["leiden"].notna().all()


def test_muon_draws_the_umap(scanpy_umap_cohort):
    import matplotlib.pyplot as plt
    import mudata
    import muon as mu

    with mudata.set_options(pull_on_update=False):
        mu.pl.umap(scanpy_umap_cohort, color="cancer_type", show=False)
        mu.pl.embedding(scanpy_umap_cohort, basis="X_cfmd", color="cfmd_split", show=False)
    assert len(plt.gcf().axes) >= 1
    plt.close("all")
