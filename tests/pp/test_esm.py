"""cfmd.pp.esm_gene_embeddings with a tiny random fair-esm ESM-2 checkpoint, against fair-esm's extract.py recipe."""

from __future__ import annotations

import argparse
import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import save_file

import cfmd
from cfmd import InvalidInputError
from cfmd.datasets import tiny_esm2_checkpoint

N_LAYERS = 2


class Payload:
    """An arbitrary object: a checkpoint holding it must never be unpickled."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_esm2_checkpoint(tmp_path_factory.mktemp("esm"), n_layers=N_LAYERS, embed_dim=32, attention_heads=4)


@pytest.fixture(scope="module")
def genes():
    rna = cfmd.datasets.synthetic_cohort(n_patients=10, n_genes=300, n_cancer_types=2, seed=11)["rna"]
    lengths = rna.var["protein_sequence"].str.len().to_numpy()
    chosen = np.sort(np.concatenate([[np.argmax(lengths)], np.argsort(lengths)[:23]]))  # 1 long (> 1,022), 23 short
    return rna[:, chosen].copy()


@pytest.fixture
def rna(genes):
    return genes.copy()


def write_fasta(path, names, sequences):
    with open(path, "w") as fh:
        for name, seq in zip(names, sequences):
            fh.write(f">{name}\n")
            fh.writelines(seq[j : j + 60] + "\n" for j in range(0, len(seq), 60))
    return path


def extract_py_recipe(checkpoint, fasta, layer, toks_per_batch=4096, truncation_seq_length=1022):
    """fair-esm's scripts/extract.py --include mean, written out (no files written)."""
    import esm

    with torch.serialization.safe_globals([argparse.Namespace]):
        model, alphabet = esm.pretrained.load_model_and_alphabet(str(checkpoint))
    model.eval()
    dataset = esm.FastaBatchedDataset.from_file(fasta)
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(truncation_seq_length), batch_sampler=batches
    )
    repr_layer = (layer + model.num_layers + 1) % (model.num_layers + 1)
    out = {}
    with torch.no_grad():
        for labels, strs, toks in loader:
            representations = model(toks, repr_layers=[repr_layer])["representations"][repr_layer]
            for i, label in enumerate(labels):
                truncate_len = min(truncation_seq_length, len(strs[i]))
                out[label] = representations[i, 1 : truncate_len + 1].mean(0).numpy()
    return out


@pytest.mark.parametrize("layer", [-1, 1, 0])
def test_equals_fair_esm_extract_recipe(tmp_path, checkpoint, rna, layer):
    sequences = rna.var["protein_sequence"]
    assert sequences.str.len().max() > 1022  # the truncation path is exercised
    fasta = write_fasta(tmp_path / "p.fasta", rna.var_names, sequences)
    expected = extract_py_recipe(checkpoint, fasta, layer)
    cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, fasta=fasta, layer=layer, progress=False)
    got = rna.varm["X_esm2"]
    assert got.shape == (rna.n_vars, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.vstack([expected[g] for g in rna.var_names]), atol=2e-5, rtol=1e-4)
    info = rna.uns["X_esm2"]
    assert info["layer"] == layer % (N_LAYERS + 1) and info["n_sequences_truncated"] == 1
    assert info["coverage"] == 1.0 and info["model_name"] == checkpoint.stem and info["d_e"] == 32
    assert rna.var["X_esm2_available"].all()


def test_small_batches_and_var_column_and_uniprot_headers(tmp_path, checkpoint, rna):
    fasta = tmp_path / "p.fasta.gz"
    with gzip.open(fasta, "wt") as fh:
        for i, (name, seq) in enumerate(zip(rna.var_names, rna.var["protein_sequence"])):
            fh.write(f">sp|P{i:05d}|X_HUMAN Protein OS=Homo sapiens GN={name} PE=1 SV=1\n{seq}*\n")
    from_fasta = cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, fasta=fasta, copy=True, progress=False)
    from_var = cfmd.pp.esm_gene_embeddings(
        rna, checkpoint=checkpoint, sequence_key="protein_sequence", toks_per_batch=600, copy=True, progress=False
    )
    np.testing.assert_allclose(from_fasta.varm["X_esm2"], from_var.varm["X_esm2"], atol=2e-5)
    assert "X_esm2" not in rna.varm


def test_partial_coverage_nan_rows_and_shared_sequences(checkpoint, rna):
    sequences = rna.var["protein_sequence"].astype(object).copy()
    sequences.iloc[[2, 5]] = [None, ""]
    sequences.iloc[7] = sequences.iloc[8]  # identical sequences: embedded once, same embedding
    rna.var["seq"] = sequences
    cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, sequence_key="seq", progress=False)
    available = rna.var["X_esm2_available"].to_numpy()
    assert available.sum() == rna.n_vars - 2 and not available[2] and not available[5]
    assert np.isnan(rna.varm["X_esm2"][[2, 5]]).all() and np.isfinite(rna.varm["X_esm2"][available]).all()
    np.testing.assert_array_equal(rna.varm["X_esm2"][7], rna.varm["X_esm2"][8])
    assert rna.uns["X_esm2"]["n_genes_matched"] == rna.n_vars - 2


@pytest.mark.parametrize("fmt", ["tsv", "npz", "safetensors", "safetensors-per-gene"])
def test_precomputed_tables(tmp_path, rna, fmt):
    rng = np.random.default_rng(0)
    names = list(rna.var_names[:10]) + ["NOT_IN_DATA"]
    values = rng.standard_normal((len(names), 6)).astype(np.float32)
    if fmt == "tsv":
        path = tmp_path / "emb.tsv.gz"
        pd.DataFrame(values, index=pd.Index(names, name="gene")).to_csv(path, sep="\t")
    elif fmt == "npz":
        path = tmp_path / "emb.npz"
        np.savez(path, genes=np.array(names), embeddings=values)
    elif fmt == "safetensors":
        path = tmp_path / "emb.safetensors"
        save_file({"embeddings": values}, str(path), metadata={"genes": json.dumps(names)})
    else:
        path = tmp_path / "emb.safetensors"
        save_file(dict(zip(names, values)), str(path))
    cfmd.pp.esm_gene_embeddings(rna, table=path, key_added="X_table")
    np.testing.assert_allclose(rna.varm["X_table"][:10], values[:10], rtol=1e-6)
    assert np.isnan(rna.varm["X_table"][10:]).all()
    assert rna.var["X_table_available"].sum() == 10
    assert rna.uns["X_table"]["source"] == "table" and rna.uns["X_table"]["coverage"] == pytest.approx(10 / rna.n_vars)


def test_cache_hit_skips_the_model(tmp_path, checkpoint, rna, monkeypatch):
    cache = tmp_path / "cache"
    a = cfmd.pp.esm_gene_embeddings(
        rna, checkpoint=checkpoint, sequence_key="protein_sequence", cache_dir=cache, copy=True, progress=False
    )
    assert a.uns["X_esm2"]["cache"] == "miss"

    def no_forward(*args, **kwargs):
        raise AssertionError("no forward pass on a cache hit")

    monkeypatch.setattr(cfmd.pp._esm, "embed_sequences", no_forward)
    b = cfmd.pp.esm_gene_embeddings(
        rna, checkpoint=checkpoint, sequence_key="protein_sequence", cache_dir=cache, copy=True, progress=False
    )
    assert b.uns["X_esm2"]["cache"] == "hit"
    np.testing.assert_array_equal(a.varm["X_esm2"], b.varm["X_esm2"])


def test_cpu_determinism(checkpoint, rna):
    kwargs = {"checkpoint": checkpoint, "sequence_key": "protein_sequence", "copy": True, "progress": False}
    a = cfmd.pp.esm_gene_embeddings(rna, device="cpu", **kwargs)
    b = cfmd.pp.esm_gene_embeddings(rna, device="cpu", **kwargs)
    np.testing.assert_array_equal(a.varm["X_esm2"], b.varm["X_esm2"])


# ---------------------------------------------------------------------- bad input: clear error, object untouched


def snapshot(adata):
    return set(adata.varm.keys()), set(adata.uns.keys()), list(adata.var.columns)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (">A\nMKV\n>B\nMKL\n>A\nMKT\n", r"record 'A' \(line 5\): duplicate"),
        (">A\nMKV\n>B\n>C\nMKT\n", r"record 'B' \(line 3\): empty record"),
        (">sp|P1|X GN=TP53\nMKV\n>sp|P2|Y GN=TP53\nMKL\n", "duplicate"),
        (">A\nMKV1\n", "cannot encode"),
        ("MKV\n>A\nMKV\n", "before the first"),
        ("", "no FASTA records"),
        (">\nMKV\n", "without an identifier"),
    ],
)
def test_bad_fasta(tmp_path, checkpoint, rna, content, match):
    fasta = tmp_path / "bad.fasta"
    fasta.write_text(content)
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match=match) as err:
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, fasta=fasta)
    assert "bad.fasta" in str(err.value)
    assert snapshot(rna) == before


def test_bad_checkpoints(tmp_path, checkpoint, rna):
    fasta = write_fasta(tmp_path / "p.fasta", rna.var_names, rna.var["protein_sequence"])
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match="not found"):
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=tmp_path / "esm2_t33_650M_UR50D.pt", fasta=fasta)
    renamed = tmp_path / "my_model.pt"
    renamed.write_bytes(checkpoint.read_bytes())
    with pytest.raises(InvalidInputError, match="starting with 'esm2'"):
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=renamed, fasta=fasta)
    unsafe = tmp_path / "esm2_t2_unsafe.pt"
    torch.save({"model": {"x": Payload()}, "cfg": {}}, unsafe)
    with pytest.raises(InvalidInputError, match="esm2_t2_unsafe.pt"):
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=unsafe, fasta=fasta)
    not_esm = tmp_path / "esm2_t2_tensor.pt"
    torch.save({"weights": torch.zeros(3)}, not_esm)
    with pytest.raises(InvalidInputError, match="not a fair-esm ESM-2 checkpoint"):
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=not_esm, fasta=fasta)
    assert snapshot(rna) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sequence_key": "protein_sequence", "gene_key": "ensembl_id", "fasta": "FASTA"}, "exactly one of"),
        ({"fasta": "FASTA", "gene_key": "ensembl_id"}, "No gene of adata.var\\['ensembl_id'\\]"),
        ({"sequence_key": "protein_sequence", "layer": 3}, "`layer` must be an integer in"),
        ({"sequence_key": "nope"}, "no column 'nope'"),
        ({"sequence_key": "protein_sequence", "toks_per_batch": 0}, "toks_per_batch"),
        ({"sequence_key": "protein_sequence", "table": "TABLE"}, "either `table=`"),
    ],
)
def test_bad_options(tmp_path, checkpoint, rna, kwargs, match):
    fasta = write_fasta(tmp_path / "p.fasta", rna.var_names, rna.var["protein_sequence"])
    kwargs = {k: (fasta if v == "FASTA" else v) for k, v in kwargs.items()}
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match=match):
        cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, progress=False, **kwargs)
    assert snapshot(rna) == before


def test_bad_tables(tmp_path, rna):
    before = snapshot(rna)
    dup = tmp_path / "dup.tsv"
    pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=[rna.var_names[0]] * 2).to_csv(dup, sep="\t")
    with pytest.raises(InvalidInputError, match="duplicated"):
        cfmd.pp.esm_gene_embeddings(rna, table=dup)
    nan = tmp_path / "nan.npz"
    np.savez(nan, genes=np.array([rna.var_names[0]]), embeddings=np.array([[np.nan, 1.0]]))
    with pytest.raises(InvalidInputError, match="non-finite"):
        cfmd.pp.esm_gene_embeddings(rna, table=nan)
    none = tmp_path / "none.npz"
    np.savez(none, genes=np.array(["XYZ"]), embeddings=np.ones((1, 2)))
    with pytest.raises(InvalidInputError, match="No gene of adata.var_names"):
        cfmd.pp.esm_gene_embeddings(rna, table=none)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, genes=np.array([rna.var_names[0]], dtype=object), embeddings=np.ones((1, 2)))
    with pytest.raises(InvalidInputError, match="unpickling"):
        cfmd.pp.esm_gene_embeddings(rna, table=pickled)
    (tmp_path / "emb.parquet").write_bytes(b"PAR1")
    with pytest.raises(InvalidInputError, match=r"must be \.tsv"):
        cfmd.pp.esm_gene_embeddings(rna, table=tmp_path / "emb.parquet")
    assert snapshot(rna) == before
