"""Geneformer rank-value tokenisation of bulk RNA-seq (:func:`tokenize`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._docs import DOC_COPY, doc_params
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import (
    InvalidInputError,
    check_choice,
    check_counts,
    check_finite,
    check_nonempty,
    check_not_view,
    check_positive_int,
    check_positive_number,
    describe_examples,
    get_matrix,
)

__all__ = ["GENEFORMER_VERSIONS", "TIE_BREAK", "tokenize"]

#: Settings of the two Geneformer model series (Theodoris et al. 2023; Chen et al. 2024).
GENEFORMER_VERSIONS: dict[str, dict[str, object]] = {
    "V1": {"model_input_size": 2048, "special_tokens": False, "corpus": "Genecorpus-30M (gc30M)"},
    "V2": {"model_input_size": 4096, "special_tokens": True, "corpus": "Genecorpus-104M (gc104M)"},
}

#: How exactly tied normalised values are ordered (Geneformer itself uses an unstable sort).
TIE_BREAK = (
    "genes ranked by descending normalised expression; exact ties broken by ascending token id "
    "(dictionary order), independent of the column order of the data"
)

_SHIPPED_TOKENS = "cfmd shipped Geneformer V1 gc30M token dictionary (geneformer_gc30M_token_dictionary.tsv.gz)"
_SHIPPED_MEDIANS = "cfmd shipped Geneformer V1 gc30M gene medians (geneformer_gc30M_gene_median.tsv.gz)"
_ENSEMBL_RE = re.compile(r"^(ENS[A-Z]*G\d+)(\.\d+)?$")
_CHUNK_ROWS = 256


@doc_params(copy=DOC_COPY)
def tokenize(
    adata: AnnData,
    *,
    version: Literal["V1", "V2"] = "V1",
    layer: str | None = None,
    scale: Literal["counts", "log2"] | None = None,
    gene_key: str | None = None,
    token_dictionary: Mapping[str, int] | str | PathLike | None = None,
    gene_medians: Mapping[str, float] | str | PathLike | None = None,
    symbol_map: Mapping[str, str] | str | PathLike | None = None,
    total_counts_key: str | None = None,
    target_sum: float = 10_000,
    model_input_size: int | None = None,
    key_added: str = "geneformer_tokens",
    copy: bool = False,
) -> AnnData | None:
    """Geneformer rank-value encoding of bulk RNA-seq samples.

    Reproduces Geneformer's ``TranscriptomeTokenizer`` for an :class:`~anndata.AnnData` of samples x genes:

    1. genes are mapped to Ensembl IDs (symbols through ``symbol_map`` first, Ensembl version suffixes
       dropped); columns that map to the same Ensembl ID are summed (Geneformer's ``collapse_gene_ids``);
    2. each sample's counts are divided by its total (the row sum over *all* genes of the matrix, like
       Geneformer's ``n_counts``, or ``obs[total_counts_key]``) and multiplied by ``target_sum``;
    3. each gene is divided by its non-zero median expression from ``gene_medians``;
    4. the non-zero genes are ranked by descending normalised value (ties: see :data:`TIE_BREAK`), mapped to
       token ids and truncated to the model input size (V2: ``<cls>`` + 4,094 genes + ``<eos>``).

    Parameters
    ----------
    adata
        Samples x genes. Bulk RNA-seq raw (or RSEM expected) counts, or ``log2(x + 1)`` of them.
    version
        ``"V1"``: Geneformer's original models (gc30M dictionaries, shipped with cfmd; 2,048 tokens, no special
        tokens). ``"V2"``: the 104M-cell models (4,096 tokens, ``<cls>``/``<eos>``); their dictionaries are not
        shipped, pass ``token_dictionary`` and ``gene_medians``. Tokens of one version must only be fed to
        models of that version.
    layer
        Layer of ``adata`` holding the expression; ``None`` uses ``adata.X``.
    scale
        ``"counts"`` (non-negative counts; non-negative normalised values such as RSEM-normalised or TPM are
        accepted too, as every sample is rescaled by its total) or ``"log2"`` (``log2(x + 1)`` of those,
        back-transformed with ``2**x - 1`` before normalisation). ``None``: the scale declared in
        ``adata.uns['scale']`` by cfmd's loaders (``"counts"``, ``"normalized"`` or ``"log2"``), else
        ``"counts"``. Z-scored or centred matrices cannot be rank-value encoded.
    gene_key
        Column of ``adata.var`` with the gene identifiers. ``None``: ``var['ensembl_id']`` if present, else
        ``var_names``. Each identifier that looks like an Ensembl gene ID (``ENSG...``, version suffix allowed) is
        used as such; any other is treated as a gene symbol and mapped through ``symbol_map``.
    token_dictionary
        ``{token: id}`` mapping, or a path to a two-column TSV (``token``, ``id``; optionally gzipped) or JSON
        file. Must contain ``<pad>``; V2 also ``<cls>`` and ``<eos>``. Default (V1 only): the shipped gc30M
        dictionary. Pickles are never read.
    gene_medians
        ``{ensembl_id: non-zero median}``, or a path to a TSV/JSON file as above. Default (V1 only): the shipped
        gc30M medians.
    symbol_map
        ``{symbol: ensembl_id}`` used for identifiers that are not Ensembl IDs (exact match first, then
        upper-case). Default: Geneformer's own symbol map (:func:`cfmd.datasets.geneformer_gene_name_id`).
    total_counts_key
        Column of ``adata.obs`` with each sample's total counts. ``None``: the row sums of the matrix (over all
        genes, mapped or not); use this option when ``adata`` holds only a subset of the sequenced genes.
    target_sum
        Counts per sample after scaling (Geneformer: 10,000).
    model_input_size
        Maximum number of tokens per sample, special tokens included. Default: 2,048 (V1) or 4,096 (V2).
    key_added
        Where to write the tokens (see Returns).
    {copy}

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes

    ``adata.obsm[key_added]``
        ``int32`` token ids, one row per sample, right-padded with the ``<pad>`` id to the longest sample.
    ``adata.obs[f"{key_added}_length"]``
        Number of real tokens per sample (special tokens included, padding excluded).
    ``adata.uns[key_added]``
        Provenance: ``version``, ``model_input_size``, ``special_tokens``, ``vocab_size``, the ``pad``/``cls``/
        ``eos`` token ids (``-1`` when absent), the dictionaries' sources and SHA-256 digests, ``target_sum``,
        ``scale``, ``layer``, ``gene_key``, ``total_counts``, ``tie_break``, gene counts (``n_genes``,
        ``n_genes_mapped``, ``n_genes_unmapped``, ``unmapped_genes``, ``n_genes_collapsed``) and
        ``n_samples_truncated``.

    Notes
    -----
    Unmapped genes (no Ensembl ID, not in the token dictionary, or without a median) are skipped and reported
    through the ``cfmd`` logger and ``uns``. A sample whose total is zero, or that expresses none of the mapped
    genes, is an error (Geneformer silently drops such cells; here rows must stay aligned with ``obs``).

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=50, n_genes=300, seed=0)
    >>> cfmd.pp.tokenize(mdata["rna"])
    >>> mdata["rna"].obsm["geneformer_tokens"].dtype
    dtype('int32')
    """
    if not copy:
        check_not_view(adata, "adata")
    with unchanged_on_error(adata):
        # ------------------------------------------------------------------ validation (nothing written yet)
        if not isinstance(adata, AnnData):
            raise InvalidInputError(f"`adata` must be an AnnData object; got {type(adata).__name__}.")
        check_choice(version, "version", GENEFORMER_VERSIONS)
        _check_key(key_added, "key_added")
        settings = GENEFORMER_VERSIONS[version]
        special = bool(settings["special_tokens"])
        if model_input_size is None:
            model_input_size = int(settings["model_input_size"])
        model_input_size = check_positive_int(model_input_size, "model_input_size", minimum=3 if special else 1)
        target_sum = check_positive_number(target_sum, "target_sum")

        field = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
        X = get_matrix(adata, layer, field="adata")
        check_nonempty(adata.n_obs, field, "samples (rows)")
        check_nonempty(adata.n_vars, field, "genes (columns)")
        scale = _resolve_scale(adata, scale)
        _check_expression(X, field, scale)

        tokens, token_source = _load_dictionary(token_dictionary, "token_dictionary", version, int)
        medians, median_source = _load_dictionary(gene_medians, "gene_medians", version, float)
        vocab_size, pad_id, cls_id, eos_id = _check_token_dictionary(tokens, version, token_source)
        _check_medians(medians, median_source)

        ids, id_field = _gene_identifiers(adata, gene_key)
        symbols = _load_symbol_map(symbol_map)
        ensembl = _to_ensembl(ids, symbols)
        usable = np.array([e is not None and e in tokens and e in medians and not e.startswith("<") for e in ensembl])
        if not usable.any():
            raise InvalidInputError(
                f"No gene of {id_field} could be mapped to the Geneformer {version} token dictionary "
                f"({token_source}); identifiers look like {describe_examples(ids)}. Pass `gene_key=` naming the var "
                "column with Ensembl IDs or HGNC symbols, or `symbol_map=` for other symbols."
            )
        totals = _sample_totals(adata, X, scale, total_counts_key)

        # ------------------------------------------------------------------ computation
        mapped_ensembl = np.array([e for e, ok in zip(ensembl, usable) if ok], dtype=object)
        unique_ens = sorted(set(mapped_ensembl), key=tokens.__getitem__)  # columns in token-id order (tie-break)
        column_of = {e: j for j, e in enumerate(unique_ens)}
        token_ids = np.array([tokens[e] for e in unique_ens], dtype=np.int64)
        median_vec = np.array([medians[e] for e in unique_ens], dtype=np.float64)
        rows = np.flatnonzero(usable)
        aggregate = sparse.csr_matrix(
            (np.ones(rows.size), (rows, [column_of[e] for e in mapped_ensembl])), shape=(adata.n_vars, len(unique_ens))
        )
        n_keep = model_input_size - 2 if special else model_input_size

        ranked: list[np.ndarray] = []
        n_expressed = np.zeros(adata.n_obs, dtype=np.int64)
        for start in range(0, adata.n_obs, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, adata.n_obs)
            counts = _as_counts(X[start:stop], scale)
            mapped = counts @ aggregate
            mapped = mapped.toarray() if sparse.issparse(mapped) else np.asarray(mapped, dtype=np.float64)
            # same arithmetic, in the same order, as Geneformer: x / n_counts * target_sum / median
            normalised = mapped / totals[start:stop, None] * target_sum / median_vec[None, :]
            order = np.argsort(-normalised, axis=1, kind="stable")[:, :n_keep]
            n_expressed[start:stop] = np.count_nonzero(normalised > 0, axis=1)
            ranked.extend(token_ids[order[i, : min(n_expressed[start + i], n_keep)]] for i in range(stop - start))

        empty = n_expressed == 0
        if empty.any():
            raise InvalidInputError(
                f"{field}: {int(empty.sum())} sample(s) express none of the {len(unique_ens)} mapped genes: "
                f"{describe_examples(adata.obs_names[empty])}. Remove them before tokenising."
            )

        lengths = np.array([r.size for r in ranked], dtype=np.int64) + (2 if special else 0)
        width = int(lengths.max())
        token_matrix = np.full((adata.n_obs, width), pad_id, dtype=np.int32)
        offset = 1 if special else 0
        for i, r in enumerate(ranked):
            token_matrix[i, offset : offset + r.size] = r
        if special:
            token_matrix[:, 0] = cls_id
            token_matrix[np.arange(adata.n_obs), lengths - 1] = eos_id

        unmapped = np.asarray(ids, dtype=object)[~usable].astype(str)
        n_collapsed = int(usable.sum()) - len(unique_ens)
        n_truncated = int((n_expressed > n_keep).sum())
        if unmapped.size:
            logger.warning(
                "tokenize: %d of %d genes of %s could not be mapped to the Geneformer %s dictionary and are ignored "
                "(e.g. %s).",
                unmapped.size,
                adata.n_vars,
                id_field,
                version,
                describe_examples(unmapped),
            )
        if n_collapsed:
            logger.info("tokenize: %d gene column(s) shared an Ensembl ID with another and were summed.", n_collapsed)
        logger.info(
            "tokenize: %d samples, %d mapped genes, median length %d tokens (%d truncated to %d).",
            adata.n_obs,
            len(unique_ens),
            int(np.median(lengths)),
            n_truncated,
            model_input_size,
        )

        info = {
            "version": version,
            "model_input_size": model_input_size,
            "special_tokens": special,
            "vocab_size": vocab_size,
            "pad_token_id": pad_id,
            "cls_token_id": cls_id,
            "eos_token_id": eos_id,
            "token_dictionary": token_source,
            "token_dictionary_sha256": _mapping_digest(tokens),
            "gene_medians": median_source,
            "gene_medians_sha256": _mapping_digest(medians),
            "target_sum": target_sum,
            "scale": scale,
            "layer": "X" if layer is None else layer,
            "gene_key": id_field,
            "total_counts": "row sums of the matrix" if total_counts_key is None else f"obs[{total_counts_key!r}]",
            "tie_break": TIE_BREAK,
            "n_genes": int(adata.n_vars),
            "n_genes_mapped": int(usable.sum()),
            "n_genes_unmapped": int(unmapped.size),
            "unmapped_genes": unmapped,
            "n_genes_collapsed": n_collapsed,
            "n_samples_truncated": n_truncated,
        }

        # ------------------------------------------------------------------ write
        target = adata.copy() if copy else adata
        target.obsm[key_added] = token_matrix
        target.obs[f"{key_added}_length"] = lengths
        target.uns[key_added] = info
        return target if copy else None

    # ---------------------------------------------------------------------- helpers


def _check_key(key, field: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"`{field}` must be a non-empty string; got {key!r}.")


def _resolve_scale(adata: AnnData, scale) -> str:
    """The declared scale: ``scale`` itself, else ``adata.uns['scale']`` (as written by cfmd's loaders), else counts."""
    if scale is not None:
        check_choice(scale, "scale", ("counts", "log2"))
        return scale
    declared = adata.uns.get("scale")
    if declared is None:
        return "counts"
    if declared in ("counts", "normalized", "log2"):
        return "log2" if declared == "log2" else "counts"
    raise InvalidInputError(
        f"adata.uns['scale'] declares the expression as {declared!r}, which cannot be rank-value encoded or "
        "log-weighted: counts, non-negative normalised values or log2(x + 1) of them are needed. Pass `scale=` "
        "explicitly if the declaration is wrong."
    )


def _check_expression(X, field: str, scale: str) -> None:
    if scale == "counts":
        check_counts(X, field, require_integer=False)
        values = X.data if sparse.issparse(X) else np.asarray(X)
        if values.size and values.max() <= 30 and np.any(values != np.round(values)):
            logger.warning(
                "%s was declared as counts but all values are <= 30 and some are fractional: if it holds "
                "log2(x + 1) expression, pass `scale='log2'`.",
                field,
            )
        return
    check_finite(X, field)
    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.size and values.min() < 0:
        raise InvalidInputError(
            f"{field} was declared `scale='log2'` (log2(x + 1) of counts, >= 0) but holds "
            f"{int(np.count_nonzero(values < 0))} negative value(s): centred or z-scored expression cannot be "
            "rank-value encoded."
        )


def _as_counts(block, scale: str):
    """A float64 copy of a row block, back-transformed from log2(x + 1) if needed (zeros stay zero)."""
    if sparse.issparse(block):
        block = sparse.csr_matrix(block, dtype=np.float64, copy=True)
        if scale == "log2":
            block.data = np.exp2(block.data) - 1.0
        return block
    block = np.array(block, dtype=np.float64)
    if scale == "log2":
        block = np.exp2(block) - 1.0
    return block


def _sample_totals(adata: AnnData, X, scale: str, total_counts_key: str | None) -> np.ndarray:
    if total_counts_key is not None:
        if total_counts_key not in adata.obs.columns:
            raise InvalidInputError(
                f"adata.obs has no column {total_counts_key!r} (`total_counts_key`); available: "
                f"{describe_examples(list(adata.obs.columns), limit=12)}."
            )
        totals = pd.to_numeric(adata.obs[total_counts_key], errors="coerce").to_numpy(dtype=np.float64)
        field = f"adata.obs[{total_counts_key!r}]"
    else:
        totals = np.concatenate(
            [
                np.asarray(_as_counts(X[s : s + _CHUNK_ROWS], scale).sum(axis=1)).ravel()
                for s in range(0, adata.n_obs, _CHUNK_ROWS)
            ]
        )
        field = "the row sums of the expression matrix"
    bad = ~(np.isfinite(totals) & (totals > 0))
    if bad.any():
        raise InvalidInputError(
            f"Every sample needs a positive total count; {field} is zero, missing or invalid for "
            f"{int(bad.sum())} sample(s): {describe_examples(adata.obs_names[bad])}."
        )
    return totals


def _gene_identifiers(adata: AnnData, gene_key: str | None) -> tuple[list[str], str]:
    if gene_key is None:
        if "ensembl_id" in adata.var.columns:
            gene_key = "ensembl_id"
        else:
            return [str(v) for v in adata.var_names], "adata.var_names"
    if gene_key not in adata.var.columns:
        raise InvalidInputError(
            f"adata.var has no column {gene_key!r} (`gene_key`); available: "
            f"{describe_examples(list(adata.var.columns), limit=12)}."
        )
    values = adata.var[gene_key]
    return ["" if pd.isna(v) else str(v) for v in values], f"adata.var[{gene_key!r}]"


def _to_ensembl(ids: list[str], symbols: Mapping[str, str]) -> list[str | None]:
    out: list[str | None] = []
    for raw in ids:
        gene = raw.strip()
        match = _ENSEMBL_RE.match(gene.upper())
        if match:
            out.append(match.group(1))
        elif gene:
            out.append(symbols.get(gene) or symbols.get(gene.upper()))
        else:
            out.append(None)
    return out


def _load_symbol_map(symbol_map) -> Mapping[str, str]:
    if symbol_map is None:
        from ..datasets._reference import geneformer_gene_name_id

        return geneformer_gene_name_id()
    mapping, _ = _read_mapping(symbol_map, "symbol_map", str)
    return mapping


def _load_dictionary(source, field: str, version: str, value_type) -> tuple[dict, str]:
    if source is None:
        if version != "V1":
            raise InvalidInputError(
                f"`{field}` is required for Geneformer {version}: only the V1 (gc30M) dictionaries ship with cfmd. "
                "Pass the dictionaries that belong to your V2 checkpoint (converted to TSV, see docs/teachers.md)."
            )
        from ..datasets._reference import geneformer_gene_medians, geneformer_token_dictionary

        if field == "token_dictionary":
            return geneformer_token_dictionary(), _SHIPPED_TOKENS
        return geneformer_gene_medians(), _SHIPPED_MEDIANS
    return _read_mapping(source, field, value_type)


def _read_mapping(source, field: str, value_type) -> tuple[dict, str]:
    """A ``{key: value}`` mapping from a Mapping, a two-column TSV (optionally gzipped, header optional) or JSON."""
    if isinstance(source, Mapping):
        items = list(source.items())
        description = f"<{type(source).__name__} of {len(items)} entries>"
    else:
        if not isinstance(source, str | PathLike):
            raise InvalidInputError(f"`{field}` must be a mapping or a path to a TSV/JSON file; got {source!r}.")
        path = Path(source)
        description = str(path)
        suffixes = [s.lower() for s in path.suffixes]
        if any(s in (".pkl", ".pickle", ".pk") for s in suffixes):
            raise InvalidInputError(
                f"`{field}` points to a pickle ({path}); cfmd never unpickles files. Convert it once, from a "
                "source you trust, to a two-column TSV (see docs/teachers.md)."
            )
        if not path.is_file():
            raise InvalidInputError(f"`{field}` file not found: {path}.")
        if ".json" in suffixes:
            try:
                with path.open() as fh:
                    loaded = json.load(fh)
            except (OSError, ValueError) as err:
                raise InvalidInputError(f"`{field}` file {path} is not valid JSON: {err}.") from None
            if not isinstance(loaded, dict):
                raise InvalidInputError(f"`{field}` file {path} must hold a JSON object {{key: value}}.")
            items = list(loaded.items())
        else:
            try:
                table = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
            except (OSError, ValueError, pd.errors.ParserError) as err:
                raise InvalidInputError(f"`{field}` file {path} could not be read as TSV: {err}.") from None
            if table.shape[1] < 2 or table.empty:
                raise InvalidInputError(f"`{field}` file {path} must have two tab-separated columns (key, value).")
            if value_type is not str and not _is_number(table.iat[0, 1]):
                table = table.iloc[1:]  # header row
            items = list(zip(table.iloc[:, 0], table.iloc[:, 1]))
    mapping: dict = {}
    for key, value in items:
        try:
            converted = value_type(value)
            if value_type is int and float(value) != converted:
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"`{field}` ({description}): the value of {key!r} must be {value_type.__name__}; got {value!r}."
            ) from None
        if str(key) in mapping:
            raise InvalidInputError(f"`{field}` ({description}) repeats the key {str(key)!r}.")
        mapping[str(key)] = converted
    if not mapping:
        raise InvalidInputError(f"`{field}` ({description}) is empty.")
    return mapping, description


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_token_dictionary(tokens: Mapping[str, int], version: str, source: str) -> tuple[int, int, int, int]:
    ids = np.array(list(tokens.values()), dtype=np.int64)
    if np.unique(ids).size != ids.size or ids.min() != 0 or ids.max() != ids.size - 1:
        raise InvalidInputError(
            f"`token_dictionary` ({source}) must map its {ids.size} tokens to the ids 0..{ids.size - 1}, each once."
        )
    if "<pad>" not in tokens:
        raise InvalidInputError(f"`token_dictionary` ({source}) has no '<pad>' token.")
    has_special = "<cls>" in tokens and "<eos>" in tokens
    if version == "V2" and not has_special:
        raise InvalidInputError(
            f"`token_dictionary` ({source}) has no '<cls>'/'<eos>' tokens, so it is a V1 dictionary; Geneformer V2 "
            "needs the V2 dictionary of its checkpoint (V1 and V2 must not be mixed)."
        )
    if version == "V1" and ("<cls>" in tokens or "<eos>" in tokens):
        raise InvalidInputError(
            f"`token_dictionary` ({source}) contains '<cls>'/'<eos>', so it is a V2 dictionary; use `version='V2'` "
            "with a V2 checkpoint (V1 and V2 must not be mixed)."
        )
    return (
        int(ids.size),
        int(tokens["<pad>"]),
        int(tokens["<cls>"]) if has_special else -1,
        int(tokens["<eos>"]) if has_special else -1,
    )


def _check_medians(medians: Mapping[str, float], source: str) -> None:
    values = np.array(list(medians.values()), dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        keys = np.array(list(medians), dtype=object)[bad]
        raise InvalidInputError(
            f"`gene_medians` ({source}) must hold positive, finite medians; invalid for {describe_examples(keys)}."
        )


def _mapping_digest(mapping: Mapping) -> str:
    """SHA-256 of a mapping's sorted ``key<TAB>repr(value)`` lines (identifies a dictionary, whatever its file)."""
    digest = hashlib.sha256()
    for key in sorted(mapping):
        value = mapping[key]
        value = float(value) if isinstance(value, float | np.floating) else value
        digest.update(f"{key}\t{value!r}\n".encode())
    return digest.hexdigest()
