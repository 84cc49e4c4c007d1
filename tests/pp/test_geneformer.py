"""cfmd.pp.geneformer on tiny random checkpoints in Geneformer's real on-disk format."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import anndata as ad
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import cfmd
from cfmd import InvalidInputError
from cfmd.datasets import tiny_geneformer_checkpoint

N_LAYERS = 3


class Payload:
    """An arbitrary object: a checkpoint holding it must never be unpickled."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_geneformer_checkpoint(tmp_path_factory.mktemp("gf") / "v1", n_layers=N_LAYERS, hidden_size=32)


@pytest.fixture(scope="module")
def tokenised():
    rna = cfmd.datasets.synthetic_cohort(n_patients=24, n_genes=300, n_cancer_types=2, seed=5)["rna"]
    cfmd.pp.tokenize(rna, model_input_size=96)  # short sequences keep the test fast
    rna.obs.loc[rna.obs_names[:6], "geneformer_tokens_length"] = [10, 20, 40, 60, 80, 90]  # varied lengths
    return rna


@pytest.fixture
def rna(tokenised):
    return tokenised.copy()


def snapshot(adata):
    return set(adata.obsm.keys()), set(adata.uns.keys()), list(adata.obs.columns)


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def bert_by_hand(folder, tokens: np.ndarray, lengths: np.ndarray, n_layers: int) -> torch.Tensor:
    """BERT forward in plain float64 torch from the safetensors file: hidden state after ``n_layers`` layers."""
    config = json.loads((folder / "config.json").read_text())
    state = {k: v.double() for k, v in load_file(folder / "model.safetensors").items()}
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    ids = torch.from_numpy(tokens.astype(np.int64))
    batch, width = ids.shape
    x = (
        state["bert.embeddings.word_embeddings.weight"][ids]
        + state["bert.embeddings.position_embeddings.weight"][:width][None]
        + state["bert.embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, state["bert.embeddings.LayerNorm.weight"], state["bert.embeddings.LayerNorm.bias"], eps)
    key_is_real = torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]
    for layer in range(n_layers):

        def p(name, layer=layer):
            return state[f"bert.encoder.layer.{layer}.{name}"]

        def linear(h, name):
            return h @ p(f"{name}.weight").T + p(f"{name}.bias")

        def split(h):
            return h.view(batch, width, heads, -1).transpose(1, 2)

        q, k, v = (split(linear(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~key_is_real[:, None, None, :], float("-inf"))
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, width, -1)
        attended = linear(context, "attention.output.dense")
        x = _layer_norm(x + attended, p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias"), eps)
        hidden = linear(torch.relu(linear(x, "intermediate.dense")), "output.dense")
        x = _layer_norm(x + hidden, p("output.LayerNorm.weight"), p("output.LayerNorm.bias"), eps)
    return x


def mean_pool_by_hand(hidden: torch.Tensor, keep: np.ndarray) -> np.ndarray:
    weights = torch.from_numpy(keep.astype(np.float64))
    return ((hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)).numpy()


def real_positions(rna, key="geneformer_tokens") -> np.ndarray:
    lengths = rna.obs[f"{key}_length"].to_numpy()
    return np.arange(rna.obsm[key].shape[1])[None, :] < lengths[:, None]


@pytest.mark.parametrize(("layer", "n_run"), [(-2, N_LAYERS - 1), (-1, N_LAYERS), (0, 0), (1, 1)])
def test_equals_hand_written_forward_and_pooling(checkpoint, rna, layer, n_run):
    cfmd.pp.geneformer(rna, checkpoint, layer=layer, batch_size=5, progress=False)
    lengths = rna.obs["geneformer_tokens_length"].to_numpy()
    hidden = bert_by_hand(checkpoint, rna.obsm["geneformer_tokens"], lengths, n_run)
    expected = mean_pool_by_hand(hidden, real_positions(rna))
    np.testing.assert_allclose(rna.obsm["X_geneformer"], expected, atol=2e-5, rtol=1e-4)
    assert rna.obsm["X_geneformer"].dtype == np.float32
    info = rna.uns["X_geneformer"]
    assert info["layer"] == n_run and info["layer_requested"] == layer and info["n_layers_total"] == N_LAYERS
    assert info["weights_sha256"] == hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads(info["config"])["num_hidden_layers"] == N_LAYERS
    assert info["pooling"] == "mean" and info["cache"] == "off"


def test_matches_geneformer_extractor_recipe(checkpoint, rna):
    """Geneformer's EmbExtractor: full BertForMaskedLM, hidden_states[n_layers + emb_layer], emb_layer=-1."""
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(checkpoint, output_hidden_states=True, local_files_only=True).eval()
    ids = torch.from_numpy(rna.obsm["geneformer_tokens"].astype(np.int64))
    lengths = torch.from_numpy(rna.obs["geneformer_tokens_length"].to_numpy())
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).hidden_states[N_LAYERS - 1]
    expected = ((hidden * mask[..., None]).sum(1) / lengths[:, None]).numpy()
    cfmd.pp.geneformer(rna, checkpoint, progress=False)  # default layer: Geneformer's default
    np.testing.assert_allclose(rna.obsm["X_geneformer"], expected, atol=2e-5, rtol=1e-4)


def test_v2_excludes_special_tokens_and_cls_pooling(tmp_path, rna):
    folder = tiny_geneformer_checkpoint(tmp_path / "v2", version="V2", n_layers=2, hidden_size=16)
    cfmd.pp.tokenize(
        rna,
        version="V2",
        model_input_size=64,
        token_dictionary=folder / "token_dictionary.tsv",
        gene_medians=folder / "gene_median.tsv",
    )
    tokens, lengths = rna.obsm["geneformer_tokens"], rna.obs["geneformer_tokens_length"].to_numpy()
    hidden = bert_by_hand(folder, tokens, lengths, 1)
    genes_only = real_positions(rna) & (tokens != 2) & (tokens != 3)
    assert np.all(genes_only.sum(1) == lengths - 2)
    cfmd.pp.geneformer(rna, folder, layer=-2, progress=False)
    np.testing.assert_allclose(rna.obsm["X_geneformer"], mean_pool_by_hand(hidden, genes_only), atol=2e-5)
    cfmd.pp.geneformer(rna, folder, layer=-2, pooling="cls", key_added="X_cls", progress=False)
    np.testing.assert_allclose(rna.obsm["X_cls"], hidden[:, 0].numpy(), atol=2e-5)


def test_cache_hit_skips_the_model(tmp_path, checkpoint, rna, monkeypatch):
    cache = tmp_path / "cache"
    cfmd.pp.geneformer(rna, checkpoint, cache_dir=cache, progress=False)
    first = rna.obsm["X_geneformer"].copy()
    assert rna.uns["X_geneformer"]["cache"] == "miss" and len(list(cache.glob("geneformer_*.npy"))) == 1

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded on a cache hit")

    monkeypatch.setattr(cfmd.pp._geneformer, "_load_encoder", no_model)
    cfmd.pp.geneformer(rna, checkpoint, cache_dir=cache, progress=False)
    assert rna.uns["X_geneformer"]["cache"] == "hit"
    np.testing.assert_array_equal(rna.obsm["X_geneformer"], first)
    with pytest.raises(AssertionError, match="must not be loaded"):  # other layer or tokens: a miss
        cfmd.pp.geneformer(rna, checkpoint, cache_dir=cache, layer=-1, progress=False)
    rna.obsm["geneformer_tokens"] = rna.obsm["geneformer_tokens"].copy()
    rna.obsm["geneformer_tokens"][0, 0] = 5
    with pytest.raises(AssertionError, match="must not be loaded"):
        cfmd.pp.geneformer(rna, checkpoint, cache_dir=cache, progress=False)


def test_cpu_determinism_and_batch_size(checkpoint, rna):
    a = cfmd.pp.geneformer(rna, checkpoint, batch_size=4, device="cpu", progress=False, copy=True)
    b = cfmd.pp.geneformer(rna, checkpoint, batch_size=4, device="cpu", progress=False, copy=True)
    np.testing.assert_array_equal(a.obsm["X_geneformer"], b.obsm["X_geneformer"])
    c = cfmd.pp.geneformer(rna, checkpoint, batch_size=1, device="cpu", progress=False, copy=True)
    np.testing.assert_allclose(a.obsm["X_geneformer"], c.obsm["X_geneformer"], atol=1e-5)
    assert "X_geneformer" not in rna.obsm  # copy=True leaves the input alone


def test_bin_weights_load_like_safetensors(tmp_path, checkpoint, rna):
    folder = tiny_geneformer_checkpoint(
        tmp_path / "bin", n_layers=N_LAYERS, hidden_size=32, weights_format="bin", seed=0
    )
    assert (folder / "pytorch_model.bin").is_file() and not (folder / "model.safetensors").exists()
    a = cfmd.pp.geneformer(rna, checkpoint, progress=False, copy=True)
    b = cfmd.pp.geneformer(rna, folder, progress=False, copy=True)
    np.testing.assert_array_equal(a.obsm["X_geneformer"], b.obsm["X_geneformer"])
    assert b.uns["X_geneformer"]["weights_file"] == "pytorch_model.bin"


def test_uns_survives_h5ad(tmp_path, checkpoint, rna):
    cfmd.pp.geneformer(rna, checkpoint, progress=False)
    rna.write_h5ad(tmp_path / "x.h5ad")
    back = ad.read_h5ad(tmp_path / "x.h5ad")
    assert back.uns["X_geneformer"]["weights_sha256"] == rna.uns["X_geneformer"]["weights_sha256"]


# ---------------------------------------------------------------------- bad input: clear error, object untouched


def _copy_checkpoint(checkpoint, tmp_path, drop=()):
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint, folder)
    for name in drop:
        (folder / name).unlink()
    return folder


def test_missing_files_are_named(tmp_path, checkpoint, rna):
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match="missing config.json"):
        cfmd.pp.geneformer(rna, _copy_checkpoint(checkpoint, tmp_path / "a", drop=["config.json"]))
    with pytest.raises(InvalidInputError, match="model.safetensors or pytorch_model.bin"):
        cfmd.pp.geneformer(rna, _copy_checkpoint(checkpoint, tmp_path / "b", drop=["model.safetensors"]))
    with pytest.raises(InvalidInputError, match="does not exist"):
        cfmd.pp.geneformer(rna, tmp_path / "nowhere")
    assert snapshot(rna) == before


def test_vocabulary_mismatch(tmp_path, rna):
    folder = tiny_geneformer_checkpoint(tmp_path / "v2", version="V2", n_layers=1, hidden_size=16)
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match=r"25426 tokens .* vocab_size 25428"):
        cfmd.pp.geneformer(rna, folder)  # V1 tokens, V2 model
    assert snapshot(rna) == before


def test_pickled_objects_are_refused(tmp_path, checkpoint, rna):
    folder = _copy_checkpoint(checkpoint, tmp_path, drop=["model.safetensors"])
    torch.save({"bert.embeddings.word_embeddings.weight": Payload()}, folder / "pytorch_model.bin")
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match="pytorch_model.bin"):
        cfmd.pp.geneformer(rna, folder, progress=False)
    assert snapshot(rna) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer": N_LAYERS + 1}, "`layer` must be an integer in"),
        ({"layer": -(N_LAYERS + 2)}, "`layer` must be an integer in"),
        ({"pooling": "cls"}, "pooling='cls'"),
        ({"pooling": "max"}, "pooling"),
        ({"batch_size": 0}, "batch_size"),
        ({"tokens_key": "absent"}, "run cfmd.pp.tokenize"),
        ({"device": "tpu:7"}, "device"),
        ({"cache_dir": 3}, "cache_dir"),
    ],
)
def test_bad_options(checkpoint, rna, kwargs, match):
    before = snapshot(rna)
    with pytest.raises(InvalidInputError, match=match):
        cfmd.pp.geneformer(rna, checkpoint, progress=False, **kwargs)
    assert snapshot(rna) == before


def test_tokens_longer_than_the_model_accepts(tmp_path, checkpoint, rna):
    folder = _copy_checkpoint(checkpoint, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 32}))
    with pytest.raises(InvalidInputError, match="max_position_embeddings"):
        cfmd.pp.geneformer(rna, folder)
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(InvalidInputError, match="BERT"):
        cfmd.pp.geneformer(rna, folder)
