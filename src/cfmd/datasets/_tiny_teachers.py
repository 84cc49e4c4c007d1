"""Tiny, randomly initialised stand-in teachers in the real on-disk formats.

.. warning::

    **These are not Geneformer and not ESM-2.** They are random networks with the *file layout* of the real
    checkpoints, so that the loading paths, tests, the demo and the tutorials run on machines without the real
    weights (and without internet). Embeddings computed with them carry **no biological meaning whatsoever**;
    never report results obtained with them. See ``docs/teachers.md`` for using the real checkpoints.
"""

from __future__ import annotations

from argparse import Namespace
from os import PathLike
from pathlib import Path
from typing import Literal

from .._constants import DEFAULT_SEED
from .._validation import InvalidInputError, check_choice, check_positive_int

__all__ = ["TINY_TEACHER_NOTICE", "tiny_esm2_checkpoint", "tiny_geneformer_checkpoint"]

#: The label written into every tiny checkpoint (config field, README and file names say "tiny"/"random").
TINY_TEACHER_NOTICE = (
    "RANDOMLY INITIALISED STAND-IN TEACHER built by cfmd for tests and demos. It is NOT a trained foundation model: "
    "embeddings computed with it mean nothing biologically. Never report results obtained with it."
)


def tiny_geneformer_checkpoint(
    path: str | PathLike,
    *,
    version: Literal["V1", "V2"] = "V1",
    n_layers: int = 2,
    hidden_size: int = 64,
    n_heads: int = 2,
    intermediate_size: int | None = None,
    weights_format: Literal["safetensors", "bin"] = "safetensors",
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write a tiny random Geneformer-format checkpoint folder (a ``BertForMaskedLM``).

    The folder has what a real Geneformer checkpoint has: ``config.json`` plus ``model.safetensors`` (or
    ``pytorch_model.bin``, a plain tensor state dict). Architecture as Geneformer (BERT, ReLU activation,
    ``max_position_embeddings`` 2,048 for V1 / 4,096 for V2), but tiny and **randomly initialised**.

    - ``version="V1"``: the vocabulary is the shipped V1 (gc30M) token dictionary (25,426 tokens), so tokens from
      :func:`cfmd.pp.tokenize` with its defaults fit.
    - ``version="V2"``: V2 dictionaries are not shipped, so the folder also receives stand-in V2 dictionaries
      ``token_dictionary.tsv`` (``<pad>``, ``<mask>``, ``<cls>``, ``<eos>``, then the V1 genes) and
      ``gene_median.tsv`` (the V1 medians); pass them to ``cfmd.pp.tokenize(..., version="V2",
      token_dictionary=..., gene_medians=...)``.

    .. warning:: Random weights: results computed with this model mean nothing biologically.

    Parameters
    ----------
    path
        Folder to create (or overwrite files in).
    version
        ``"V1"`` or ``"V2"`` conventions (see above).
    n_layers
        Number of transformer layers.
    hidden_size
        Hidden size (a multiple of ``n_heads``).
    n_heads
        Attention heads.
    intermediate_size
        Feed-forward size; default ``2 * hidden_size`` (as Geneformer).
    weights_format
        ``"safetensors"`` (``model.safetensors``) or ``"bin"`` (``pytorch_model.bin``, a tensor-only state dict).
    seed
        Seed of the random initialisation (the global torch RNG is left untouched).

    Returns
    -------
    The checkpoint folder.

    Examples
    --------
    >>> folder = cfmd.datasets.tiny_geneformer_checkpoint("teachers/tiny_gf")
    >>> sorted(p.name for p in folder.iterdir())
    ['README.txt', 'config.json', 'model.safetensors']
    """
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from ._reference import geneformer_gene_medians, geneformer_token_dictionary

    check_choice(version, "version", ("V1", "V2"))
    check_choice(weights_format, "weights_format", ("safetensors", "bin"))
    n_layers = check_positive_int(n_layers, "n_layers")
    hidden_size = check_positive_int(hidden_size, "hidden_size")
    n_heads = check_positive_int(n_heads, "n_heads")
    if hidden_size % n_heads:
        raise InvalidInputError(f"`hidden_size` ({hidden_size}) must be a multiple of `n_heads` ({n_heads}).")
    intermediate_size = check_positive_int(
        2 * hidden_size if intermediate_size is None else intermediate_size, "intermediate_size"
    )
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)

    tokens = geneformer_token_dictionary()
    if version == "V2":
        genes = [t for t in sorted(tokens, key=tokens.__getitem__) if not t.startswith("<")]
        tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3} | {g: i + 4 for i, g in enumerate(genes)}
        with (folder / "token_dictionary.tsv").open("w") as fh:
            fh.write("token\tid\n")
            fh.writelines(f"{t}\t{i}\n" for t, i in tokens.items())
        with (folder / "gene_median.tsv").open("w") as fh:
            fh.write("ensembl_id\tnonzero_median\n")
            fh.writelines(f"{g}\t{m!r}\n" for g, m in geneformer_gene_medians().items())

    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        intermediate_size=intermediate_size,
        hidden_act="relu",
        max_position_embeddings=2048 if version == "V1" else 4096,
        pad_token_id=0,
        layer_norm_eps=1e-12,
        cfmd_notice=TINY_TEACHER_NOTICE,
        cfmd_geneformer_version=version,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = BertForMaskedLM(config).eval()
    for stale in ("model.safetensors", "pytorch_model.bin"):
        (folder / stale).unlink(missing_ok=True)
    if weights_format == "safetensors":
        from transformers.utils import logging as hf_logging

        progress = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            model.save_pretrained(folder)
        finally:
            if progress:
                hf_logging.enable_progress_bar()
    else:
        config.save_pretrained(folder)
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, folder / "pytorch_model.bin")
    (folder / "README.txt").write_text(
        f"{TINY_TEACHER_NOTICE}\n\nGeneformer-format ({version}) BertForMaskedLM, {n_layers} layers, hidden size "
        f"{hidden_size}, {n_heads} heads, seed {seed}. Built by cfmd.datasets.tiny_geneformer_checkpoint.\n"
    )
    return folder


def tiny_esm2_checkpoint(
    path: str | PathLike,
    *,
    n_layers: int = 2,
    embed_dim: int = 32,
    attention_heads: int = 4,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write a tiny random ESM-2 checkpoint in fair-esm's format (``.pt`` + contact-regression file).

    Writes ``esm2_t{n_layers}_{embed_dim}d_TINY_RANDOM.pt`` (a dict with ``model`` (state dict) and ``cfg``
    (``argparse.Namespace`` of ``encoder_layers``, ``encoder_embed_dim``, ``encoder_attention_heads``,
    ``token_dropout``), as the released ESM-2 files) and, beside it,
    ``esm2_t{n_layers}_{embed_dim}d_TINY_RANDOM-contact-regression.pt``, so that both
    :func:`cfmd.pp.esm_gene_embeddings` and fair-esm's own ``esm.pretrained.load_model_and_alphabet_local`` load it.
    The file name starts with ``esm2`` because fair-esm picks the architecture from it.

    .. warning:: Random weights: results computed with this model mean nothing biologically.

    Parameters
    ----------
    path
        Folder to write into (created if needed).
    n_layers
        Transformer layers (``t`` in ESM-2 names; the 650M model has 33).
    embed_dim
        Embedding width ``d_e`` (a multiple of ``attention_heads``; the 650M model has 1,280).
    attention_heads
        Attention heads.
    seed
        Seed of the random initialisation (the global torch RNG is left untouched).

    Returns
    -------
    Path of the ``.pt`` checkpoint.

    Examples
    --------
    >>> ckpt = cfmd.datasets.tiny_esm2_checkpoint("teachers")
    >>> ckpt.name
    'esm2_t2_32d_TINY_RANDOM.pt'
    """
    import torch
    from esm.data import Alphabet
    from esm.model.esm2 import ESM2

    n_layers = check_positive_int(n_layers, "n_layers")
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    attention_heads = check_positive_int(attention_heads, "attention_heads")
    if embed_dim % attention_heads or (embed_dim // attention_heads) % 2:
        raise InvalidInputError(
            f"`embed_dim` ({embed_dim}) must be a multiple of `attention_heads` ({attention_heads}) with an even "
            "head size (rotary embeddings)."
        )
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"esm2_t{n_layers}_{embed_dim}d_TINY_RANDOM"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = ESM2(
            num_layers=n_layers,
            embed_dim=embed_dim,
            attention_heads=attention_heads,
            alphabet=Alphabet.from_architecture("ESM-1b"),
            token_dropout=True,
        )
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    regression = {k: state.pop(k) for k in list(state) if k.startswith("contact_head.regression.")}
    checkpoint = {
        "model": {f"encoder.sentence_encoder.{k}": v for k, v in state.items()},
        "cfg": {
            "model": Namespace(
                encoder_layers=n_layers,
                encoder_embed_dim=embed_dim,
                encoder_attention_heads=attention_heads,
                token_dropout=True,
            )
        },
        "cfmd_notice": TINY_TEACHER_NOTICE,
    }
    target = folder / f"{name}.pt"
    torch.save(checkpoint, target)
    torch.save({"model": regression}, folder / f"{name}-contact-regression.pt")
    (folder / f"{name}.README.txt").write_text(
        f"{TINY_TEACHER_NOTICE}\n\nfair-esm ESM-2-format checkpoint, {n_layers} layers, width {embed_dim}, "
        f"{attention_heads} heads, seed {seed}. Built by cfmd.datasets.tiny_esm2_checkpoint.\n"
    )
    return target
