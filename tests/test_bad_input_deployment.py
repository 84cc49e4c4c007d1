"""Bad input when deploying or training: a clear error naming the field, and the caller's MuData unchanged."""

from __future__ import annotations

import mudata as md
import numpy as np
import pytest
import torch
from _helpers import assert_mudata_unchanged, snapshot, tiny_cfmd, tiny_cohort

import cfmd
from cfmd import InvalidInputError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    mdata = tiny_cohort()
    model = tiny_cfmd(mdata.copy())
    folder = tmp_path_factory.mktemp("bad_input") / "cfmd"
    model.save(folder)
    return mdata, folder


def _rna_only(mdata, genes=slice(None)):
    return md.MuData({"rna": mdata["rna"][:30, genes].copy()})


def _fails_unchanged(mdata, match, **kwargs):
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match=match):
        cfmd.tl.impute(mdata, **kwargs)
    assert_mudata_unchanged(before, mdata)
    assert "X_cfmd" not in mdata.obsm


def test_defect2_new_patients_without_the_teacher_embedding(trained):
    """Defect 2: RNA-only new patients need no latent, but do need the model's Geneformer input."""
    mdata, folder = trained
    new = _rna_only(mdata)
    del new["rna"].obsm["transcriptomic_context"]
    _fails_unchanged(new, r"mdata\['rna'\]\.obsm has no Geneformer embedding 'transcriptomic_context'", model=folder)


def test_defect3_renamed_genes_below_the_minimum_overlap(trained):
    """Defect 3: genes are matched by name; too few shared genes is an error naming var_names (not the latent)."""
    mdata, folder = trained
    rna = mdata["rna"][:30].copy()
    rna.var_names = [f"renamed_{g}" for g in rna.var_names]
    new = md.MuData({"rna": rna})
    _fails_unchanged(new, r"mdata\['rna'\]\.var_names has 0 of the 300 genes .*`min_gene_overlap` is 50%", model=folder)


def test_defect4_crafted_pickle_runs_nothing(trained, tmp_path):
    """Defect 4: a model.pt whose unpickling would run code is refused without being read."""
    mdata, _ = trained
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "crafted"
    folder.mkdir()
    torch.save({"attr_dict": Payload()}, folder / "model.pt")
    _fails_unchanged(_rna_only(mdata), r"crafted/model\.pt' is a pickle .*does not unpickle model files", model=folder)
    assert not marker.exists()


def test_defect7_truncated_model_files(trained, tmp_path):
    """Defect 7: truncated weights name the file and the expected format."""
    import shutil

    mdata, folder = trained
    broken = tmp_path / "truncated"
    shutil.copytree(folder, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[:100])
    _fails_unchanged(
        _rna_only(mdata), r"truncated/model\.safetensors' is not a readable safetensors file", model=broken
    )


def test_defect9_empty_folder_and_wrong_prefix(trained, tmp_path):
    """Defect 9: an empty folder or a prefix mismatch says what was expected."""
    mdata, folder = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails_unchanged(_rna_only(mdata), r"is empty; expected model\.safetensors and model\.json", model=empty)
    _fails_unchanged(
        _rna_only(mdata),
        r"no other_model\.safetensors and other_model\.json \(prefix='other_'\); it holds a model saved with prefix "
        r"None \(no prefix\)",
        model=folder,
        prefix="other_",
    )


def test_defect6_mistyped_split_key(trained):
    """Defect 6: a split key that is not a column is an error naming it and the columns (no silent new split)."""
    mdata, _ = trained
    cohort = mdata.copy()
    _fails_unchanged(
        cohort,
        r"`split_key` 'cfmd_splt' is not a column of mdata\.obs \(columns: .*'cancer_type'",
        split_key="cfmd_splt",
    )


def test_infinite_latent_is_reported_as_infinite(trained):
    """An infinite latent value is "infinite", not "some but not all values NaN"."""
    mdata, _ = trained
    cohort = mdata.copy()
    latent = np.array(cohort.obsm["X_structured"], copy=True)
    latent[3, 5] = np.inf
    cohort.obsm["X_structured"] = latent
    _fails_unchanged(cohort, r"mdata\.obsm\['X_structured'\] has infinite values in 1 row\(s\) \('P00003'\)")
