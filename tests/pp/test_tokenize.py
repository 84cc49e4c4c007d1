"""cfmd.pp.tokenize: Geneformer rank-value encoding, checked against a plain re-implementation."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import cfmd
from cfmd import InvalidInputError
from cfmd.datasets import (
    geneformer_gene_medians,
    geneformer_gene_name_id,
    geneformer_token_dictionary,
    tiny_geneformer_checkpoint,
)

TOKENS = geneformer_token_dictionary()
MEDIANS = geneformer_gene_medians()


# ---------------------------------------------------------------------- reference implementation


def reference_rank_value(
    counts: pd.DataFrame,
    token_dict: dict[str, int],
    medians: dict[str, float],
    *,
    model_input_size: int = 2048,
    special_tokens: bool = False,
    target_sum: float = 10_000,
    sort_kind: str = "stable",
) -> list[np.ndarray]:
    """Geneformer's TranscriptomeTokenizer, written out plainly, one sample at a time.

    ``counts``: samples x Ensembl IDs (duplicates allowed, summed as Geneformer's collapse_gene_ids). n_counts is
    the sample's total over all columns. Genes are taken in token-id order so that a stable sort breaks ties by
    token id; ``sort_kind="quicksort"`` is what Geneformer's ``np.argsort(-v)`` does.
    """
    n_counts = counts.sum(axis=1).to_numpy(dtype=np.float64)
    summed = counts.T.groupby(level=0).sum().T
    genes = [g for g in summed.columns if g in token_dict and g in medians and not g.startswith("<")]
    genes.sort(key=lambda g: token_dict[g])
    gene_tokens = np.array([token_dict[g] for g in genes])
    norm_factor = np.array([medians[g] for g in genes])
    out = []
    for i in range(len(counts)):
        x = summed[genes].iloc[i].to_numpy(dtype=np.float64)
        x_norm = x / n_counts[i] * target_sum / norm_factor
        nonzero = np.nonzero(x_norm)[0]
        ranked = gene_tokens[nonzero][np.argsort(-x_norm[nonzero], kind=sort_kind)]
        if special_tokens:
            ranked = np.concatenate([[token_dict["<cls>"]], ranked[: model_input_size - 2], [token_dict["<eos>"]]])
        else:
            ranked = ranked[:model_input_size]
        out.append(ranked)
    return out


def tokens_of(adata, key="geneformer_tokens") -> list[np.ndarray]:
    lengths = adata.obs[f"{key}_length"].to_numpy()
    return [adata.obsm[key][i, : lengths[i]] for i in range(adata.n_obs)]


def snapshot(adata):
    return (
        set(adata.obsm.keys()),
        set(adata.uns.keys()),
        list(adata.obs.columns),
        list(adata.var.columns),
        set(adata.varm.keys()),
    )


@pytest.fixture(scope="module")
def cohort_rna():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=60, n_genes=400, n_cancer_types=2, seed=3)
    return mdata["rna"]


@pytest.fixture
def rna(cohort_rna):
    return cohort_rna.copy()


def ensembl_counts(adata) -> pd.DataFrame:
    X = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    return pd.DataFrame(X, index=adata.obs_names, columns=adata.var["ensembl_id"].to_numpy())


# ---------------------------------------------------------------------- agreement with Geneformer's algorithm


def test_synthetic_matches_reference(rna):
    cfmd.pp.tokenize(rna)
    ours = tokens_of(rna)
    ref = reference_rank_value(ensembl_counts(rna), TOKENS, MEDIANS)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a, b)
    assert rna.obsm["geneformer_tokens"].dtype == np.int32
    info = rna.uns["geneformer_tokens"]
    assert info["version"] == "V1" and info["vocab_size"] == len(TOKENS) == 25426
    assert info["n_genes_mapped"] == rna.n_vars and info["n_genes_unmapped"] == 0


def test_real_cohort_matches_reference(shared_dir):
    path = shared_dir / "cohorts" / "tcga_ov_20" / "rna_counts.tsv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    frame = pd.read_csv(path, sep="\t", index_col=0)  # genes (symbols) x samples, raw counts
    adata = ad.AnnData(X=frame.T.to_numpy(dtype=np.float64), obs=pd.DataFrame(index=frame.columns))
    adata.var_names = frame.index.astype(str)
    cfmd.pp.tokenize(adata)

    name_id = geneformer_gene_name_id()
    counts = frame.T.copy()
    counts.columns = [name_id.get(g, f"unmapped:{g}") for g in frame.index]
    ref = reference_rank_value(counts, TOKENS, MEDIANS)
    for a, b in zip(tokens_of(adata), ref):
        np.testing.assert_array_equal(a, b)
    info = adata.uns["geneformer_tokens"]
    assert info["gene_key"] == "adata.var_names"
    assert info["n_genes_mapped"] == sum(name_id.get(g) in TOKENS for g in frame.index)
    assert set(info["unmapped_genes"]) == {g for g in frame.index if name_id.get(g) not in TOKENS}


def test_geneformer_unstable_sort_differs_only_within_ties(rna):
    """Geneformer's own np.argsort(-v) (unstable) agrees with ours up to the order of exactly tied values."""
    flat_medians = dict.fromkeys(MEDIANS, 1.0)  # equal medians: equal counts give exact ties
    rna.X = sparse.csr_matrix(np.round(rna.X.toarray() / 1000))
    cfmd.pp.tokenize(rna, gene_medians=flat_medians)
    counts = ensembl_counts(rna)
    unstable = reference_rank_value(counts, TOKENS, flat_medians, sort_kind="quicksort")
    column = {TOKENS[g]: j for j, g in enumerate(counts.columns)}
    n_tied = 0
    for i, (ours, theirs) in enumerate(zip(tokens_of(rna), unstable)):
        assert sorted(ours) == sorted(theirs)
        values = counts.to_numpy()[i]
        ours_values = values[[column[t] for t in ours]]
        np.testing.assert_array_equal(ours_values, values[[column[t] for t in theirs]])
        tied = np.flatnonzero(np.diff(ours_values) == 0)
        assert np.all(np.diff(ours)[tied] > 0)  # within a tie: ascending token id
        n_tied += tied.size
    assert n_tied > 100  # the check above was not vacuous


def test_log2_input_equals_counts(rna):
    log2 = rna.copy()
    log2.X = sparse.csr_matrix(np.log2(rna.X.toarray().astype(np.float64) + 1))
    cfmd.pp.tokenize(rna)
    cfmd.pp.tokenize(log2, scale="log2")
    np.testing.assert_array_equal(rna.obsm["geneformer_tokens"], log2.obsm["geneformer_tokens"])
    assert log2.uns["geneformer_tokens"]["scale"] == "log2"


def test_scale_read_from_uns(rna):
    log2 = rna.copy()
    log2.X = np.log2(rna.X.toarray().astype(np.float64) + 1)
    log2.uns["scale"] = "log2"
    cfmd.pp.tokenize(rna)
    cfmd.pp.tokenize(log2)
    np.testing.assert_array_equal(rna.obsm["geneformer_tokens"], log2.obsm["geneformer_tokens"])
    log2.uns["scale"] = "zscore"
    with pytest.raises(InvalidInputError, match="scale"):
        cfmd.pp.tokenize(log2)


def test_dense_sparse_symbols_and_versions_agree(rna):
    cfmd.pp.tokenize(rna)
    expected = rna.obsm["geneformer_tokens"]
    dense = rna.copy()
    dense.X = rna.X.toarray()
    del dense.var["ensembl_id"]  # falls back to var_names = symbols, mapped through `symbol_map`
    symbol_map = {s.lower(): e for s, e in zip(rna.var["gene_symbol"], rna.var["ensembl_id"])}
    dense.var_names = [s.lower() for s in dense.var_names]  # exact match fails, upper-case lookup is tried next
    symbol_map = {k.upper(): v for k, v in symbol_map.items()}
    cfmd.pp.tokenize(dense, symbol_map=symbol_map)
    np.testing.assert_array_equal(dense.obsm["geneformer_tokens"], expected)
    versioned = rna.copy()
    versioned.var["ensembl_id"] = [f"{e}.{i % 7 + 1}" for i, e in enumerate(rna.var["ensembl_id"])]
    cfmd.pp.tokenize(versioned)
    np.testing.assert_array_equal(versioned.obsm["geneformer_tokens"], expected)


def test_column_order_does_not_matter_and_ties_by_token_id():
    tokens = {"<pad>": 0, "<mask>": 1, "ENSG00000000010": 2, "ENSG00000000020": 3, "ENSG00000000030": 4}
    medians = dict.fromkeys(list(tokens)[2:], 1.0)
    X = np.array([[5.0, 5.0, 5.0], [9.0, 1.0, 1.0], [0.0, 3.0, 3.0]])
    genes = ["ENSG00000000030", "ENSG00000000010", "ENSG00000000020"]
    adata = ad.AnnData(X=X, var=pd.DataFrame(index=genes))
    cfmd.pp.tokenize(adata, token_dictionary=tokens, gene_medians=medians)
    assert [list(t) for t in tokens_of(adata)] == [[2, 3, 4], [4, 2, 3], [2, 3]]  # ties: ascending token id
    permuted = adata[:, [2, 0, 1]].copy()
    cfmd.pp.tokenize(permuted, token_dictionary=tokens, gene_medians=medians)
    np.testing.assert_array_equal(permuted.obsm["geneformer_tokens"], adata.obsm["geneformer_tokens"])
    assert adata.obsm["geneformer_tokens"][2, 2] == 0  # padded with <pad>


def test_duplicate_ensembl_ids_are_summed(rna):
    cfmd.pp.tokenize(rna)
    X = rna.X.toarray().astype(np.float64)
    var = pd.concat([rna.var, rna.var])
    var.index = [f"{g}_{i}" for i, g in enumerate(var.index)]
    split = ad.AnnData(X=np.hstack([X * 0.25, X * 0.75]), obs=rna.obs.copy(), var=var)
    cfmd.pp.tokenize(split)
    np.testing.assert_array_equal(split.obsm["geneformer_tokens"], rna.obsm["geneformer_tokens"])
    assert split.uns["geneformer_tokens"]["n_genes_collapsed"] == rna.n_vars


def test_truncation_and_total_counts_key(rna):
    cfmd.pp.tokenize(rna, model_input_size=50)
    full = reference_rank_value(ensembl_counts(rna), TOKENS, MEDIANS, model_input_size=50)
    for a, b in zip(tokens_of(rna), full):
        np.testing.assert_array_equal(a, b)
    assert rna.obsm["geneformer_tokens"].shape[1] == 50
    assert rna.uns["geneformer_tokens"]["n_samples_truncated"] == rna.n_obs
    # the total used for scaling can come from obs (e.g. when adata holds a gene subset)
    subset = rna[:, :200].copy()
    subset.obs["n_counts"] = np.asarray(rna.X.sum(axis=1)).ravel()
    cfmd.pp.tokenize(subset, total_counts_key="n_counts")
    counts = ensembl_counts(rna)
    ref = reference_rank_value(counts, TOKENS, MEDIANS)
    kept = {TOKENS[e] for e in subset.var["ensembl_id"]}
    for a, b in zip(tokens_of(subset), ref):
        np.testing.assert_array_equal(a, [t for t in b if t in kept])


def test_v2_special_tokens(tmp_path, rna):
    folder = tiny_geneformer_checkpoint(tmp_path / "v2", version="V2", n_layers=1, hidden_size=16)
    dictionaries = {"token_dictionary": folder / "token_dictionary.tsv", "gene_medians": folder / "gene_median.tsv"}
    cfmd.pp.tokenize(rna, version="V2", model_input_size=40, **dictionaries)
    v2 = pd.read_csv(folder / "token_dictionary.tsv", sep="\t").set_index("token")["id"].to_dict()
    ref = reference_rank_value(ensembl_counts(rna), v2, MEDIANS, model_input_size=40, special_tokens=True)
    for a, b in zip(tokens_of(rna), ref):
        np.testing.assert_array_equal(a, b)
        assert a[0] == v2["<cls>"] and a[-1] == v2["<eos>"] and len(a) == 40
    info = rna.uns["geneformer_tokens"]
    assert info["special_tokens"] and info["cls_token_id"] == 2 and info["eos_token_id"] == 3
    assert info["vocab_size"] == len(v2) == len(TOKENS) + 2
    # V1 and V2 must not be mixed
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match="V2 dictionary"):
        cfmd.pp.tokenize(rna, version="V1", **dictionaries)
    with pytest.raises(InvalidInputError, match="V1 dictionary"):
        cfmd.pp.tokenize(rna, version="V2", gene_medians=dictionaries["gene_medians"], token_dictionary=TOKENS)
    with pytest.raises(InvalidInputError, match="required for Geneformer V2"):
        cfmd.pp.tokenize(rna, version="V2")
    assert snapshot(rna) == before


def test_copy_and_h5ad_roundtrip(tmp_path, rna):
    out = cfmd.pp.tokenize(rna, copy=True, key_added="tok")
    assert "tok" not in rna.obsm and "tok" in out.obsm
    out.write_h5ad(tmp_path / "x.h5ad")
    back = ad.read_h5ad(tmp_path / "x.h5ad")
    np.testing.assert_array_equal(back.obsm["tok"], out.obsm["tok"])
    assert back.uns["tok"]["token_dictionary_sha256"] == out.uns["tok"]["token_dictionary_sha256"]


def test_dictionaries_from_files(tmp_path, rna):
    cfmd.pp.tokenize(rna)
    tsv = tmp_path / "tokens.tsv"
    pd.Series(TOKENS).to_csv(tsv, sep="\t", header=False)  # no header row
    json_path = tmp_path / "medians.json"
    json_path.write_text(json.dumps(MEDIANS))
    other = rna.copy()
    cfmd.pp.tokenize(other, token_dictionary=tsv, gene_medians=json_path)
    np.testing.assert_array_equal(other.obsm["geneformer_tokens"], rna.obsm["geneformer_tokens"])
    a, b = other.uns["geneformer_tokens"], rna.uns["geneformer_tokens"]
    assert a["token_dictionary_sha256"] == b["token_dictionary_sha256"]
    assert a["gene_medians_sha256"] == b["gene_medians_sha256"]
    assert a["token_dictionary"] == str(tsv)


# ---------------------------------------------------------------------- bad input: clear error, object untouched


@pytest.mark.parametrize(
    ("mutate", "kwargs", "match"),
    [
        (lambda a: a.X.data.__setitem__(0, -3.0), {}, "non-negative"),
        (lambda a: a.X.data.__setitem__(0, np.nan), {}, "finite"),
        (lambda a: a.X.data.__setitem__(0, np.inf), {}, "finite"),
        (lambda a: a.var.__setitem__("ensembl_id", [f"gene{i}" for i in range(a.n_vars)]), {}, "No gene of"),
        (lambda a: None, {"gene_key": "nope"}, "no column 'nope'"),
        (lambda a: None, {"scale": "log2", "layer": "centred"}, "negative"),
        (lambda a: None, {"total_counts_key": "zero"}, "positive total"),
        (lambda a: None, {"version": "V3"}, "version"),
        (lambda a: None, {"model_input_size": 0}, "model_input_size"),
        (lambda a: None, {"target_sum": -1}, "target_sum"),
        (lambda a: None, {"token_dictionary": "dict.pkl"}, "never unpickles"),
        (lambda a: None, {"token_dictionary": "missing.tsv"}, "not found"),
        (lambda a: None, {"token_dictionary": {"<pad>": 0, "ENSG00000000003": 5}}, "ids 0..1"),
        (lambda a: None, {"gene_medians": {"ENSG00000000003": 0.0}}, "positive, finite medians"),
    ],
)
def test_bad_input_leaves_object_unchanged(rna, mutate, kwargs, match):
    rna.layers["centred"] = rna.X.toarray() - 1.0
    rna.obs["zero"] = 0.0
    mutate(rna)
    before = snapshot(rna)
    X_before = rna.X.toarray()
    with pytest.raises(InvalidInputError, match=match):
        cfmd.pp.tokenize(rna, **kwargs)
    assert snapshot(rna) == before
    np.testing.assert_array_equal(rna.X.toarray(), X_before)


def test_samples_without_usable_expression_are_named(rna):
    X = rna.X.toarray()
    X[3, :] = 0
    zero_total = rna.copy()
    zero_total.X = sparse.csr_matrix(X)
    with pytest.raises(InvalidInputError, match=f"positive total.*{rna.obs_names[3]}"):
        cfmd.pp.tokenize(zero_total)
    # expression only in a gene the dictionary does not know
    extra = ad.AnnData(
        X=np.hstack([X, np.full((rna.n_obs, 1), 7.0)]),
        obs=rna.obs.copy(),
        var=pd.concat([rna.var, pd.DataFrame({"ensembl_id": ["NOT_A_GENE"]}, index=["mystery"])]),
    )
    before = snapshot(extra)
    with pytest.raises(InvalidInputError, match=f"express none.*{rna.obs_names[3]}"):
        cfmd.pp.tokenize(extra)
    assert snapshot(extra) == before
