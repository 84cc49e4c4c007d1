"""Shared test helpers: a tiny trained CFMD cohort (trained once per session) and a MuData equality check."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

TINY_MODEL = {"rmd_kwargs": {"d_model": 16, "d_feedforward": 32}}
PLANTED_TEACHERS = {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"}


@functools.lru_cache(maxsize=1)
def _tiny_imputed():
    import cfmd

    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata)
    cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    model = cfmd.tl.impute(
        mdata, **PLANTED_TEACHERS, max_epochs=2, model_kwargs=TINY_MODEL, train_kwargs={"enable_progress_bar": False}
    )  # the README's flow: fill="missing" -> observed latents kept under "X_cfmd"
    cfmd.tl.impute(mdata, model=model, key_added="X_cfmd_all", fill="all")  # the same model's predictions
    return mdata, model


def tiny_imputed_cohort():
    """A copy of the README flow at tiny sizes (120 patients x 300 genes, 2 epochs), and its CFMD model.

    ``.obsm["X_cfmd"]``: ``fill="missing"`` (observed latents kept); ``.obsm["X_cfmd_all"]``: ``fill="all"``.
    """
    mdata, model = _tiny_imputed()
    return mdata.copy(), model


def _assert_equal(a, b, where: str) -> None:
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), where
        pd.testing.assert_frame_equal(a, b, obj=where)
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_equal(a[key], b[key], f"{where}[{key!r}]")
    elif sp.issparse(a):
        assert sp.issparse(b) and a.shape == b.shape and (a != b).nnz == 0, where
    elif isinstance(a, np.ndarray | list | tuple):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_mudata_unchanged(before, after) -> None:
    """Assert that ``after`` equals ``before`` by value (X, layers, obs, var, obsm, varm, uns), modalities included.

    Parameters
    ----------
    before
        A ``.copy()`` of the MuData (or AnnData) taken before the call.
    after
        The object the call was given.
    """
    pairs = [("mdata", before, after)]
    if hasattr(before, "mod"):
        assert list(before.mod) == list(after.mod), "modalities differ"
        pairs += [(f"mdata[{name!r}]", before.mod[name], after.mod[name]) for name in before.mod]
    for where, a, b in pairs:
        pd.testing.assert_frame_equal(a.obs, b.obs, obj=f"{where}.obs")
        pd.testing.assert_frame_equal(a.var, b.var, obj=f"{where}.var")
        if getattr(a, "X", None) is not None or getattr(b, "X", None) is not None:
            _assert_equal(a.X, b.X, f"{where}.X")
        for name in ("layers", "obsm", "varm"):
            container_a, container_b = getattr(a, name, None), getattr(b, name, None)
            if container_a is None and container_b is None:
                continue
            _assert_equal(dict(container_a), dict(container_b), f"{where}.{name}")
        _assert_equal(dict(a.uns), dict(b.uns), f"{where}.uns")
