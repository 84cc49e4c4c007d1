"""cfmd.pp.structural_fingerprint against the paper's formula computed by hand."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import cfmd
from cfmd import InvalidInputError


def by_hand(counts: np.ndarray, embeddings: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """alpha = softmax(log2(x + 1) / tau) (max subtracted), s = alpha @ e, H = exp(entropy), in float64."""
    logits = np.log2(counts.astype(np.float64) + 1.0) / tau
    logits -= logits.max(axis=1, keepdims=True)
    alpha = np.exp(logits)
    alpha /= alpha.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(alpha > 0, alpha * np.log(alpha), 0.0).sum(axis=1)
    return alpha @ embeddings, np.exp(entropy)


def make_adata(counts: np.ndarray, embeddings: np.ndarray) -> ad.AnnData:
    adata = ad.AnnData(X=counts, var=pd.DataFrame(index=[f"g{i}" for i in range(counts.shape[1])]))
    adata.varm["X_esm2"] = embeddings
    return adata


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    counts = rng.negative_binomial(2, 0.01, size=(40, 25)).astype(np.float32)
    embeddings = rng.standard_normal((25, 8)).astype(np.float32)
    return counts, embeddings


@pytest.mark.parametrize("tau", [0.3, 1.0, 4.0])
def test_equals_formula(data, tau):
    counts, embeddings = data
    adata = make_adata(counts, embeddings)
    cfmd.pp.structural_fingerprint(adata, tau=tau)
    s, h = by_hand(counts, embeddings, tau)
    np.testing.assert_allclose(adata.obsm["X_fingerprint"], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adata.obs["X_fingerprint_effective_genes"], h, rtol=1e-10)
    assert adata.obsm["X_fingerprint"].dtype == np.float32
    assert adata.uns["X_fingerprint"] == {
        "tau": tau,
        "embedding_key": "X_esm2",
        "layer": "X",
        "scale": "counts",
        "n_genes_used": 25,
    }


def test_huge_counts_do_not_overflow(data):
    counts, embeddings = data
    counts = counts.astype(np.float64)
    counts[:, 3] = 1e7
    counts[0] = 1e7  # all genes equal: H = n_genes
    adata = make_adata(counts, embeddings)
    cfmd.pp.structural_fingerprint(adata, tau=1e-3)
    s, h = by_hand(counts, embeddings, 1e-3)
    assert np.isfinite(adata.obsm["X_fingerprint"]).all()
    np.testing.assert_allclose(adata.obsm["X_fingerprint"], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adata.obs["X_fingerprint_effective_genes"], h, rtol=1e-8)
    assert adata.obs["X_fingerprint_effective_genes"].iloc[0] == pytest.approx(25)
    np.testing.assert_allclose(adata.obsm["X_fingerprint"][0], embeddings.mean(0), rtol=1e-5, atol=1e-6)


def test_effective_genes_tend_to_one_for_a_dominant_gene(data):
    counts, embeddings = data
    counts = np.full_like(counts, 20.0)
    counts[:, 7] = 5000.0
    adata = make_adata(counts, embeddings)
    h = []
    for tau in (4.0, 1.0, 0.25, 0.05, 0.01):
        cfmd.pp.structural_fingerprint(adata, tau=tau)
        h.append(adata.obs["X_fingerprint_effective_genes"].iloc[0])
    assert all(a >= b for a, b in zip(h, h[1:])) and h[1] > h[2] > 1.0
    assert h[0] > 5 and h[-1] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(adata.obsm["X_fingerprint"][0], embeddings[7], atol=1e-6)


def test_only_genes_with_embeddings(data):
    counts, embeddings = data
    with_missing = embeddings.copy()
    with_missing[[0, 4, 9]] = np.nan
    adata = make_adata(sparse.csr_matrix(counts), with_missing)
    cfmd.pp.structural_fingerprint(adata, tau=2.0)
    keep = np.setdiff1d(np.arange(25), [0, 4, 9])
    s, h = by_hand(counts[:, keep], embeddings[keep], 2.0)
    np.testing.assert_allclose(adata.obsm["X_fingerprint"], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adata.obs["X_fingerprint_effective_genes"], h, rtol=1e-10)
    assert adata.uns["X_fingerprint"]["n_genes_used"] == 22


def test_log2_layer_and_copy(data):
    counts, embeddings = data
    adata = make_adata(counts, embeddings)
    adata.layers["log2"] = np.log2(counts.astype(np.float64) + 1)
    out = cfmd.pp.structural_fingerprint(adata, layer="log2", scale="log2", key_added="fp", copy=True)
    assert "fp" not in adata.obsm
    s, _ = by_hand(counts, embeddings, 1.0)
    np.testing.assert_allclose(out.obsm["fp"], s, rtol=1e-5, atol=1e-6)
    assert "fp_effective_genes" in out.obs


def test_synthetic_structural_features():
    rna = cfmd.datasets.synthetic_cohort(n_patients=30, n_genes=300, n_cancer_types=2, seed=1)["rna"]
    cfmd.pp.structural_fingerprint(rna, embedding_key="structural_features", tau=1.0)
    s, h = by_hand(rna.X.toarray(), rna.varm["structural_features"], 1.0)
    np.testing.assert_allclose(rna.obsm["X_fingerprint"], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rna.obs["X_fingerprint_effective_genes"], h, rtol=1e-10)


@pytest.mark.parametrize(
    ("mutate", "kwargs", "match"),
    [
        (lambda a: None, {"tau": 0.0}, "tau"),
        (lambda a: None, {"tau": -1.0}, "tau"),
        (lambda a: None, {"tau": float("nan")}, "tau"),
        (lambda a: None, {"embedding_key": "X_nope"}, "no key 'X_nope'"),
        (lambda a: a.X.__setitem__((0, 0), -1.0), {}, "non-negative"),
        (lambda a: a.X.__setitem__((0, 0), np.inf), {}, "finite"),
        (lambda a: a.varm["X_esm2"].__setitem__(slice(None), np.nan), {}, "no gene with a finite embedding"),
        (lambda a: None, {"scale": "tpm"}, "scale"),
    ],
)
def test_bad_input_leaves_object_unchanged(data, mutate, kwargs, match):
    counts, embeddings = data
    adata = make_adata(counts.copy(), embeddings.copy())
    mutate(adata)
    before = (set(adata.obsm.keys()), list(adata.obs.columns), set(adata.uns.keys()))
    with pytest.raises(InvalidInputError, match=match):
        cfmd.pp.structural_fingerprint(adata, **kwargs)
    assert (set(adata.obsm.keys()), list(adata.obs.columns), set(adata.uns.keys())) == before
