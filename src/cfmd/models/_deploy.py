"""Apply a trained model to new patients: match genes by name, pad missing ones, stand in for absent modalities.

A model is applied to a MuData whose RNA genes may come in another order, or lack some of the model's genes.
:func:`align_to_model` returns a MuData (a new object when anything differs; the caller's object is never
changed) whose RNA has exactly the model's genes in the model's order:

- genes are matched by **name** (``var_names``), never by position; extra genes are dropped;
- a missing gene is padded with the value that is **zero in the model's normalised units**, i.e. its
  training-split mean log-expression (for counts: the count that gives that log1p(CP10k) with the padded
  library size; for log2 / z-scored input: the mean itself). The model then sees the gene as average, and
  everything it reads from that gene (teacher inputs included) carries no patient information; a
  ``UserWarning`` names the genes and what depends on them;
- fewer than ``min_gene_overlap`` of the model's genes is an :class:`~cfmd.InvalidInputError`;
- a registered non-RNA modality absent from the MuData is served as "not observed" for every patient (an
  empty placeholder modality), so RNA-only patients get the RNA-only prediction.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse

from .._validation import InvalidInputError, check_unique, describe_examples

__all__ = ["DEFAULT_MIN_GENE_OVERLAP", "align_to_model", "padding_values"]

#: Default smallest fraction of the model's genes the new data must have.
DEFAULT_MIN_GENE_OVERLAP = 0.5


def padding_values(present: np.ndarray, gene_mean: np.ndarray, rna_scale: str) -> np.ndarray:
    """Values of the missing genes that standardise to exactly 0 (the training mean), per patient.

    Parameters
    ----------
    present
        ``(n_patients, n_present)`` RNA of the genes the data has (model units: counts, log2 or z-scores).
    gene_mean
        Training mean of the missing genes' log-normalised expression (log1p CP10k for counts).
    rna_scale
        ``"counts"``, ``"log2"`` or ``"zscore"``.

    Returns
    -------
    ``(n_patients, n_missing)`` values.
    """
    n = present.shape[0]
    gene_mean = np.asarray(gene_mean, dtype=np.float64)
    if rna_scale != "counts":
        return np.broadcast_to(gene_mean, (n, gene_mean.size)).copy()
    # log1p(1e4 x_g / L) = mean_g with L = S + sum_g x_g  ->  x_g = p_g L / 1e4, L = S / (1 - P / 1e4)
    share = np.expm1(gene_mean) / 1e4
    total_share = share.sum()
    if total_share >= 0.99:
        raise InvalidInputError(
            "The missing genes carry almost all of the model's expected counts; the data cannot stand in for them."
        )
    totals = np.asarray(present.sum(axis=1), dtype=np.float64).ravel()
    library = np.maximum(totals, 1.0) / (1.0 - total_share)
    return library[:, None] * share[None, :]


def align_to_model(
    mdata: md.MuData,
    *,
    rna_key: str,
    rna_layer: str | None,
    rna_scale: str,
    genes: Sequence[str],
    gene_mean: np.ndarray,
    modalities: Mapping[str, Sequence[str]] | None = None,
    gene_roles: Mapping[str, np.ndarray] | None = None,
    min_gene_overlap: float = DEFAULT_MIN_GENE_OVERLAP,
    model_name: str = "model",
) -> md.MuData:
    """The MuData with RNA in the model's genes and order (``mdata`` itself when nothing differs).

    Parameters
    ----------
    mdata
        MuData with an ``rna_key`` modality covering every patient.
    rna_key, rna_layer, rna_scale
        The model's registered RNA modality, layer and scale.
    genes
        The model's genes, in its order.
    gene_mean
        Per model gene, the training mean of the log-normalised expression (the padding reference).
    modalities
        ``{modality: feature names}`` of the model's other registered modalities; an absent one becomes an empty
        placeholder (every patient "not observed"); a present one must have the same features.
    gene_roles
        ``{what reads them: model gene positions}``, for the warning about missing genes.
    min_gene_overlap
        Smallest fraction of ``genes`` that must be present (0-1].
    model_name
        Name used in messages.

    Returns
    -------
    A MuData whose ``mdata[rna_key]`` has exactly ``genes`` (``.X`` or ``rna_layer``), with the global ``obs``
    and ``obsm`` of ``mdata``.
    """
    if not isinstance(mdata, md.MuData):
        raise InvalidInputError(f"`mdata` must be a MuData with an {rna_key!r} modality; got {type(mdata).__name__}.")
    if rna_key not in mdata.mod:
        raise InvalidInputError(
            f"mdata has no modality {rna_key!r} (the model's RNA); modalities: {describe_examples(list(mdata.mod))}."
        )
    if not 0 < float(min_gene_overlap) <= 1:
        raise InvalidInputError(f"`min_gene_overlap` must be a fraction in (0, 1]; got {min_gene_overlap!r}.")
    rna = mdata.mod[rna_key]
    check_unique(rna.var_names, f"mdata[{rna_key!r}].var_names")
    if rna_layer is not None and rna_layer not in rna.layers:
        raise InvalidInputError(
            f"mdata[{rna_key!r}].layers has no {rna_layer!r} (the model's RNA layer); "
            f"layers: {describe_examples(list(rna.layers))}."
        )
    genes = pd.Index(np.asarray(genes, dtype=str))
    positions = rna.var_names.get_indexer(genes)
    found = positions >= 0
    overlap = found.mean()
    if overlap < float(min_gene_overlap):
        raise InvalidInputError(
            f"mdata[{rna_key!r}].var_names has {int(found.sum())} of the {len(genes)} genes the {model_name} was "
            f"trained on ({overlap:.0%}; `min_gene_overlap` is {float(min_gene_overlap):.0%}); genes are matched by "
            f"name. Missing: {describe_examples(genes[~found])}; the data has {describe_examples(rna.var_names)}."
        )
    missing_mods = {}
    for mod, features in dict(modalities or {}).items():
        if mod not in mdata.mod:
            missing_mods[mod] = list(features)
        elif not np.array_equal(np.asarray(mdata.mod[mod].var_names, dtype=str), np.asarray(features, dtype=str)):
            raise InvalidInputError(
                f"mdata[{mod!r}].var_names differ from the {len(features)} features the {model_name} was trained on "
                "(same features and order needed for non-RNA modalities)."
            )
    rows = rna.obs_names.get_indexer(mdata.obs_names)
    if (rows < 0).any():
        absent = mdata.obs_names[rows < 0]
        raise InvalidInputError(
            f"Every patient needs RNA: {len(absent)} patient(s) are missing from mdata[{rna_key!r}] "
            f"({describe_examples(absent)})."
        )
    same_genes = found.all() and np.array_equal(positions, np.arange(rna.n_vars))
    if same_genes and not missing_mods:
        return mdata

    matrix = rna.layers[rna_layer] if rna_layer is not None else rna.X
    matrix = matrix[rows][:, positions[found]]
    if not found.all():
        dense = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
        full = np.zeros((len(rows), len(genes)), dtype=np.result_type(dense.dtype, np.float32))
        full[:, found] = dense
        full[:, ~found] = padding_values(dense, np.asarray(gene_mean)[~found], rna_scale)
        matrix = full
        _warn_missing(genes, found, gene_roles, rna_key, model_name)
    else:
        matrix = matrix.copy()
    var = pd.DataFrame(index=genes)
    new_rna = ad.AnnData(
        X=matrix if rna_layer is None else sparse.csr_matrix(matrix.shape, dtype=np.float32),
        obs=pd.DataFrame(index=mdata.obs_names.copy()),
        var=var,
    )
    if rna_layer is not None:
        new_rna.layers[rna_layer] = matrix
    for key, value in rna.obsm.items():
        new_rna.obsm[key] = np.asarray(value)[rows] if not isinstance(value, pd.DataFrame) else value.iloc[rows]
    mods = {rna_key: new_rna}
    for mod, adata in mdata.mod.items():
        if mod != rna_key:
            mods[mod] = adata
    for mod, features in missing_mods.items():
        mods[mod] = ad.AnnData(
            X=np.zeros((0, len(features)), dtype=np.float32),
            obs=pd.DataFrame(index=pd.Index([], dtype=str)),
            var=pd.DataFrame(index=pd.Index(np.asarray(features, dtype=str))),
        )
    with md.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = md.MuData(mods)
        if not out.obs_names.equals(mdata.obs_names):  # pragma: no cover - RNA covers every patient in order
            raise InvalidInputError("Could not align the patients of `mdata` to its RNA modality.")
        for column in mdata.obs.columns:
            out.obs[column] = mdata.obs[column].to_numpy()
        for key, value in mdata.obsm.items():
            out.obsm[key] = value
        out.uns.update({k: v for k, v in mdata.uns.items() if not str(k).startswith("_scvi")})
    return out


def _warn_missing(genes, found, gene_roles, rna_key, model_name) -> None:
    missing = np.flatnonzero(~found)
    affected = []
    for role, index in dict(gene_roles or {}).items():
        index = np.asarray(index, dtype=int)
        hit = np.isin(index, missing).sum()
        if hit:
            affected.append(f"{hit} of the {index.size} {role} genes")
    cost = "; ".join(affected) if affected else "no gene with a dedicated teacher input"
    warnings.warn(
        f"mdata[{rna_key!r}] lacks {missing.size} of the {len(genes)} genes the {model_name} was trained on "
        f"({describe_examples(genes[missing])}). They are padded with their training mean (zero in the model's "
        f"normalised units), so they carry no patient information; affected: {cost}. Predictions that depend on "
        "these genes are less accurate.",
        UserWarning,
        stacklevel=3,
    )
