"""Helpers shared by tests: exact comparison of AnnData/MuData objects, perturbation of chosen patients."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse

_MAPPINGS = ("obsm", "varm", "obsp", "varp", "layers")


def _same_value(a, b, where: str) -> None:
    if isinstance(a, pd.DataFrame | pd.Series | pd.Index):
        assert type(a) is type(b), f"{where}: type {type(a).__name__} became {type(b).__name__}"
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns), f"{where}: columns {list(a.columns)} became {list(b.columns)}"
            assert list(a.dtypes) == list(b.dtypes), f"{where}: dtypes changed"
        assert a.equals(b), f"{where}: values changed"
        return
    if sparse.issparse(a) or sparse.issparse(b):
        assert sparse.issparse(a) and sparse.issparse(b), f"{where}: sparsity changed"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: dtype/shape changed"
        assert (a != b).nnz == 0 or np.array_equal(a.toarray(), b.toarray(), equal_nan=True), f"{where}: values changed"
        return
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping), f"{where}: mapping became {type(b).__name__}"
        assert list(a.keys()) == list(b.keys()), f"{where}: keys {list(a.keys())} became {list(b.keys())}"
        for key in a:
            _same_value(a[key], b[key], f"{where}[{key!r}]")
        return
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{where}: dtype/shape {a.dtype}{a.shape} -> {b.dtype}{b.shape}"
        )
        if a.dtype.kind in "fc":
            assert np.array_equal(a, b, equal_nan=True), f"{where}: values changed"
        else:
            assert np.array_equal(a, b), f"{where}: values changed"
        return
    if isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: sequence changed"
        for i, (x, y) in enumerate(zip(a, b)):
            _same_value(x, y, f"{where}[{i}]")
        return
    if isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), f"{where}: NaN became {b!r}"
        return
    assert type(a) is type(b) and a == b, f"{where}: {a!r} became {b!r}"


def _assert_anndata_like_unchanged(before, after, where: str) -> None:
    assert before.shape == after.shape, f"{where}: shape {before.shape} became {after.shape}"
    _same_value(before.obs, after.obs, f"{where}.obs")
    _same_value(before.var, after.var, f"{where}.var")
    _same_value(dict(before.uns), dict(after.uns), f"{where}.uns")
    for name in _MAPPINGS:
        container, other = getattr(before, name, None), getattr(after, name, None)
        if container is None or other is None:
            assert container is None and other is None, f"{where}.{name}: presence changed"
            continue
        _same_value(dict(container.items()), dict(other.items()), f"{where}.{name}")
    if isinstance(before, ad.AnnData):
        if before.X is None or after.X is None:
            assert before.X is None and after.X is None, f"{where}.X: presence changed"
        else:
            _same_value(before.X, after.X, f"{where}.X")


def assert_mudata_unchanged(before, after) -> None:
    """Assert that ``after`` equals ``before`` (a deep copy taken earlier) by value, exactly.

    Compares, for a MuData and each of its modalities (or an AnnData): ``X``, ``layers``, ``obs``, ``var``,
    ``obsm``, ``varm``, ``obsp``, ``varp`` and ``uns`` (recursively; floats bit for bit, NaN equal to NaN), and
    the set and order of modalities.
    """
    assert type(before) is type(after), f"type {type(before).__name__} became {type(after).__name__}"
    if isinstance(before, md.MuData):
        assert list(before.mod) == list(after.mod), f"modalities {list(before.mod)} became {list(after.mod)}"
        _assert_anndata_like_unchanged(before, after, "mdata")
        for name in before.mod:
            _assert_anndata_like_unchanged(before.mod[name], after.mod[name], f"mdata[{name!r}]")
    else:
        _assert_anndata_like_unchanged(before, after, "adata")


def deep_copy(data):
    """A deep copy of an AnnData/MuData for :func:`assert_mudata_unchanged` (without mudata's FutureWarning)."""
    if isinstance(data, md.MuData):
        with md.set_options(pull_on_update=False):
            return data.copy()
    return data.copy()


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
