"""Per-gene ESM-2 protein embeddings (:func:`esm_gene_embeddings`)."""

from __future__ import annotations

import gzip
import json
import pickle
import re
import warnings
from argparse import Namespace
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from .._constants import DEFAULT_GENE_EMBEDDING_KEY
from .._docs import DOC_COPY, doc_params
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import InvalidInputError, check_not_view, check_positive_int, describe_examples
from ._geneformer import cache_key, cache_load, cache_save, check_cache_dir, resolve_device, resolve_layer, sha256_file
from ._tokenize import _check_key

__all__ = ["esm_gene_embeddings", "read_fasta"]

#: Residue letters fair-esm's ESM-2 alphabet encodes (20 standard amino acids plus X, B, U, Z, O).
ESM_RESIDUES = frozenset("LAGVSERTIDPKQNFYMHWCXBUZO")
_GENE_NAME_RE = re.compile(r"\bGN=(\S+)")


@doc_params(copy=DOC_COPY)
def esm_gene_embeddings(
    adata: AnnData,
    *,
    checkpoint: str | PathLike | None = None,
    fasta: str | PathLike | None = None,
    sequence_key: str | None = None,
    table: str | PathLike | None = None,
    gene_key: str | None = None,
    layer: int = -1,
    toks_per_batch: int = 4096,
    truncation_seq_length: int = 1022,
    device: str | None = None,
    key_added: str = DEFAULT_GENE_EMBEDDING_KEY,
    cache_dir: str | PathLike | None = None,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Per-gene ESM-2 protein embeddings, attached to ``adata.varm``.

    Two sources:

    - **a local fair-esm ESM-2 checkpoint** (``checkpoint=``) applied to canonical protein sequences from a FASTA
      file (``fasta=``) or a ``var`` column (``sequence_key=``). As fair-esm's ``scripts/extract.py --include
      mean``: sequences truncated to ``truncation_seq_length`` residues, batched by length up to
      ``toks_per_batch`` tokens, and the chosen layer averaged over residues (BOS/EOS and padding excluded).
      Identical sequences are embedded once; layers above ``layer`` and the language-model head are not run.
    - **a precomputed table** (``table=``): TSV (first column gene, then one column per dimension), NPZ (arrays
      ``genes`` and ``embeddings``) or safetensors (a 2-d tensor ``embeddings`` with the gene list as JSON in the
      metadata key ``genes``, or one 1-d tensor per gene named by the gene).

    Parameters
    ----------
    adata
        Samples x genes.
    checkpoint
        fair-esm ``.pt`` file whose name starts with ``esm2`` (the architecture is read from the name, e.g.
        ``esm2_t33_650M_UR50D.pt``). Loaded offline with ``torch.load(weights_only=True)``, allowing only
        tensors, containers and ``argparse.Namespace``. The ``-contact-regression.pt`` file is not needed.
    fasta
        FASTA (optionally gzipped) of one canonical isoform per gene. A record is matched to genes by the gene
        name in a UniProt header (``GN=TP53``) if present, else by the first word of its header. Duplicate or
        empty records are errors.
    sequence_key
        Column of ``adata.var`` holding protein sequences (empty or missing: no embedding for that gene).
    table
        Precomputed embeddings (see above); exclusive with ``checkpoint``.
    gene_key
        Column of ``adata.var`` with the identifiers to match FASTA records or table rows against; default
        ``var_names``.
    layer
        Representation layer as in fair-esm (``0`` = embeddings, ``1..n`` = layers, negative from the end; the
        last layer includes the final layer norm). Default ``-1``: the last layer (33 for the 650M model).
    toks_per_batch
        Maximum tokens per batch (fair-esm's ``--toks_per_batch``).
    truncation_seq_length
        Residues kept per sequence (fair-esm's default 1,022: 1,024 positions with BOS/EOS).
    device
        ``"cpu"``, ``"cuda"``, ...; default CUDA when available, else CPU.
    key_added
        Where to write (see Returns).
    cache_dir
        On-disk cache keyed by checkpoint digest, layer, truncation and the sequences; ``None``: no cache.
    progress
        Show a progress bar over batches.
    {copy}

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes

    ``adata.varm[key_added]``
        ``float32`` ``n_genes x d_e`` (``d_e`` as the checkpoint gives: 1,280 for the 650M model); rows of genes
        without an embedding are NaN.
    ``adata.var[f"{key_added}_available"]``
        Whether the gene has an embedding.
    ``adata.uns[key_added]``
        Provenance and coverage: ``source`` (``"checkpoint"`` or ``"table"``), ``path``, ``sha256``,
        ``model_name``, ``layer``, ``truncation_seq_length``, ``n_sequences_truncated``, ``d_e``, ``n_genes``,
        ``n_genes_matched``, ``coverage``, ``gene_key``, ``sequence_source``, ``cache``.

    Examples
    --------
    >>> ckpt = cfmd.datasets.tiny_esm2_checkpoint("teachers")  # random stand-in weights
    >>> rna = cfmd.datasets.synthetic_cohort(n_patients=20, n_genes=300, seed=0)["rna"][:, :20].copy()
    >>> cfmd.pp.esm_gene_embeddings(rna, checkpoint=ckpt, sequence_key="protein_sequence", progress=False)
    >>> rna.varm["X_esm2"].shape
    (20, 32)
    """
    if not copy:
        check_not_view(adata, "adata")
    with unchanged_on_error(adata):
        # ------------------------------------------------------------------ validation (nothing written yet)
        if not isinstance(adata, AnnData):
            raise InvalidInputError(f"`adata` must be an AnnData object; got {type(adata).__name__}.")
        _check_key(key_added, "key_added")
        toks_per_batch = check_positive_int(toks_per_batch, "toks_per_batch")
        truncation_seq_length = check_positive_int(truncation_seq_length, "truncation_seq_length")
        check_cache_dir(cache_dir)
        if table is not None:
            if checkpoint is not None or fasta is not None or sequence_key is not None:
                raise InvalidInputError(
                    "Give either `table=` (precomputed embeddings) or `checkpoint=` with `fasta=` or `sequence_key=`."
                )
        else:
            if checkpoint is None:
                raise InvalidInputError("Give `checkpoint=` (a fair-esm ESM-2 .pt file) or `table=` (precomputed).")
            if (fasta is None) == (sequence_key is None):
                raise InvalidInputError("With `checkpoint=`, give exactly one of `fasta=` and `sequence_key=`.")
        genes, gene_field = _gene_identifiers(adata, gene_key)

        if table is not None:
            table_path = Path(table)
            table_genes, table_values = read_embedding_table(table_path)
            row_of = {g: i for i, g in enumerate(table_genes)}
            matched = np.array([g in row_of for g in genes])
            _check_matched(matched, genes, gene_field, list(table_genes), f"table {table_path}")
            embeddings = np.full((adata.n_vars, table_values.shape[1]), np.nan, dtype=np.float32)
            embeddings[matched] = table_values[[row_of[g] for g in genes[matched]]]
            info = {"source": "table", "path": str(table_path.resolve()), "sha256": sha256_file(table_path)}
            cache_state = "off"
        else:
            if fasta is not None:
                records = read_fasta(fasta)
                sequence_of = dict(records)
                sequence_source = f"fasta {Path(fasta)}"
            else:
                sequence_of = _var_sequences(adata, sequence_key, genes)
                sequence_source = f"adata.var[{sequence_key!r}]"
            matched = np.array([g in sequence_of for g in genes])
            _check_matched(matched, genes, gene_field, list(sequence_of), sequence_source)
            checkpoint_path, model_name = _check_checkpoint(checkpoint)
            device = resolve_device(device)
            model, alphabet = load_esm2(checkpoint_path)
            repr_layer = resolve_layer(layer, model.num_layers, f"{model_name} ({model.num_layers} layers)")

            # -------------------------------------------------------------- computation
            unique = sorted({sequence_of[g] for g in genes[matched]})
            weights_sha = sha256_file(checkpoint_path)
            identity = {
                "model": "esm2",
                "sha256": weights_sha,
                "layer": repr_layer,
                "truncation_seq_length": truncation_seq_length,
            }
            key = cache_key(identity, np.frombuffer("\n".join(unique).encode(), dtype=np.uint8))
            unique_embeddings = cache_load(cache_dir, "esm2", key, (len(unique), model.embed_dim))
            cache_state = "off" if cache_dir is None else ("hit" if unique_embeddings is not None else "miss")
            if unique_embeddings is None:
                model = model.to(device).eval()
                unique_embeddings = embed_sequences(
                    model, alphabet, unique, repr_layer, toks_per_batch, truncation_seq_length, device, progress
                )
                cache_save(cache_dir, "esm2", key, unique_embeddings)
            row_of = {s: i for i, s in enumerate(unique)}
            embeddings = np.full((adata.n_vars, model.embed_dim), np.nan, dtype=np.float32)
            embeddings[matched] = unique_embeddings[[row_of[sequence_of[g]] for g in genes[matched]]]
            info = {
                "source": "checkpoint",
                "path": str(checkpoint_path.resolve()),
                "sha256": weights_sha,
                "model_name": model_name,
                "layer": repr_layer,
                "truncation_seq_length": truncation_seq_length,
                "n_sequences_truncated": int(sum(len(s) > truncation_seq_length for s in unique)),
                "sequence_source": sequence_source,
            }

        n_matched = int(matched.sum())
        info |= {
            "d_e": int(embeddings.shape[1]),
            "n_genes": int(adata.n_vars),
            "n_genes_matched": n_matched,
            "coverage": n_matched / adata.n_vars,
            "gene_key": gene_field,
            "cache": cache_state,
        }
        logger.info(
            "esm_gene_embeddings: %d of %d genes (%.1f%%) have a %d-d embedding.",
            n_matched,
            adata.n_vars,
            100 * n_matched / adata.n_vars,
            embeddings.shape[1],
        )

        # ------------------------------------------------------------------ write
        target = adata.copy() if copy else adata
        target.varm[key_added] = embeddings
        target.var[f"{key_added}_available"] = matched
        target.uns[key_added] = info
        return target if copy else None

    # ---------------------------------------------------------------------- inputs


def _gene_identifiers(adata: AnnData, gene_key: str | None) -> tuple[np.ndarray, str]:
    if gene_key is None:
        return np.asarray(adata.var_names.astype(str), dtype=object), "adata.var_names"
    if gene_key not in adata.var.columns:
        raise InvalidInputError(
            f"adata.var has no column {gene_key!r} (`gene_key`); available: "
            f"{describe_examples(list(adata.var.columns), limit=12)}."
        )
    values = ["" if pd.isna(v) else str(v) for v in adata.var[gene_key]]
    return np.asarray(values, dtype=object), f"adata.var[{gene_key!r}]"


def _check_matched(matched: np.ndarray, genes, gene_field: str, available: list[str], source: str) -> None:
    if not matched.any():
        raise InvalidInputError(
            f"No gene of {gene_field} ({describe_examples(genes)}) has a sequence or embedding in {source} "
            f"(identifiers there: {describe_examples(available)}). Pass `gene_key=` naming the matching var column."
        )


def _clean_sequence(sequence: str, where: str) -> str:
    sequence = "".join(sequence.split()).upper().rstrip("*")
    bad = sorted(set(sequence) - ESM_RESIDUES)
    if bad:
        raise InvalidInputError(
            f"{where}: the protein sequence contains characters ESM-2 cannot encode: {describe_examples(bad)}."
        )
    return sequence


def read_fasta(path: str | PathLike) -> list[tuple[str, str]]:
    """Read a protein FASTA strictly: ``[(gene, sequence), ...]``, one record per gene.

    The gene of a record is the ``GN=`` field of a UniProt header (``>sp|P04637|P53_HUMAN ... GN=TP53 ...``) when
    present, else the first word of the header. Whitespace and a trailing ``*`` are removed and residues
    upper-cased.

    Parameters
    ----------
    path
        FASTA file, optionally gzipped (``.gz``).

    Returns
    -------
    ``(gene, sequence)`` pairs in file order.

    Raises
    ------
    InvalidInputError
        If the file is missing or empty, a header has no identifier, a record has no sequence, a gene appears in
        two records, or a sequence has characters outside ESM-2's alphabet; the message names the file, the
        record and its line.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"FASTA file not found: {path}.")
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    records: list[tuple[str, int, list[str]]] = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                line = line.strip()
                if line.startswith(">"):
                    header = line[1:].strip()
                    gene_name = _GENE_NAME_RE.search(header)
                    gene = gene_name.group(1) if gene_name else (header.split()[0] if header else "")
                    if not gene:
                        raise InvalidInputError(f"{path}, line {number}: FASTA header without an identifier.")
                    records.append((gene, number, []))
                elif line:
                    if not records:
                        raise InvalidInputError(f"{path}, line {number}: sequence before the first '>' header.")
                    records[-1][2].append(line)
    except UnicodeDecodeError as err:
        raise InvalidInputError(
            f"`fasta` {path} is not a text FASTA file (byte {err.start} is not UTF-8 text); expected a protein FASTA, "
            "plain text or gzipped (.gz)."
        ) from None
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise InvalidInputError(
            f"`fasta` {path} cannot be read as a {'gzipped ' if opener is gzip.open else ''}FASTA file ({err}); "
            "expected a protein FASTA, plain text or gzipped (.gz)."
        ) from None
    if not records:
        raise InvalidInputError(f"{path} holds no FASTA records.")
    seen: dict[str, int] = {}
    out = []
    for gene, number, lines in records:
        where = f"{path}, record {gene!r} (line {number})"
        if gene in seen:
            raise InvalidInputError(
                f"{where}: duplicate record; {gene!r} already appeared at line {seen[gene]}. Keep one canonical "
                "isoform per gene."
            )
        seen[gene] = number
        sequence = _clean_sequence("".join(lines), where)
        if not sequence:
            raise InvalidInputError(f"{where}: empty record (no sequence).")
        out.append((gene, sequence))
    return out


def _var_sequences(adata: AnnData, sequence_key: str, genes: np.ndarray) -> dict[str, str]:
    if sequence_key not in adata.var.columns:
        raise InvalidInputError(
            f"adata.var has no column {sequence_key!r} (`sequence_key`); available: "
            f"{describe_examples(list(adata.var.columns), limit=12)}."
        )
    out: dict[str, str] = {}
    for gene, value in zip(genes, adata.var[sequence_key]):
        if pd.isna(value) or not str(value).strip() or not gene:
            continue
        sequence = _clean_sequence(str(value), f"adata.var[{sequence_key!r}] of gene {gene!r}")
        if gene in out and out[gene] != sequence:
            raise InvalidInputError(
                f"adata.var[{sequence_key!r}]: gene {gene!r} appears twice with different sequences."
            )
        out[gene] = sequence
    return out


def read_embedding_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Genes and ``float32`` embeddings from a TSV, NPZ or safetensors table (validated)."""
    if not path.is_file():
        raise InvalidInputError(f"Embedding table not found: {path}.")
    name = path.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "genes" not in npz or "embeddings" not in npz:
                    raise InvalidInputError(f"{path} must hold the arrays 'genes' and 'embeddings'; has {list(npz)}.")
                genes, values = npz["genes"], npz["embeddings"]
        except ValueError as err:
            raise InvalidInputError(
                f"{path} could not be read without unpickling ({err}); store genes as str."
            ) from None
    elif name.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            keys = list(fh.keys())
            metadata = fh.metadata() or {}
            if "embeddings" in keys:
                values = fh.get_tensor("embeddings")
                try:
                    genes = json.loads(metadata["genes"])
                except (KeyError, ValueError):
                    raise InvalidInputError(
                        f"{path} has an 'embeddings' tensor but no JSON list of genes in its metadata key 'genes'."
                    ) from None
            else:
                genes = keys
                vectors = [np.ravel(fh.get_tensor(k)) for k in keys]
                if len({v.size for v in vectors}) > 1:
                    raise InvalidInputError(f"{path}: per-gene tensors must all have the same length.")
                values = np.vstack(vectors) if vectors else np.zeros((0, 0))
    elif name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        try:
            frame = pd.read_csv(path, sep="\t", index_col=0)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise InvalidInputError(f"{path} could not be read as TSV: {err}.") from None
        non_numeric = [c for c, dt in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
        if non_numeric:
            raise InvalidInputError(
                f"{path}: embedding columns must be numeric; {describe_examples(non_numeric)} is not."
            )
        genes, values = frame.index.astype(str).to_numpy(), frame.to_numpy()
    else:
        raise InvalidInputError(f"Embedding table {path} must be .tsv(.gz), .npz or .safetensors.")
    genes = np.asarray([str(g) for g in np.asarray(genes).ravel()], dtype=object)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != genes.size or values.shape[0] == 0:
        raise InvalidInputError(
            f"{path}: expected one embedding row per gene; got {genes.size} genes and values of shape {values.shape}."
        )
    duplicated = pd.Index(genes)[pd.Index(genes).duplicated()].unique()
    if len(duplicated):
        raise InvalidInputError(f"{path}: genes must be unique; duplicated: {describe_examples(duplicated)}.")
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise InvalidInputError(f"{path}: non-finite embedding values for {describe_examples(genes[bad])}.")
    return genes, values


# ---------------------------------------------------------------------- model


def _check_checkpoint(checkpoint) -> tuple[Path, str]:
    if not isinstance(checkpoint, str | PathLike):
        raise InvalidInputError(f"`checkpoint` must be a path to a fair-esm .pt file; got {checkpoint!r}.")
    path = Path(checkpoint)
    if not path.is_file():
        raise InvalidInputError(f"ESM-2 checkpoint file not found: {path} (nothing is downloaded).")
    if path.suffix != ".pt" or not path.stem.startswith("esm2"):
        raise InvalidInputError(
            f"ESM-2 checkpoint {path.name} must be a fair-esm .pt file named like the release, starting with 'esm2' "
            "(e.g. esm2_t33_650M_UR50D.pt): fair-esm selects the architecture from the name."
        )
    return path, path.stem


def load_esm2(path: Path):
    """Load a fair-esm ESM-2 ``.pt`` safely (tensors, containers and ``argparse.Namespace`` only)."""
    import torch
    from esm.pretrained import load_model_and_alphabet_core

    try:
        with torch.serialization.safe_globals([Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        raise InvalidInputError(
            f"Could not read {path} as a fair-esm checkpoint (only tensors and argparse.Namespace are unpickled): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    if not (isinstance(data, dict) and isinstance(data.get("model"), dict) and isinstance(data.get("cfg"), dict)):
        raise InvalidInputError(f"{path} is not a fair-esm ESM-2 checkpoint (expected the keys 'model' and 'cfg').")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Regression weights not found")
            model, alphabet = load_model_and_alphabet_core(path.stem, data, None)
    except (RuntimeError, KeyError, AttributeError, TypeError) as err:
        raise InvalidInputError(f"{path} does not hold a loadable ESM-2 model: {str(err).splitlines()[0]}") from None
    return model.eval(), alphabet


def embed_sequences(model, alphabet, sequences, layer, toks_per_batch, truncation_seq_length, device, progress):
    """Mean over residues of layer ``layer`` for each sequence, batched exactly as fair-esm's ``extract.py``."""
    import torch
    from esm.data import FastaBatchedDataset
    from tqdm.auto import tqdm

    dataset = FastaBatchedDataset(list(range(len(sequences))), list(sequences))
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    converter = alphabet.get_batch_converter(truncation_seq_length)
    out = np.empty((len(sequences), model.embed_dim), dtype=np.float32)
    with torch.inference_mode():
        fused = fused_attention_weights(model, layer)
        for batch in tqdm(batches, desc="ESM-2", unit="batch", disable=not progress, leave=False):
            labels, strs, toks = converter([dataset[i] for i in batch])
            hidden = representation(model, toks.to(device), layer, fused)
            n_residues = torch.tensor([min(truncation_seq_length, len(s)) for s in strs], device=device)
            positions = torch.arange(hidden.shape[1], device=device)[None, :]
            keep = ((positions >= 1) & (positions <= n_residues[:, None])).to(hidden.dtype)  # BOS/EOS/pad out
            pooled = torch.einsum("btd,bt->bd", hidden, keep) / n_residues[:, None].to(hidden.dtype)
            out[np.asarray(labels)] = pooled.float().cpu().numpy()
    return out


def representation(model, tokens, layer: int, fused=None):
    """fair-esm ``ESM2.forward(tokens, repr_layers=[layer])["representations"][layer]``, stopping at ``layer``.

    Same operations as fair-esm (token-dropout scaling, padding zeroed, rotary self-attention, final layer norm on
    the last layer), but layers above ``layer`` and the language-model head are skipped, the q/k/v projections
    are one matmul, rotary embeddings are one complex product and attention runs through PyTorch's
    ``scaled_dot_product_attention``. ``fused``: the output of :func:`fused_attention_weights` (computed here
    if not given).
    """
    import torch

    if fused is None:
        fused = fused_attention_weights(model, layer)
    padding_mask = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        x = x.masked_fill((tokens == model.mask_idx).unsqueeze(-1), 0.0)
        mask_ratio_train = 0.15 * 0.8
        src_lengths = (~padding_mask).sum(-1)
        mask_ratio_observed = (tokens == model.mask_idx).sum(-1).to(x.dtype) / src_lengths
        x = x * (1 - mask_ratio_train) / (1 - mask_ratio_observed)[:, None, None]
    x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
    attend = None if not padding_mask.any() else ~padding_mask[:, None, None, :]
    if layer:
        inv_freq = model.layers[0].self_attn.rot_emb.inv_freq.to(device=x.device, dtype=torch.float32)
        angles = torch.outer(torch.arange(x.shape[1], device=x.device, dtype=torch.float32), inv_freq)
        rotary = torch.polar(torch.ones_like(angles), angles)[None, :, None, :]  # 1 x T x 1 x D/2
    for index in range(layer):
        x = _transformer_layer(model.layers[index], x, attend, rotary, fused[index])
    if layer == model.num_layers:
        x = model.emb_layer_norm_after(x)
    return x


def fused_attention_weights(model, n_layers: int) -> list:
    """Per layer, the weight and bias of one q|k|v projection with q and k rows interleaved within each head.

    ESM-2 rotates the pairs (j, j + head_dim/2) of each head; interleaving them as (2j, 2j + 1) in both q and k
    (which leaves q . k unchanged) turns the rotation into one complex multiplication.
    """
    import torch

    weights = []
    for block in model.layers[:n_layers]:
        attention = block.self_attn
        heads, head_dim = attention.num_heads, attention.head_dim
        pairs = torch.arange(head_dim).view(2, head_dim // 2).t().reshape(-1)  # 0, D/2, 1, D/2 + 1, ...
        rows = (torch.arange(heads)[:, None] * head_dim + pairs[None, :]).reshape(-1).to(attention.q_proj.weight.device)
        weight = torch.cat([attention.q_proj.weight[rows], attention.k_proj.weight[rows], attention.v_proj.weight])
        bias = torch.cat([attention.q_proj.bias[rows], attention.k_proj.bias[rows], attention.v_proj.bias])
        weights.append((weight.detach(), bias.detach()))
    return weights


def _transformer_layer(block, x, attend, rotary, fused):
    """One ESM-2 ``TransformerLayer`` (pre-LN, rotary self-attention, GELU MLP) with SDPA; ``x`` is B x T x C."""
    import torch
    import torch.nn.functional as F

    attention = block.self_attn
    batch, length, channels = x.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    qkv = F.linear(block.self_attn_layer_norm(x), *fused).view(batch, length, 3, heads, head_dim // 2, 2)

    def rotate(part):
        return torch.view_as_real(torch.view_as_complex(part) * rotary).flatten(-2).transpose(1, 2)

    q, k = rotate(qkv[:, :, 0]), rotate(qkv[:, :, 1])
    v = qkv[:, :, 2].flatten(-2).transpose(1, 2)
    h = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=attention.scaling)
    x = x + attention.out_proj(h.transpose(1, 2).reshape(batch, length, channels))
    h = block.fc2(F.gelu(block.fc1(block.final_layer_norm(x))))  # exact (erf) GELU, as esm.modules.gelu
    return x + h
