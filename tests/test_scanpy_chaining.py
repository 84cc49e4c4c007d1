"""The MuData as cfmd leaves it chains with scanpy (neighbours, UMAP, clustering) and muon (plots)."""

import importlib.util

import matplotlib
import numpy as np
import pytest
from _helpers import tiny_imputed_cohort

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def chained():
    """The tiny imputed cohort after ``sc.pp.neighbors(use_rep="X_cfmd")`` and ``sc.tl.umap``."""
    import scanpy as sc

    mdata, _ = tiny_imputed_cohort()
    sc.pp.neighbors(mdata, use_rep="X_cfmd", n_neighbors=10, random_state=0)
    sc.tl.umap(mdata, random_state=0)
    return mdata


def test_scanpy_neighbors_and_umap_on_the_imputed_latent(chained):
    assert chained.uns["neighbors"]["params"]["use_rep"] == "X_cfmd"
    assert chained.obsp["connectivities"].shape == (chained.n_obs, chained.n_obs)
    assert chained.obsm["X_umap"].shape == (chained.n_obs, 2)
    assert np.isfinite(chained.obsm["X_umap"]).all()


@pytest.mark.skipif(
    importlib.util.find_spec("leidenalg") is None and importlib.util.find_spec("igraph") is None,
    reason="sc.tl.leiden needs igraph/leidenalg, not installed here",
)
def test_scanpy_leiden_on_the_imputed_latent(chained):
    import scanpy as sc

    sc.tl.leiden(chained, resolution=0.5, random_state=0, flavor="igraph", n_iterations=2)
    assert chained.obs["leiden"].notna().all()


def test_muon_draws_the_umap(chained):
    import matplotlib.pyplot as plt
    import mudata
    import muon as mu

    with mudata.set_options(pull_on_update=False):
        mu.pl.umap(chained, color="cancer_type", show=False)
        mu.pl.embedding(chained, basis="X_cfmd", color="cfmd_split", show=False)
    assert len(plt.gcf().axes) >= 1
    plt.close("all")
