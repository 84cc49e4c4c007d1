"""Geneformer sample embeddings from a local checkpoint folder (:func:`geneformer`).

Also holds the small helpers the teacher functions share: file digests, device choice and the on-disk
embedding cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from .._constants import DEFAULT_GENEFORMER_KEY
from .._docs import DOC_COPY, doc_params
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import InvalidInputError, check_choice, check_not_view, check_positive_int, describe_examples
from ._tokenize import _check_key

__all__ = ["geneformer"]

#: Weight files of a Geneformer checkpoint folder, in order of preference.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_REQUIRED_CONFIG = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings")
_CACHE_FORMAT = 1


@doc_params(copy=DOC_COPY)
def geneformer(
    adata: AnnData,
    checkpoint: str | PathLike,
    *,
    tokens_key: str = "geneformer_tokens",
    layer: int = -2,
    pooling: Literal["mean", "cls"] = "mean",
    batch_size: int = 16,
    device: str | None = None,
    key_added: str = DEFAULT_GENEFORMER_KEY,
    cache_dir: str | PathLike | None = None,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Geneformer sample embeddings: pooled hidden states of a local, frozen Geneformer checkpoint.

    Loads a Geneformer checkpoint folder offline with :mod:`transformers` and embeds the rank-value tokens
    written by :func:`cfmd.pp.tokenize`, exactly as Geneformer's ``EmbExtractor`` (``emb_mode="cell"``,
    ``cell_emb_style="mean_pool"``) does: the chosen hidden layer, averaged over the real gene tokens
    (``<cls>``, ``<eos>`` and padding excluded). Only what that needs is computed: encoder layers above ``layer``
    and the masked-LM head are never loaded or run; samples are processed longest first in length-homogeneous
    batches (little padding), with PyTorch's scaled-dot-product attention and no autograd.

    Parameters
    ----------
    adata
        Samples x genes with tokens from :func:`cfmd.pp.tokenize`.
    checkpoint
        Folder with ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (e.g. Geneformer's
        ``gf-6L-30M-i2048`` or ``gf-12L-30M-i2048`` for V1). Nothing is downloaded; ``.bin`` files are read with
        ``weights_only=True`` (tensors only, never arbitrary pickled objects).
    tokens_key
        ``key_added`` of :func:`cfmd.pp.tokenize`: tokens in ``adata.obsm[tokens_key]``, lengths in
        ``adata.obs[f"{tokens_key}_length"]``, dictionary identity in ``adata.uns[tokens_key]``. The dictionary's
        vocabulary size must equal the checkpoint's ``vocab_size`` (V1 and V2 cannot be mixed).
    layer
        Hidden state to pool, indexed as ``transformers`` returns them: ``0`` = embedding output, ``1..n`` = encoder
        layers, negative values count from the end (``-1`` = last layer). The default ``-2`` (second-to-last
        layer) is Geneformer's default (its ``emb_layer=-1``); ``-1`` is its ``emb_layer=0``.
    pooling
        ``"mean"``: mean over gene tokens. ``"cls"``: the ``<cls>`` token's hidden state (V2 tokens only).
    batch_size
        Samples per forward pass.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...; default CUDA when available, else CPU. Computation is float32.
    key_added
        Where to write the embeddings (see Returns).
    cache_dir
        Folder for an on-disk cache keyed by checkpoint (config and weight digests), layer, pooling and tokens:
        a repeated call with the same inputs reads the result instead of running the model. ``None``: no cache.
    progress
        Show a progress bar over batches.
    {copy}

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes

    ``adata.obsm[key_added]``
        ``float32`` embeddings, ``n_samples x hidden_size`` (256 for the 6-layer V1 models, 512 for 12 layers).
    ``adata.uns[key_added]``
        Provenance: ``checkpoint`` (folder), ``weights_file``, ``weights_sha256``, ``config`` (JSON text),
        ``config_sha256``, ``layer`` (absolute hidden-state index = number of encoder layers run),
        ``layer_requested``, ``n_layers_total``, ``pooling``, ``tokens_key``, ``version``, ``token_dictionary_sha256``,
        ``attn_implementation``, ``dtype``, ``device``, ``cache`` (``"hit"``, ``"miss"`` or ``"off"``).

    Examples
    --------
    >>> folder = cfmd.datasets.tiny_geneformer_checkpoint("teachers/gf")  # random stand-in weights
    >>> rna = cfmd.datasets.synthetic_cohort(n_patients=20, n_genes=300, seed=0)["rna"]
    >>> cfmd.pp.tokenize(rna)
    >>> cfmd.pp.geneformer(rna, folder, progress=False)
    >>> rna.obsm["X_geneformer"].shape
    (20, 64)
    """
    if not copy:
        check_not_view(adata, "adata")
    with unchanged_on_error(adata):
        # ------------------------------------------------------------------ validation (nothing written yet)
        if not isinstance(adata, AnnData):
            raise InvalidInputError(f"`adata` must be an AnnData object; got {type(adata).__name__}.")
        _check_key(tokens_key, "tokens_key")
        _check_key(key_added, "key_added")
        check_choice(pooling, "pooling", ("mean", "cls"))
        batch_size = check_positive_int(batch_size, "batch_size")
        check_cache_dir(cache_dir)
        folder, config_path, weights_path, config = checkpoint_files(checkpoint)
        tokens, lengths, token_info = _read_tokens(adata, tokens_key)

        vocab_size = int(config["vocab_size"])
        if int(token_info["vocab_size"]) != vocab_size:
            raise InvalidInputError(
                f"The token dictionary of adata.uns[{tokens_key!r}] has {int(token_info['vocab_size'])} tokens "
                f"(Geneformer {token_info.get('version', '?')}) but the checkpoint {config_path} has vocab_size "
                f"{vocab_size}: tokens and model come from different Geneformer series (V1: gc30M, 25,426 tokens; "
                "V2: gc104M). Tokenise with the dictionaries that belong to this checkpoint."
            )
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
            raise InvalidInputError(f"adata.obsm[{tokens_key!r}] holds token ids outside [0, {vocab_size}).")
        max_positions = int(config["max_position_embeddings"])
        if lengths.max() > max_positions:
            raise InvalidInputError(
                f"adata.obs['{tokens_key}_length'] reaches {int(lengths.max())} tokens but the checkpoint accepts at "
                f"most {max_positions} (max_position_embeddings in {config_path}); tokenise with "
                f"`model_input_size={max_positions}`."
            )
        cls_id, eos_id = int(token_info["cls_token_id"]), int(token_info["eos_token_id"])
        if pooling == "cls" and (cls_id < 0 or not np.all(tokens[:, 0] == cls_id)):
            raise InvalidInputError(
                f"`pooling='cls'` needs tokens that start with <cls> (Geneformer V2); adata.obsm[{tokens_key!r}] "
                f"was tokenised for {token_info.get('version', 'V1')} without special tokens. Use `pooling='mean'`."
            )
        n_total = int(config["num_hidden_layers"])
        hidden_index = resolve_layer(layer, n_total, f"this {n_total}-layer checkpoint")
        device = resolve_device(device)

        # ------------------------------------------------------------------ computation
        weights_sha = sha256_file(weights_path)
        config_text = json.dumps(config, sort_keys=True)
        identity = {
            "model": "geneformer",
            "weights_sha256": weights_sha,
            "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "layer": hidden_index,
            "pooling": pooling,
        }
        key = cache_key(identity, tokens, lengths)
        embeddings = cache_load(cache_dir, "geneformer", key, (adata.n_obs, int(config["hidden_size"])))
        cache_state = "off" if cache_dir is None else ("hit" if embeddings is not None else "miss")
        if embeddings is None:
            model = _load_encoder(folder, weights_path, hidden_index, device)
            embeddings = _embed(model, tokens, lengths, pooling, cls_id, eos_id, batch_size, device, progress)
            cache_save(cache_dir, "geneformer", key, embeddings)
        else:
            logger.info("geneformer: embeddings read from the cache in %s.", cache_dir)

        info = {
            "checkpoint": str(folder.resolve()),
            "weights_file": weights_path.name,
            "weights_sha256": weights_sha,
            "config": config_text,
            "config_sha256": identity["config_sha256"],
            "layer": hidden_index,
            "layer_requested": int(layer),
            "n_layers_total": n_total,
            "pooling": pooling,
            "tokens_key": tokens_key,
            "version": str(token_info.get("version", "")),
            "token_dictionary_sha256": str(token_info.get("token_dictionary_sha256", "")),
            "attn_implementation": "sdpa",
            "dtype": "float32",
            "device": str(device),
            "cache": cache_state,
        }
        target = adata.copy() if copy else adata
        target.obsm[key_added] = embeddings
        target.uns[key_added] = info
        return target if copy else None

    # ---------------------------------------------------------------------- checkpoint


def checkpoint_files(checkpoint) -> tuple[Path, Path, Path, dict]:
    """Validate a Geneformer checkpoint folder; return ``(folder, config.json, weights file, config dict)``."""
    if not isinstance(checkpoint, str | PathLike):
        raise InvalidInputError(f"`checkpoint` must be a path to a checkpoint folder; got {checkpoint!r}.")
    folder = Path(checkpoint)
    if not folder.is_dir():
        raise InvalidInputError(
            f"Geneformer checkpoint folder {folder} does not exist (expected a folder with config.json and "
            "model.safetensors or pytorch_model.bin; nothing is downloaded)."
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InvalidInputError(f"Geneformer checkpoint {folder} is missing config.json.")
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        raise InvalidInputError(
            f"Geneformer checkpoint {folder} is missing its weights: expected model.safetensors or pytorch_model.bin "
            f"(found {describe_examples(sorted(p.name for p in folder.iterdir()))})."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidInputError(f"{config_path} is not valid JSON: {err}.") from None
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        found = config.get("model_type") if isinstance(config, dict) else None
        raise InvalidInputError(f"{config_path} must describe a BERT model (model_type 'bert'); found {found!r}.")
    missing = [k for k in _REQUIRED_CONFIG if k not in config]
    if missing:
        raise InvalidInputError(f"{config_path} lacks {describe_examples(missing)}.")
    return folder, config_path, weights[0], config


def _load_encoder(folder: Path, weights_path: Path, n_layers: int, device):
    """The BERT encoder truncated to its first ``n_layers`` layers, without pooler or masked-LM head."""
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(folder, local_files_only=True)
    config.num_hidden_layers = n_layers
    try:
        with _quiet_transformers():
            model, loading = BertModel.from_pretrained(
                folder,
                config=config,
                add_pooling_layer=False,
                local_files_only=True,
                attn_implementation="sdpa",
                weights_only=True,
                output_loading_info=True,
            )
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise InvalidInputError(
            f"Could not load the weights in {weights_path} (only tensors are read; pickled objects are refused): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err
    missing = list(loading.get("missing_keys", []))
    if missing:
        raise InvalidInputError(
            f"{weights_path} lacks weights the encoder needs: {describe_examples(sorted(missing))}; is it a "
            "Geneformer (BertForMaskedLM) checkpoint?"
        )
    return model.to(device=device, dtype=_torch().float32).eval()


@contextmanager
def _quiet_transformers():
    """Silence transformers' load report (unused ``cls.predictions.*`` and top-layer weights are expected)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    progress = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


def _read_tokens(adata: AnnData, tokens_key: str) -> tuple[np.ndarray, np.ndarray, dict]:
    length_key = f"{tokens_key}_length"
    hint = "run cfmd.pp.tokenize(adata) first (with the dictionaries of this checkpoint)"
    if tokens_key not in adata.obsm:
        raise InvalidInputError(f"adata.obsm has no key {tokens_key!r}: {hint}.")
    if length_key not in adata.obs.columns:
        raise InvalidInputError(f"adata.obs has no column {length_key!r}: {hint}.")
    if not isinstance(adata.uns.get(tokens_key), dict):
        raise InvalidInputError(f"adata.uns has no dictionary identity under {tokens_key!r}: {hint}.")
    info = adata.uns[tokens_key]
    missing = [k for k in ("vocab_size", "pad_token_id", "cls_token_id", "eos_token_id") if k not in info]
    if missing:
        raise InvalidInputError(f"adata.uns[{tokens_key!r}] lacks {describe_examples(missing)}: {hint}.")
    tokens = adata.obsm[tokens_key]
    tokens = tokens.to_numpy() if isinstance(tokens, pd.DataFrame) else np.asarray(tokens)
    if tokens.ndim != 2 or tokens.dtype.kind not in "iu":
        raise InvalidInputError(f"adata.obsm[{tokens_key!r}] must be a 2-d integer matrix of token ids.")
    lengths = pd.to_numeric(adata.obs[length_key], errors="coerce").to_numpy()
    if not np.all(np.isfinite(lengths)) or np.any(lengths < 1) or np.any(lengths > tokens.shape[1]):
        raise InvalidInputError(
            f"adata.obs[{length_key!r}] must hold token counts in [1, {tokens.shape[1]}] for every sample."
        )
    return np.ascontiguousarray(tokens, dtype=np.int64), lengths.astype(np.int64), info


# ---------------------------------------------------------------------- forward


def _embed(model, tokens, lengths, pooling, cls_id, eos_id, batch_size, device, progress) -> np.ndarray:
    """Pooled last hidden state of ``model`` per sample, in length-sorted batches."""
    torch = _torch()
    from tqdm.auto import tqdm

    order = np.argsort(-lengths, kind="stable")  # longest first: homogeneous batches, little padding
    out = np.empty((tokens.shape[0], model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="Geneformer", unit="batch", disable=not progress, leave=False):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = torch.from_numpy(tokens[rows, :width]).to(device)
            real = torch.arange(width, device=device)[None, :] < torch.from_numpy(lengths[rows]).to(device)[:, None]
            attention_mask = None if bool(real.all()) else real.long()
            hidden = model(input_ids=ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                keep = real & (ids != cls_id) & (ids != eos_id)
                weights = keep.to(hidden.dtype)
                pooled = torch.einsum("btd,bt->bd", hidden, weights) / weights.sum(1, keepdim=True)
            out[rows] = pooled.float().cpu().numpy()
    return out


def _torch():
    import torch

    return torch


# ---------------------------------------------------------------------- shared helpers (also used by _esm.py)

_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def resolve_layer(layer, n_layers: int, what: str) -> int:
    """Absolute index (``0..n_layers``) of ``layer``, which may count from the end (``-1`` = last layer)."""
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not -(n_layers + 1) <= layer <= n_layers:
        raise InvalidInputError(
            f"`layer` must be an integer in [{-(n_layers + 1)}, {n_layers}] for {what} (0 = embeddings, "
            f"-1 = last layer); got {layer!r}."
        )
    return int(layer) % (n_layers + 1)


def resolve_device(device):
    """A :class:`torch.device`; ``None`` means CUDA when available, else CPU."""
    torch = _torch()
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"`device` must be 'cpu', 'cuda', 'cuda:N', ...; got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"`device={device!r}` was requested but CUDA is not available on this machine.")
    return resolved


def cache_key(identity: dict, *arrays: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps({**identity, "cache_format": _CACHE_FORMAT}, sort_keys=True).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def check_cache_dir(cache_dir) -> None:
    """Require ``None`` or a path for ``cache_dir``."""
    if cache_dir is not None and not isinstance(cache_dir, str | PathLike):
        raise InvalidInputError(f"`cache_dir` must be a folder path or None; got {cache_dir!r}.")
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise InvalidInputError(f"`cache_dir` {cache_dir} exists but is not a folder.")


def cache_load(cache_dir, prefix: str, key: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached array for ``key`` (``None`` if absent, unreadable or of another shape)."""
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{prefix}_{key[:40]}.npy"
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        logger.warning("Ignoring unreadable cache file %s.", path)
        return None
    return array if array.shape == tuple(shape) else None


def cache_save(cache_dir, prefix: str, key: str, array: np.ndarray) -> None:
    """Write ``array`` atomically into the cache (no-op without ``cache_dir``)."""
    if cache_dir is None:
        return
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, folder / f"{prefix}_{key[:40]}.npy")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
