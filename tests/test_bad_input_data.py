"""Bad input data: a clear InvalidInputError naming the field, raised before any work; the caller's object unchanged.

Covers fit_latent, split_patients, loco_audit, the pp functions and LatentLayout.
"""

import anndata as ad
import mudata as md
import numpy as np
import pytest
from _helpers import assert_mudata_unchanged, deep_copy
from scipy import sparse

import cfmd
from cfmd import InvalidInputError, LatentLayout
from cfmd._utils import new_mudata
from cfmd.datasets import tiny_esm2_checkpoint

TRAIN_KWARGS = {"enable_progress_bar": False}


@pytest.fixture(scope="module")
def base():
    return cfmd.datasets.synthetic_cohort(n_patients=60, n_genes=250, seed=0)


@pytest.fixture
def mdata(base):
    return deep_copy(base)


def _fails(func, data, match, **kwargs):
    """Call ``func(data, **kwargs)``, require an InvalidInputError matching ``match`` and ``data`` unchanged."""
    before = deep_copy(data)
    with pytest.raises(InvalidInputError, match=match):
        func(data, **kwargs)
    assert_mudata_unchanged(before, data)


def _fit(data, **kwargs):
    return cfmd.tl.fit_latent(data, max_epochs=1, train_kwargs=TRAIN_KWARGS, **kwargs)


def _set_rna(mdata, X):
    rna = mdata.mod["rna"]
    rna.X = X


# ---------------------------------------------------------------------- pp
def test_esm_binary_fasta_is_a_clear_error(mdata, tmp_path):
    checkpoint = tiny_esm2_checkpoint(tmp_path / "esm", n_layers=1, embed_dim=16, attention_heads=2)
    fasta = tmp_path / "proteins.fasta"
    fasta.write_bytes(bytes(range(256)) * 8)
    _fails(
        cfmd.pp.esm_gene_embeddings, mdata.mod["rna"], r"`fasta` .*not a text FASTA", checkpoint=checkpoint, fasta=fasta
    )


def test_esm_corrupt_gzip_fasta_is_a_clear_error(mdata, tmp_path):
    checkpoint = tiny_esm2_checkpoint(tmp_path / "esm", n_layers=1, embed_dim=16, attention_heads=2)
    fasta = tmp_path / "proteins.fasta.gz"
    fasta.write_bytes(b"not gzip at all")
    _fails(
        cfmd.pp.esm_gene_embeddings, mdata.mod["rna"], r"`fasta` .*gzipped FASTA", checkpoint=checkpoint, fasta=fasta
    )


@pytest.mark.parametrize("func", ["tokenize", "structural_fingerprint", "esm_gene_embeddings", "geneformer"])
def test_pp_on_anndata_view(mdata, func, tmp_path):
    rna = mdata.mod["rna"]
    rna.varm["X_esm2"] = rna.varm["structural_features"]
    view = rna[:10]
    assert view.is_view
    before_parent = deep_copy(rna)
    with pytest.raises(InvalidInputError, match=r"`adata` is a view .*adata\.copy\(\)"):
        getattr(cfmd.pp, func)(view, **({"checkpoint": tmp_path / "geneformer"} if func == "geneformer" else {}))
    assert_mudata_unchanged(before_parent, rna)


def test_tokenize_missing_genes(mdata):
    rna = mdata.mod["rna"]
    rna.var["ensembl_id"] = [f"unknown{i}" for i in range(rna.n_vars)]
    _fails(cfmd.pp.tokenize, rna, r"No gene of")


def test_tokenize_reordered_genes_give_the_same_tokens(mdata):
    rna = mdata.mod["rna"]
    order = np.random.default_rng(0).permutation(rna.n_vars)
    reordered = rna[:, order].copy()
    cfmd.pp.tokenize(rna)
    cfmd.pp.tokenize(reordered)
    np.testing.assert_array_equal(rna.obsm["geneformer_tokens"], reordered.obsm["geneformer_tokens"])


def test_tokenize_negative_counts(mdata):
    rna = mdata.mod["rna"]
    X = rna.X.toarray()
    X[0, 0] = -3
    rna.X = sparse.csr_matrix(X)
    _fails(cfmd.pp.tokenize, rna, r"non-negative")


def test_fingerprint_nan_expression(mdata):
    rna = mdata.mod["rna"]
    rna.varm["X_esm2"] = rna.varm["structural_features"]
    X = rna.X.toarray().astype(np.float32)
    X[1, 2] = np.nan
    rna.X = X
    _fails(cfmd.pp.structural_fingerprint, rna, r"adata.*(finite|NaN)")


# ---------------------------------------------------------------------- split_patients / loco_audit
def test_split_patients_on_mudata_view(mdata):
    view = mdata[mdata.obs_names[:30]]
    assert view.is_view
    before = deep_copy(mdata)
    with pytest.raises(InvalidInputError, match=r"`mdata` is a view .*mdata\.copy\(\)"):
        cfmd.tl.split_patients(view)
    assert_mudata_unchanged(before, mdata)


def test_loco_audit_on_mudata_view(mdata):
    view = mdata[mdata.obs_names[:30]]
    before = deep_copy(mdata)
    with pytest.raises(InvalidInputError, match=r"`mdata` is a view"):
        cfmd.tl.loco_audit(view)
    assert_mudata_unchanged(before, mdata)


# ---------------------------------------------------------------------- fit_latent
def test_fit_latent_one_patient(mdata):
    one = deep_copy(mdata[mdata.obs_names[:1]])
    _fails(_fit, one, r"mdata has 1 patient\(s\) \(mdata.n_obs\); fit_latent needs at least 3")


def test_fit_latent_split_with_one_training_patient(mdata):
    cfmd.tl.split_patients(mdata, seed=0)
    labels = np.where(mdata.obs["cfmd_split"] == "test", "test", "validation").astype(object)
    labels[0] = "train"
    mdata.obs["cfmd_split"] = labels
    _fails(_fit, mdata, r"mdata.obs\['cfmd_split'\] has 1 'train'/'rna_only' patient")


def test_fit_latent_on_mudata_view(mdata):
    view = mdata[mdata.obs_names[:40]]
    before = deep_copy(mdata)
    with pytest.raises(InvalidInputError, match=r"`mdata` is a view .*mdata\.copy\(\)"):
        _fit(view)
    assert_mudata_unchanged(before, mdata)


def test_fit_latent_no_hallmark_gene_leaves_no_scvi_uuid(mdata):
    rna = mdata.mod["rna"]
    rna.var["gene_symbol"] = [f"NOTAGENE{i}" for i in range(rna.n_vars)]
    assert "_scvi_uuid" not in mdata.uns
    # an explicit layout is used as given (layout=None adapts the default layout to the data, dropping empty blocks)
    _fails(_fit, mdata, r"Pathway block\(s\) .* have no gene in mdata\['rna'\]", layout=LatentLayout.cfmd328())
    assert "_scvi_uuid" not in mdata.uns and "_scvi_manager_uuid" not in mdata.uns


def test_fit_latent_layout_without_meth_slice_leaves_no_scvi_uuid(mdata):
    layout = LatentLayout.from_sizes({"prolif": (1, "rna"), "pathway": (200, "geneformer"), "residual": (4, "esm")})
    _fails(_fit, mdata, r"no slice 'meth' named by modalities\['meth'\]", layout=layout)
    assert "_scvi_uuid" not in mdata.uns and "_scvi_manager_uuid" not in mdata.uns


def test_fit_latent_unpaired_patient_without_rna(mdata):
    rna = mdata.mod["rna"]
    keep = rna.obs_names.drop(mdata.mod["meth"].obs_names[0])  # this patient keeps meth/cnv/mut but loses RNA
    mods = {name: (adata[keep].copy() if name == "rna" else adata) for name, adata in mdata.mod.items()}
    unpaired = new_mudata(mods)
    _fails(_fit, unpaired, r"Every patient needs RNA.*mdata\['rna'\]")


def test_fit_latent_nan_in_rna(mdata):
    X = mdata.mod["rna"].X.toarray().astype(np.float32)
    X[0, 0] = np.nan
    _set_rna(mdata, X)
    _fails(_fit, mdata, r"mdata\['rna'\]\.X")


def test_fit_latent_inf_in_cnv(mdata):
    cnv = mdata.mod["cnv"]
    X = np.array(cnv.X)
    X[0, 0] = np.inf
    cnv.X = X
    _fails(_fit, mdata, r"mdata\['cnv'\]\.X has infinite values")


def test_fit_latent_negative_counts(mdata):
    X = mdata.mod["rna"].X.toarray()
    X[0, 0] = -1
    _set_rna(mdata, sparse.csr_matrix(X))
    _fails(_fit, mdata, r"mdata\['rna'\]\.X")


def test_fit_latent_wrong_dtype(mdata):
    meth = mdata.mod["meth"]
    mdata.mod["meth"] = ad.AnnData(
        X=np.asarray(meth.X).astype(str).astype(object), obs=meth.obs, var=meth.var, uns=dict(meth.uns)
    )
    _fails(_fit, mdata, r"mdata\['meth'\]\.X")


def test_fit_latent_duplicate_gene_ids(mdata):
    rna = mdata.mod["rna"]
    names = rna.var_names.to_numpy().copy()
    names[1] = names[0]
    rna.var_names = names
    with md.set_options(pull_on_update=False):
        mdata.update()
    _fails(_fit, mdata, r"mdata\['rna'\]\.var_names must be unique")


# ---------------------------------------------------------------------- layout
@pytest.mark.parametrize("width", [2.7, 0, -2, "3", True])
def test_layout_width_must_be_a_positive_integer(width):
    with pytest.raises(InvalidInputError, match=r"`sizes`: the width of slice 'a' must be a positive integer"):
        LatentLayout.from_sizes({"a": (width, "zero"), "b": (3, "rna")})


def test_stored_layout_with_fractional_index():
    data = LatentLayout.cfmd328().to_dict()
    data["stops"] = np.asarray(data["stops"], dtype=float)
    data["stops"][0] = 1.5
    with pytest.raises(InvalidInputError, match=r"stored layout: `stops` of slice 'prolif' must be an integer"):
        LatentLayout.from_dict(data)
