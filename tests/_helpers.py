"""Helpers shared by tests (not a test module): tiny trained cohorts, exact comparison of AnnData/MuData objects,
perturbation of chosen patients."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from types import SimpleNamespace

import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse

SMALL_CFMD = {"rmd_kwargs": {"d_model": 16, "d_feedforward": 32}, "d_hidden": 16}
PLANTED = {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"}
QUIET = {"enable_progress_bar": False}


def tiny_cohort(n_patients: int = 120, n_genes: int = 300):
    """A tiny synthetic cohort with a StructuredVAE latent (2 epochs) in ``.obsm['X_structured']``."""
    import cfmd

    mdata = cfmd.datasets.synthetic_cohort(n_patients=n_patients, n_genes=n_genes)
    cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs=QUIET)
    return mdata


def tiny_cfmd(mdata, **kwargs):
    """Train a tiny CFMD on ``mdata`` (2 epochs, small decoder) with ``cfmd.tl.impute``; returns the model."""
    import cfmd

    options = {"max_epochs": 2, "model_kwargs": SMALL_CFMD, "train_kwargs": QUIET, **PLANTED, **kwargs}
    return cfmd.tl.impute(mdata, **options)


@functools.lru_cache(maxsize=1)
def _tiny_imputed():
    import cfmd

    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata)
    cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs=QUIET)
    model = tiny_cfmd(mdata)  # the README's flow: fill="missing" -> observed latents kept under "X_cfmd"
    cfmd.tl.impute(mdata, model=model, key_added="X_cfmd_all", fill="all")  # the same model's predictions
    return mdata, model


def tiny_imputed_cohort():
    """A copy of the README flow at tiny sizes (120 patients x 300 genes, 2 epochs), and its CFMD model.

    ``.obsm["X_cfmd"]``: ``fill="missing"`` (observed latents kept); ``.obsm["X_cfmd_all"]``: ``fill="all"``.
    """
    mdata, model = _tiny_imputed()
    return mdata.copy(), model


def _assert_value_equal(before, after, where: str) -> None:
    if isinstance(before, pd.DataFrame):
        assert isinstance(after, pd.DataFrame), where
        pd.testing.assert_frame_equal(before, after, check_exact=True, obj=where)
    elif isinstance(before, pd.Series):
        pd.testing.assert_series_equal(before, after, check_exact=True, obj=where)
    elif sparse.issparse(before):
        assert sparse.issparse(after) and before.shape == after.shape, where
        assert (before != after).nnz == 0, where
    elif isinstance(before, np.ndarray):
        after = np.asarray(after)
        assert before.dtype == after.dtype and before.shape == after.shape, where
        np.testing.assert_array_equal(before, after, err_msg=where)
    elif isinstance(before, Mapping):
        assert isinstance(after, Mapping) and set(before) == set(after), f"{where}: keys {set(before) ^ set(after)}"
        for key in before:
            _assert_value_equal(before[key], after[key], f"{where}[{key!r}]")
    elif isinstance(before, list | tuple):
        assert len(before) == len(after), where
        for i, (a, b) in enumerate(zip(before, after)):
            _assert_value_equal(a, b, f"{where}[{i}]")
    elif isinstance(before, float) and np.isnan(before):
        assert isinstance(after, float) and np.isnan(after), where
    else:
        assert type(before) is type(after) and before == after, f"{where}: {before!r} != {after!r}"


def _assert_anndata_unchanged(before, after, where: str) -> None:
    assert before.shape == after.shape, f"{where}.shape"
    if getattr(before, "X", None) is not None or getattr(after, "X", None) is not None:
        _assert_value_equal(before.X, after.X, f"{where}.X")
    _assert_value_equal(before.obs, after.obs, f"{where}.obs")
    _assert_value_equal(before.var, after.var, f"{where}.var")
    _assert_value_equal(dict(before.uns), dict(after.uns), f"{where}.uns")
    for name in ("obsm", "varm", "layers", "obsp", "varp"):
        if hasattr(before, name):
            _assert_value_equal(dict(getattr(before, name)), dict(getattr(after, name)), f"{where}.{name}")


def assert_mudata_unchanged(before_copy, after) -> None:
    """Assert that ``after`` equals ``before_copy`` (:func:`snapshot` or ``.copy()`` taken before the call) by value.

    Compares X, layers, obs, var, obsm, varm, obsp, varp and uns of the MuData and of every modality.
    """
    if hasattr(before_copy, "mod"):
        assert list(before_copy.mod) == list(after.mod), "modalities"
        _assert_value_equal(before_copy.obs, after.obs, "mdata.obs")
        _assert_value_equal(before_copy.var, after.var, "mdata.var")
        _assert_value_equal(dict(before_copy.uns), dict(after.uns), "mdata.uns")
        for name in ("obsm", "varm", "obsp", "varp"):
            _assert_value_equal(dict(getattr(before_copy, name)), dict(getattr(after, name)), f"mdata.{name}")
        for mod in before_copy.mod:
            _assert_anndata_unchanged(before_copy.mod[mod], after.mod[mod], f"mdata[{mod!r}]")
    else:
        _assert_anndata_unchanged(before_copy, after, "adata")


def _copied(value):
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.copy(deep=True)
    if sparse.issparse(value):
        return value.copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def _snapshot(obj) -> SimpleNamespace:
    state = SimpleNamespace(
        shape=obj.shape,
        obs=obj.obs.copy(deep=True),
        var=obj.var.copy(deep=True),
        uns=copy.deepcopy(dict(obj.uns)),
        X=_copied(obj.X) if getattr(obj, "X", None) is not None else None,
    )
    for name in ("obsm", "varm", "obsp", "varp", "layers"):
        container = getattr(obj, name, None)
        if container is not None:
            setattr(state, name, {key: _copied(value) for key, value in container.items()})
    return state


def deep_copy(data):
    """A deep copy of an AnnData/MuData (without mudata's FutureWarning) to work on."""
    if isinstance(data, md.MuData):
        with md.set_options(pull_on_update=False):
            return data.copy()
    return data.copy()


def snapshot(data) -> SimpleNamespace:
    """An exact snapshot of an AnnData/MuData (every container copied) for :func:`assert_mudata_unchanged`.

    Not ``MuData.copy()``: that re-runs mudata's ``update()``, which re-pulls modality columns into the global
    ``obs``/``var`` and drops the index name of ``.obsm`` DataFrames, so a copy can differ from its original.
    """
    state = _snapshot(data)
    if isinstance(data, md.MuData):
        state.mod = {name: _snapshot(adata) for name, adata in data.mod.items()}
    return state


def dense(X) -> np.ndarray:
    """A dense copy of a (possibly sparse) matrix."""
    return X.toarray() if sparse.issparse(X) else np.array(X)


def patient_rows(adata, patients) -> np.ndarray:
    """Rows of ``adata`` holding ``patients`` (those it has)."""
    rows = adata.obs_names.get_indexer(pd.Index(patients))
    return np.sort(rows[rows >= 0])


def perturb_patients(mdata, patients, *, seed: int = 1, rna_key: str = "rna", obsm_keys=()) -> None:
    """Change the inputs of ``patients`` in place: shuffle their RNA genes, add noise to every other modality and to
    the given ``mdata[rna_key].obsm`` keys (e.g. teacher embeddings)."""
    rng = np.random.default_rng(seed)
    rna = mdata.mod[rna_key]
    X = rna.X.toarray() if sparse.issparse(rna.X) else np.array(rna.X)
    for row in patient_rows(rna, patients):
        X[row] = X[row, rng.permutation(X.shape[1])]
    rna.X = type(rna.X)(X) if sparse.issparse(rna.X) else X
    for key in obsm_keys:
        values = np.array(rna.obsm[key])
        rows = patient_rows(rna, patients)
        values[rows] = values[rows] + rng.normal(0, 1.0, size=values[rows].shape).astype(values.dtype)
        rna.obsm[key] = values
    for name, adata in mdata.mod.items():
        if name == rna_key:
            continue
        values = np.array(adata.X.toarray() if sparse.issparse(adata.X) else adata.X)
        rows = patient_rows(adata, patients)
        scale = adata.uns.get("scale")
        if scale == "binary":
            values[rows] = 1 - values[rows]
        else:
            values[rows] = values[rows] + rng.normal(0, 0.1, size=values[rows].shape).astype(values.dtype)
            if scale == "beta":
                values[rows] = np.clip(values[rows], 0.001, 0.999)
        adata.X = values
