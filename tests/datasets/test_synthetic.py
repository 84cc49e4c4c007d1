import numpy as np
import pytest
from scipy import sparse

import cfmd
from cfmd import InvalidInputError
from cfmd.datasets import (
    geneformer_gene_medians,
    geneformer_token_dictionary,
    hallmark_gene_sets,
    proliferation_signature,
    synthetic_cohort,
)


@pytest.fixture(scope="module")
def cohort():
    return synthetic_cohort(n_patients=800, n_genes=1500, n_cancer_types=4, frac_rna_only=0.25, seed=11)


def _log_norm_z(adata):
    X = adata.X.toarray()
    logx = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    return (logx - logx.mean(0)) / (logx.std(0) + 1e-8)


def test_structure_and_contract(cohort):
    assert set(cohort.mod) == {"rna", "meth", "cnv", "mut"}
    rna = cohort["rna"]
    assert rna.shape == (800, 1500)
    assert cohort.n_obs == 800 and (cohort.obs_names == rna.obs_names).all()
    assert sparse.isspmatrix_csr(rna.X) and rna.X.dtype == np.float32
    assert np.all(rna.X.data > 0) and np.all(rna.X.data == np.round(rna.X.data))
    libs = np.asarray(rna.X.sum(1)).ravel()
    assert 5e6 < np.median(libs) < 1e8
    for col in ("gene_symbol", "ensembl_id", "chromosome", "start", "protein_sequence"):
        assert col in rna.var
    assert set(rna.var["chromosome"]) <= set(cfmd.datasets.CHROMOSOMES)
    assert rna.varm["structural_features"].shape == (1500, 32)
    tokens, medians = geneformer_token_dictionary(), geneformer_gene_medians()
    assert rna.var["ensembl_id"].isin(list(tokens)).all() and rna.var["ensembl_id"].isin(list(medians)).all()
    assert len(set(proliferation_signature()) & set(rna.var["gene_symbol"])) >= 70
    assert (rna.var["protein_sequence"].str.len() > 1022).any()
    for name, genes in hallmark_gene_sets().items():
        assert len(set(genes) & set(rna.var_names)) >= 3, name

    n_multi = 800 - round(0.25 * 800)
    for mod in ("meth", "cnv", "mut"):
        assert cohort[mod].n_obs == n_multi
        assert cohort[mod].obs_names.isin(cohort.obs_names).all()
        assert all(v.startswith(f"{mod}:") for v in cohort[mod].var_names)
    assert cohort.var_names.is_unique
    beta = cohort["meth"].X
    assert beta.min() > 0 and beta.max() < 1
    assert set(np.unique(cohort["mut"].X)) <= {0.0, 1.0}

    obs = cohort.obs
    assert obs["cancer_type"].nunique() == 4
    assert (obs["os_time"] > 0).all() and set(obs["os_event"].unique()) <= {0, 1}
    assert 0.2 < obs["os_event"].mean() < 0.6
    for key, width in [("truth_pathway", 50), ("truth_meth_state", 6), ("truth_regional", 23), ("truth_cnv", 8)]:
        assert cohort.obsm[key].shape == (800, width)


def test_same_seed_identical_different_seed_differs():
    a = synthetic_cohort(n_patients=60, n_genes=300, seed=5)
    b = synthetic_cohort(n_patients=60, n_genes=300, seed=5)
    c = synthetic_cohort(n_patients=60, n_genes=300, seed=6)
    assert (a["rna"].X != b["rna"].X).nnz == 0
    np.testing.assert_array_equal(a["meth"].X, b["meth"].X)
    assert a.obs.equals(b.obs)
    assert list(a["rna"].var_names) == list(b["rna"].var_names)
    for key in a.obsm:
        np.testing.assert_array_equal(np.asarray(a.obsm[key]), np.asarray(b.obsm[key]))
    assert (a["rna"].X != c["rna"].X).nnz > 0


def test_planted_pathway_and_proliferation_programs_are_recoverable(cohort):
    rna = cohort["rna"]
    z = _log_norm_z(rna)
    symbols = list(rna.var_names)
    position = {s: i for i, s in enumerate(symbols)}
    truth = np.asarray(cohort.obsm["truth_pathway"])
    correlations = []
    for k, genes in enumerate(hallmark_gene_sets().values()):
        idx = [position[g] for g in genes if g in position]
        correlations.append(np.corrcoef(z[:, idx].mean(1), truth[:, k])[0, 1])
    # a pathway's own genes track its planted activity ...
    assert np.median(correlations) > 0.4
    # ... and not another pathway's
    other = [
        np.corrcoef(z[:, [position[g] for g in genes if g in position]].mean(1), truth[:, (k + 7) % 50])[0, 1]
        for k, genes in enumerate(hallmark_gene_sets().values())
    ]
    assert np.median(np.abs(other)) < 0.15
    prolif_idx = [position[g] for g in proliferation_signature() if g in position]
    assert np.corrcoef(z[:, prolif_idx].mean(1), cohort.obs["truth_prolif"])[0, 1] > 0.6


def _ridge_r2(X, y, train, test, alpha=10.0):
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha).fit(X[train], y[train])
    resid = y[test] - model.predict(X[test])
    return 1 - (resid**2).sum() / ((y[test] - y[test].mean(0)) ** 2).sum()


def test_methylation_state_driven_by_regional_tme_programs(cohort):
    z = _log_norm_z(cohort["rna"])
    state = np.asarray(cohort.obsm["truth_meth_state"])
    n = cohort.n_obs
    train, test = np.arange(n) < 0.7 * n, np.arange(n) >= 0.7 * n
    tme = cohort["rna"].var["is_hallmark"].to_numpy()
    r2_tme = _ridge_r2(z[:, tme], state, train, test, alpha=100.0)
    r2_other = _ridge_r2(z[:, ~tme], state, train, test, alpha=100.0)
    # methylation state is visible in RNA only through the TME genes' regional programs
    assert r2_tme > 0.5
    assert r2_other < 0.5 * r2_tme
    # and it is what the methylation modality measures
    meth = cohort["meth"]
    rows = cohort.obs_names.get_indexer(meth.obs_names)
    logit = np.log(meth.X / (1 - meth.X))
    m_train = np.arange(meth.n_obs) < 0.7 * meth.n_obs
    assert _ridge_r2(logit, state[rows], m_train, ~m_train, alpha=1.0) > 0.9


def test_context_is_invisible_to_rna(cohort):
    z = _log_norm_z(cohort["rna"])
    ctx = np.asarray(cohort.obsm["truth_ctx"])
    n = cohort.n_obs
    train = np.arange(n) < 0.7 * n
    assert _ridge_r2(z, ctx, train, ~train, alpha=1000.0) < 0.15


def test_structural_fingerprint_carries_residual_programs(cohort):
    rna = cohort["rna"]
    logx = np.log2(rna.X.toarray() + 1)
    alpha = np.exp(logx - logx.max(1, keepdims=True))
    alpha /= alpha.sum(1, keepdims=True)
    fingerprint = alpha @ rna.varm["structural_features"]
    residual = np.asarray(cohort.obsm["truth_residual"])
    n = cohort.n_obs
    train = np.arange(n) < 0.7 * n
    assert _ridge_r2(fingerprint, residual, train, ~train, alpha=1e-3) > 0.3


def test_survival_depends_on_planted_hazard(cohort):
    from sksurv.metrics import concordance_index_censored

    obs = cohort.obs
    c = concordance_index_censored(obs["os_event"].astype(bool), obs["os_time"], obs["truth_log_hazard"])[0]
    assert c > 0.7


def test_h5mu_round_trip(tmp_path):
    import mudata as md

    mdata = synthetic_cohort(n_patients=50, n_genes=250, seed=1)
    path = tmp_path / "cohort.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path)
    assert (back["rna"].X != mdata["rna"].X).nnz == 0
    assert back["meth"].n_obs == mdata["meth"].n_obs
    assert back.obs["cancer_type"].tolist() == mdata.obs["cancer_type"].tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patients": 5}, "n_patients"),
        ({"n_genes": 50}, "n_genes"),
        ({"n_cancer_types": 0}, "n_cancer_types"),
        ({"n_cancer_types": 40}, "at most 33"),
        ({"frac_rna_only": 1.0}, "frac_rna_only"),
        ({"frac_rna_only": -0.1}, "frac_rna_only"),
        ({"signal": {"nope": 1.0}}, "unknown key"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        synthetic_cohort(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_documented_minimum_gene_count_works_for_any_seed(seed):
    # 70 proliferation-signature genes + 3 genes for each of the 50 pathways is the most the covering set can need.
    mdata = synthetic_cohort(n_patients=20, n_genes=220, seed=seed)
    assert mdata["rna"].n_vars == 220
    with pytest.raises(InvalidInputError, match="n_genes"):
        synthetic_cohort(n_patients=20, n_genes=219, seed=seed)
