"""Slice ownership in the StructuredVAE, ``cfmd.tl.slice_semantics`` / ``cfmd.pl.slice_semantics``, and
``LatentLayout.adapted_to`` (layouts that adapt to the data)."""

import warnings

import matplotlib
import mudata as md
import numpy as np
import pandas as pd
import pytest
from _helpers import assert_mudata_unchanged, deep_copy
from scipy import sparse

import cfmd
from cfmd import InvalidInputError, LatentLayout

matplotlib.use("Agg")
QUIET = {"enable_progress_bar": False}


@pytest.fixture(scope="module")
def owned():
    """A small cohort with a split, fitted briefly with ownership (default) and without."""
    mdata = cfmd.datasets.synthetic_cohort(n_patients=160, n_genes=300, seed=4)
    cfmd.tl.split_patients(mdata, seed=0)
    with_own = cfmd.tl.fit_latent(mdata, max_epochs=8, seed=0, train_kwargs=QUIET)
    without = cfmd.tl.fit_latent(
        mdata.copy(), max_epochs=8, seed=0, model_kwargs={"slice_ownership": False}, train_kwargs=QUIET
    )
    return mdata, with_own, without


def _shuffled_rna(mdata, seed=0):
    other = deep_copy(mdata)
    X = other["rna"].X.toarray()
    other["rna"].X = sparse.csr_matrix(X[np.random.default_rng(seed).permutation(X.shape[0])])
    return other


def _change(model, before, after, modalities):
    a = model.get_latent_representation(before, modalities=modalities)
    b = model.get_latent_representation(after, modalities=modalities)
    return np.abs(a - b)


def test_rna_cannot_overwrite_owned_slices(owned):
    mdata, model, without = owned
    assert model.module.slice_ownership and not without.module.slice_ownership
    layout = LatentLayout.cfmd328()
    other = _shuffled_rna(mdata)  # every patient gets another patient's RNA; meth, cnv, mut unchanged
    has_all = model.patients_with_all_modalities(mdata)
    full = _change(model, mdata, other, "all")[has_all]
    rna_only = _change(model, mdata, other, ["rna"])[has_all]
    for name in ("meth", "cnv", "ctx"):
        # owned and observed: RNA plays no part in the full posterior (exactly), while the RNA-only posterior moves
        assert full[:, layout[name].as_slice].max() == 0.0, name
        assert rna_only[:, layout[name].as_slice].mean() > 0.01, name
    for name in ("pathway", "residual", "prolif"):  # RNA slices follow the RNA
        assert full[:, layout[name].as_slice].mean() > 0.01, name
    # without ownership, RNA moves the owned slices of the full posterior too
    old = _change(without, mdata, other, "all")[has_all]
    assert old[:, layout["meth"].as_slice].mean() > 0.01


def test_rna_expert_fills_owned_slices_when_the_owner_is_missing(owned):
    mdata, model, _ = owned
    full = model.get_latent_representation(mdata)
    rna_only = model.get_latent_representation(mdata, modalities=["rna"])
    without_meth = model.get_latent_representation(mdata, modalities=["rna", "cnv", "mut"])
    meth = LatentLayout.cfmd328()["meth"].as_slice
    np.testing.assert_allclose(without_meth[:, meth], rna_only[:, meth], rtol=1e-5, atol=1e-6)
    has_all = model.patients_with_all_modalities(mdata)
    assert not np.allclose(full[has_all][:, meth], rna_only[has_all][:, meth])


def test_rna_match_term_trains_the_rna_expert(owned):
    mdata, model, _ = owned
    history = model.history
    assert "rna_match_kl_train" in history or any("rna_match" in k for k in history)


def test_ownership_option_is_saved_and_validated(owned, tmp_path):
    mdata, model, without = owned
    model.save(tmp_path / "own", overwrite=True)
    without.save(tmp_path / "old", overwrite=True)
    loaded = cfmd.models.StructuredVAE.load(tmp_path / "own", adata=mdata)
    loaded_old = cfmd.models.StructuredVAE.load(tmp_path / "old", adata=mdata)
    assert loaded.module.slice_ownership and not loaded_old.module.slice_ownership
    np.testing.assert_array_equal(loaded.get_latent_representation(mdata), model.get_latent_representation(mdata))
    before = deep_copy(mdata)
    for kwargs, message in [
        ({"slice_ownership": "yes"}, "slice_ownership"),
        ({"rna_match_weight": -1.0}, "rna_match_weight"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            cfmd.tl.fit_latent(mdata, max_epochs=1, model_kwargs=kwargs, train_kwargs=QUIET)
        assert_mudata_unchanged(before, mdata)


# ---------------------------------------------------------------------------------------------- slice_semantics
def test_slice_semantics_writes_its_table(owned):
    mdata, _, _ = owned
    work = deep_copy(mdata)
    assert cfmd.tl.slice_semantics(work) is None
    result = work.uns["cfmd_slice_semantics"]
    table = result["table"]
    assert list(table["slice"]) == ["meth", "cnv", "ctx"]
    assert list(table["modality"]) == ["meth", "cnv", "mut"]
    assert list(table.columns) == list(cfmd.tl._slice_semantics.SEMANTICS_COLUMNS)
    assert result["settings"]["scheme"] == "split"
    n_test = int((mdata.obs["cfmd_split"] == "test").sum())
    assert (table["n_test"] <= n_test).all() and (table["n_test"] > 0).all()
    assert (table["r2_pca_ceiling"] > 0).all()
    np.testing.assert_allclose(
        table["fraction_of_ceiling"], table["r2_slice_to_modality"] / table["r2_pca_ceiling"], rtol=1e-12
    )
    np.testing.assert_allclose(table["rna_excess"], table["r2_rna_to_slice"] - table["r2_rna_to_modality"])
    # copy=True leaves the input alone and returns the result
    copied = cfmd.tl.slice_semantics(mdata, copy=True, n_folds=3)
    assert "cfmd_slice_semantics" not in mdata.uns
    assert copied.uns["cfmd_slice_semantics"]["settings"]["scheme"] == "kfold"
    fig = cfmd.pl.slice_semantics(work, return_fig=True)
    assert len(fig.axes) == 3 and [t.get_text().split()[0] for t in fig.axes[0].get_xticklabels()] == list(
        table["slice"]
    )


def test_slice_semantics_fits_on_training_patients_only(owned):
    mdata, _, _ = owned
    work = deep_copy(mdata)
    cfmd.tl.slice_semantics(work)
    before = work.uns["cfmd_slice_semantics"]["table"].set_index("slice")
    # change the held-out patients' methylation: the maps (fitted on training patients) must not move
    perturbed = deep_copy(mdata)
    test = perturbed.obs_names[perturbed.obs["cfmd_split"] == "test"]
    rows = perturbed["meth"].obs_names.isin(test)
    X = np.asarray(perturbed["meth"].X).copy()
    X[rows] = np.random.default_rng(1).uniform(0.01, 0.99, size=(rows.sum(), X.shape[1]))
    perturbed["meth"].X = X
    cfmd.tl.slice_semantics(perturbed)
    after = perturbed.uns["cfmd_slice_semantics"]["table"].set_index("slice")
    train_side = ["train_r2_slice_to_modality", "train_r2_rna_to_modality", "n_train"]
    pd.testing.assert_frame_equal(before[train_side], after[train_side])
    # ... while the held-out scores of the perturbed modality do change (and the other slices' do not)
    assert before.loc["meth", "r2_slice_to_modality"] != after.loc["meth", "r2_slice_to_modality"]
    assert before.loc["cnv", "r2_slice_to_modality"] == after.loc["cnv", "r2_slice_to_modality"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_key": "X_missing"}, "X_missing"),
        ({"modalities": {"atac": "meth"}}, "slice 'atac'"),
        ({"modalities": {"meth": "methylation"}}, "no modality 'methylation'"),
        ({"modalities": {}}, "non-empty mapping"),
        ({"n_folds": 1}, "n_folds"),
        ({"alphas": [0.0, 1.0]}, "alphas"),
        ({"min_fraction": float("nan")}, "min_fraction"),
        ({"rna_only_key": "X_nope"}, "X_nope"),
        ({"split_key": ""}, "split_key"),
    ],
)
def test_slice_semantics_bad_input(owned, kwargs, message):
    mdata, _, _ = owned
    before = deep_copy(mdata)
    with pytest.raises(InvalidInputError, match=message):
        cfmd.tl.slice_semantics(mdata, **kwargs)
    assert_mudata_unchanged(before, mdata)


def test_slice_semantics_without_layout_or_record(owned):
    mdata, _, _ = owned
    work = deep_copy(mdata)
    work.obsm["X_other"] = work.obsm["X_structured"].copy()
    before = deep_copy(work)
    with pytest.raises(InvalidInputError, match="No layout stored"):
        cfmd.tl.slice_semantics(work, latent_key="X_other")
    LatentLayout.cfmd328().write(work, "X_other")
    with pytest.raises(InvalidInputError, match="`modalities` not given"):
        cfmd.tl.slice_semantics(work, latent_key="X_other")
    del work.uns["X_other_layout"]
    assert_mudata_unchanged(before, work)


def test_pl_slice_semantics_bad_input():
    with pytest.raises(InvalidInputError, match="lacks column"):
        cfmd.pl.slice_semantics(pd.DataFrame({"slice": ["meth"]}))
    with pytest.raises(InvalidInputError, match="No result table"):
        cfmd.pl.slice_semantics(cfmd.datasets.synthetic_cohort(n_patients=20, n_genes=250))


# ---------------------------------------------------------------------------------------------- adapted layouts
def _cohort_without(genes_to_keep=None, drop_mods=()):
    full = cfmd.datasets.synthetic_cohort(n_patients=40, n_genes=300, seed=1)
    mods = {name: adata.copy() for name, adata in full.mod.items() if name not in drop_mods}
    if genes_to_keep is not None:
        mods["rna"] = mods["rna"][:, genes_to_keep].copy()
    mdata = md.MuData(mods)
    mdata.obs["cancer_type"] = full.obs.loc[mdata.obs_names, "cancer_type"].to_numpy()
    return mdata


def test_adapted_layout_drops_empty_pathway_blocks_and_prolif():
    mdata = _cohort_without()
    assert LatentLayout.adapted_to(mdata, modalities=cfmd.models.DEFAULT_MODALITIES) == LatentLayout.cfmd328()
    sets = cfmd.datasets.hallmark_gene_sets()
    symbols = mdata["rna"].var["gene_symbol"].astype(str)
    first = list(sets)[0]
    prolif = set(cfmd.datasets.proliferation_signature())
    keep = ~symbols.isin(set(sets[first]) | prolif).to_numpy()
    trimmed = _cohort_without(keep)
    with pytest.warns(UserWarning) as record:
        layout = LatentLayout.adapted_to(trimmed, modalities=cfmd.models.DEFAULT_MODALITIES)
    messages = " ".join(str(w.message) for w in record)
    assert first in messages and "'prolif' dropped" in messages
    assert "prolif" not in layout and first not in layout["pathway"].groups
    assert layout["pathway"].dim == 4 * len(layout["pathway"].groups) == 4 * (len(sets) - 1)
    assert layout.names == ["pathway", "ctx", "residual", "meth", "cnv"] and layout.n_dims == 328 - 1 - 4


def test_adapted_layout_errors_on_unowned_slices():
    mdata = _cohort_without(drop_mods=["mut"])
    with pytest.raises(InvalidInputError, match=r"'ctx' \(31 dims"):
        LatentLayout.adapted_to(mdata, modalities={"meth": "meth", "cnv": "cnv"})
    with pytest.raises(InvalidInputError, match="'ctx'.*modality 'mut' absent"):
        LatentLayout.adapted_to(mdata, modalities=cfmd.models.DEFAULT_MODALITIES)
    with pytest.warns(UserWarning, match="'ctx' dropped"):
        layout = LatentLayout.adapted_to(mdata, modalities={"meth": "meth", "cnv": "cnv"}, drop_unowned=True)
    assert "ctx" not in layout and layout.n_dims == 328 - 31
    with pytest.raises(InvalidInputError, match="absent from the layout"):
        LatentLayout.adapted_to(mdata, modalities={"atac": "meth"})
    with pytest.raises(InvalidInputError, match="RNA modality 'expr'"):
        LatentLayout.adapted_to(mdata, modalities={}, rna_key="expr")


def test_fit_latent_adapts_the_default_layout(caplog):
    mdata = _cohort_without(drop_mods=["mut"])
    cfmd.tl.split_patients(mdata, seed=0)
    with caplog.at_level("INFO", logger="cfmd"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfmd.tl.fit_latent(mdata, max_epochs=1, train_kwargs=QUIET)
    assert "does not fit the data" in caplog.text and "dropped ctx" in caplog.text
    assert any("'ctx' dropped" in str(w.message) for w in caught)
    layout = LatentLayout.from_mudata(mdata, "X_structured")
    assert "ctx" not in layout and mdata.obsm["X_structured"].shape[1] == 297
    assert list(mdata.uns["X_structured"]["modality_slices"]) == ["meth", "cnv"]
    # explicit modalities that leave a slice ownerless: an error naming it, mdata unchanged
    fresh = _cohort_without(drop_mods=["mut"])
    before = deep_copy(fresh)
    with pytest.raises(InvalidInputError, match="'ctx'"):
        cfmd.tl.fit_latent(fresh, modalities={"meth": "meth", "cnv": "cnv"}, max_epochs=1)
    assert_mudata_unchanged(before, fresh)
