"""Train once, apply anywhere: saved models on new RNA-only patients, genes matched by name, safe loading."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import mudata as md
import numpy as np
import pytest
from _helpers import QUIET, tiny_cfmd, tiny_cohort

import cfmd
from cfmd import InvalidInputError
from cfmd.models import CFMD, LatentRegressor, StructuredVAE
from cfmd.models._deploy import padding_values

#: A fresh process may reduce sums in another order (threads, BLAS): latents agree to float32 rounding.
FRESH_PROCESS_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    mdata = tiny_cohort()
    model = tiny_cfmd(mdata, fill="all")
    folder = tmp_path_factory.mktemp("deploy") / "cfmd"
    model.save(folder)
    return mdata, model, folder


def _new_patients(mdata, *, n=40, drop=0.1, seed=0):
    """RNA only (no latent, no other modality) of ``n`` patients, genes shuffled, ``drop`` of them missing."""
    rng = np.random.default_rng(seed)
    rna = mdata["rna"]
    genes = rng.permutation(rna.n_vars)[: int(round(rna.n_vars * (1 - drop)))]
    return md.MuData({"rna": rna[:n, genes].copy()})


@pytest.mark.slow
def test_fresh_process_deploys_on_shuffled_genes_with_missing_ones(saved, tmp_path):
    mdata, model, folder = saved
    new = _new_patients(mdata)
    new.write(tmp_path / "new.h5mu")
    script = f"""
import warnings, json, numpy as np, mudata as md, cfmd
new = md.read_h5mu({str(tmp_path / "new.h5mu")!r})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cfmd.tl.impute(new, model={str(folder)!r}, fill="all")
np.save({str(tmp_path / "latent.npy")!r}, new.obsm["X_cfmd"])
json.dump([str(w.message) for w in caught if issubclass(w.category, UserWarning)],
          open({str(tmp_path / "warnings.json")!r}, "w"))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    fresh = np.load(tmp_path / "latent.npy")
    messages = json.loads((tmp_path / "warnings.json").read_text())
    assert any("lacks 30 of the 300 genes" in m and "training mean" in m for m in messages), messages
    with pytest.warns(UserWarning, match="lacks 30 of the 300 genes"):
        in_memory = model.get_imputed_latent(new)
    np.testing.assert_allclose(fresh, in_memory, **FRESH_PROCESS_TOL)
    assert fresh.shape == (40, 328)


def test_reordered_genes_give_the_same_latent(saved):
    mdata, model, folder = saved
    order = np.random.default_rng(1).permutation(mdata["rna"].n_vars)
    reordered = md.MuData({"rna": mdata["rna"][:, order].copy()})
    original = md.MuData({"rna": mdata["rna"].copy()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing missing: no warning
        loaded = CFMD.load(folder, adata=reordered)
        got = loaded.get_imputed_latent(reordered)
    np.testing.assert_allclose(got, model.get_imputed_latent(original), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.get_imputed_latent(reordered), got, rtol=1e-6, atol=1e-6)


def test_padding_is_the_training_mean_in_normalised_units():
    rng = np.random.default_rng(0)
    present = rng.poisson(20, size=(5, 30)).astype(float)
    mean = np.log1p(rng.uniform(1, 50, size=4))
    pad = padding_values(present, mean, "counts")
    full = np.concatenate([present, pad], axis=1)
    log_cp10k = np.log1p(full / full.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(log_cp10k[:, 30:], np.broadcast_to(mean, (5, 4)), rtol=1e-10)
    np.testing.assert_array_equal(padding_values(present, mean, "log2"), np.broadcast_to(mean, (5, 4)))


def test_impute_from_folder_records_the_split_and_survives_h5mu(saved, tmp_path):
    mdata, model, folder = saved
    new = _new_patients(mdata, drop=0.0)
    model_ = cfmd.tl.impute(new, model=folder)
    assert "X_structured" not in new.obsm
    split = new.uns["X_cfmd"]["split"]
    assert {k: list(v) for k, v in split.items()} == {k: [str(x) for x in v] for k, v in model.split_.items()}
    assert model_.split_.keys() == model.split_.keys()
    new.write(tmp_path / "out.h5mu")
    back = md.read_h5mu(tmp_path / "out.h5mu").uns["X_cfmd"]["split"]
    assert {k: [str(x) for x in v] for k, v in back.items()} == {k: list(v) for k, v in split.items()}
    np.testing.assert_array_equal(new.obsm["X_cfmd"], mdata.obsm["X_cfmd"][:40])


def test_prefix_round_trip_and_wrong_prefix(saved, tmp_path):
    mdata, model, _ = saved
    model.save(tmp_path, prefix="run1_")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1_model.json", "run1_model.safetensors"]
    other = mdata.copy()
    cfmd.tl.impute(other, model=tmp_path, prefix="run1_", fill="all")
    np.testing.assert_array_equal(other.obsm["X_cfmd"], mdata.obsm["X_cfmd"])
    with pytest.raises(InvalidInputError, match=r"saved with prefix 'run1_': pass that `prefix=`"):
        CFMD.load(tmp_path, adata=mdata)
    with pytest.raises(InvalidInputError, match="already holds a saved model"):
        model.save(tmp_path, prefix="run1_")


def test_crafted_model_pt_executes_nothing(saved, tmp_path):
    mdata, _, _ = saved
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import torch

    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"model_state_dict": Payload()}, folder / "model.pt")
    assert not marker.exists()
    with pytest.raises(InvalidInputError, match=r"model\.pt'? is a pickle.*does not unpickle"):
        CFMD.load(folder, adata=mdata)
    with pytest.raises(InvalidInputError, match="does not unpickle"):
        cfmd.tl.impute(mdata.copy(), model=folder)
    assert not marker.exists()


def test_corrupt_truncated_and_missing_files(saved, tmp_path):
    mdata, _, folder = saved
    import shutil

    def copy(name):
        target = tmp_path / name
        shutil.copytree(folder, target)
        return target

    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"model\.safetensors' is not a readable safetensors file"):
        CFMD.load(truncated, adata=mdata)
    garbage = copy("garbage")
    (garbage / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(InvalidInputError, match=r"model\.safetensors' is not a readable safetensors file"):
        CFMD.load(garbage, adata=mdata)
    bad_json = copy("bad_json")
    (bad_json / "model.json").write_text("{ truncated", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"model\.json' is not a readable cfmd model description"):
        CFMD.load(bad_json, adata=mdata)
    no_tensors = copy("no_tensors")
    (no_tensors / "model.safetensors").unlink()
    with pytest.raises(InvalidInputError, match=r"lacks model\.safetensors; expected model\.safetensors and model"):
        CFMD.load(no_tensors, adata=mdata)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="is empty; expected model.safetensors and model.json"):
        CFMD.load(empty, adata=mdata)
    with pytest.raises(InvalidInputError, match="does not exist or is not a directory"):
        CFMD.load(tmp_path / "nowhere", adata=mdata)
    with pytest.raises(InvalidInputError, match="holds a 'CFMD' model; load it with that class, not StructuredVAE"):
        StructuredVAE.load(folder, adata=mdata)


def test_genes_below_the_minimum_overlap_are_a_clear_error(saved):
    mdata, model, folder = saved
    renamed = mdata["rna"].copy()
    renamed.var_names = [f"X{i}" for i in range(renamed.n_vars)]
    with pytest.raises(InvalidInputError, match=r"has 0 of the 300 genes .* `min_gene_overlap` is 50%"):
        model.get_imputed_latent(md.MuData({"rna": renamed}))
    half = md.MuData({"rna": mdata["rna"][:, :140].copy()})
    with pytest.raises(InvalidInputError, match=r"has 140 of the 300 genes"):
        CFMD.load(folder, adata=half)
    with pytest.warns(UserWarning, match="lacks 160 of the 300 genes"):
        CFMD.load(folder, adata=half, min_gene_overlap=0.4)


@pytest.mark.slow
def test_structured_vae_load_on_rna_only_new_patients(tmp_path):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300)
    vae = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs=QUIET)
    vae.save(tmp_path / "vae")
    new = _new_patients(mdata, drop=0.0)
    loaded = StructuredVAE.load(tmp_path / "vae", adata=new)
    got = loaded.get_latent_representation(new, modalities=["rna"])
    np.testing.assert_allclose(got, mdata.obsm["X_structured_rna_only"][:40], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, loaded.get_latent_representation(modalities=["rna"]))
    assert not loaded.patients_with_all_modalities().any()
    np.testing.assert_array_equal(
        StructuredVAE.load(tmp_path / "vae", adata=mdata).get_latent_representation(mdata),
        vae.get_latent_representation(mdata),
    )


def test_latent_regressor_load_on_rna_only_new_patients(saved, tmp_path):
    mdata, _, _ = saved
    train = mdata.copy()
    LatentRegressor.setup_mudata(train)
    regressor = LatentRegressor(train, n_hidden=16, n_layers=1, split_key=None)
    regressor.train(max_epochs=2, **QUIET)
    regressor.save(tmp_path / "mlp")
    new = _new_patients(mdata, drop=0.0)
    loaded = LatentRegressor.load(tmp_path / "mlp", adata=new)
    np.testing.assert_array_equal(loaded.get_imputed_latent(new), regressor.get_imputed_latent(train)[:40])
    assert {k: list(v) for k, v in loaded.split_.items()} == {k: list(v) for k, v in regressor.split_.items()}


def test_split_key_rules_and_a_single_log_line(saved, caplog):
    mdata, _, _ = saved
    other = mdata.copy()
    assert "cfmd_split" not in other.obs
    with pytest.raises(InvalidInputError, match=r"`split_key` 'cfmd_splt' is not a column of mdata.obs \(columns: "):
        cfmd.tl.impute(other, split_key="cfmd_splt")
    with caplog.at_level(logging.INFO, logger="cfmd"):
        model = tiny_cfmd(other, seed=42)  # default key absent: a split is drawn (seed 42: the default before 0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Patient split")]
    assert lines == [f"Patient split (drawn with seed 42): train {len(model.split_['train'])}, validation 10, test 10."]


def test_cli_applies_a_saved_model_to_rna_only_patients(saved, tmp_path):
    from cfmd._cli import main

    mdata, model, folder = saved
    new = _new_patients(mdata, drop=0.0)
    new.write(tmp_path / "new.h5mu")
    assert main(["impute", str(tmp_path / "new.h5mu"), "--model", str(folder), "--out", str(tmp_path / "o.h5mu")]) == 0
    result = md.read_h5mu(tmp_path / "o.h5mu")
    np.testing.assert_array_equal(result.obsm["X_cfmd"], mdata.obsm["X_cfmd"][:40])
    assert list(result.uns["X_cfmd"]["split"]["test"]) == [str(x) for x in model.split_["test"]]
