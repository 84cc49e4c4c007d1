"""The StructuredVAE's data side: setup validation, likelihoods per modality and training-split gene statistics.

Plain functions on MuData / arrays, kept apart from the model class in :mod:`._structured_vae`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import CHROMOSOMES
from .._expression import RNA_SCALES, check_expression_scale, log_normalise
from .._layout import LatentLayout
from .._validation import (
    InvalidInputError,
    check_choice,
    check_finite,
    check_modality,
    check_numeric,
    check_obs_columns,
    check_unique,
    describe_examples,
    get_matrix,
)
from ._structured_vae_module import MODALITY_LIKELIHOODS
from ._unpaired import modality_rows

#: Default mapping of latent slices to the modalities that define them.
DEFAULT_MODALITIES: dict[str, str] = {"meth": "meth", "cnv": "cnv", "ctx": "mut"}
_SCALE_LIKELIHOOD = {
    "beta": "beta",
    "binary": "bernoulli",
    "log2_ratio": "normal",
    "gistic": "normal",
    "zscore": "normal",
    "log2": "normal",
}


def _modality_key(slice_name: str) -> str:
    return f"modality_{slice_name}"


def _infer_likelihood(adata, mod_name: str) -> str:
    scale = adata.uns.get("scale")
    if isinstance(scale, str) and scale in _SCALE_LIKELIHOOD:
        return _SCALE_LIKELIHOOD[scale]
    X = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    values = X[~np.isnan(X)] if X.dtype.kind == "f" else X.ravel()
    if values.size and np.isin(values, [0, 1]).all():
        return "bernoulli"
    if values.size and values.min() > 0 and values.max() < 1:
        return "beta"
    return "normal"


def _as_layout(layout) -> LatentLayout:
    if layout is None:
        return LatentLayout.cfmd328()
    if isinstance(layout, LatentLayout):
        return layout
    return LatentLayout.from_dict(layout)


_ROLE_DEFAULTS = {"pathway_slice": "pathway", "prolif_slice": "prolif", "residual_slice": "residual"}


def check_layout_roles(layout: LatentLayout, modalities: Mapping[str, str], roles: Mapping | None = None) -> None:
    """Require every slice a modality or a role (``pathway_slice``, ...) names to exist in ``layout``.

    Parameters
    ----------
    layout
        The latent layout.
    modalities
        ``{latent slice: modality}``.
    roles
        Role keyword arguments of :class:`StructuredVAE` (others are ignored); missing roles take their defaults.
    """
    roles = dict(roles or {})
    if not isinstance(modalities, Mapping):
        raise InvalidInputError("`modalities` must map latent slice names to modality names.")
    named = {f"modalities[{name!r}]": name for name in modalities}
    named.update({f"`{role}`": roles.get(role, default) for role, default in _ROLE_DEFAULTS.items()})
    for where, slice_name in named.items():
        if slice_name is not None and slice_name not in layout:
            raise InvalidInputError(
                f"The layout has no slice {slice_name!r} named by {where} (slices: {layout.names}); pass a layout that "
                "has it or map the role to another slice."
            )


def _check_train_indices(train_indices, n_obs: int) -> np.ndarray:
    """Sorted unique positions of the training patients (all patients when ``None``)."""
    if train_indices is None:
        return np.arange(n_obs)
    rows = np.asarray(train_indices)
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
        raise InvalidInputError(
            f"`train_indices` must be a non-empty 1-d sequence of integer positions in mdata.obs; got {train_indices!r}."
        )
    if rows.min() < 0 or rows.max() >= n_obs:
        raise InvalidInputError(f"`train_indices` must lie in [0, {n_obs}) (positions in mdata.obs).")
    return np.unique(rows)


def _modality_means(mdata, mod_name: str, train_rows: np.ndarray) -> np.ndarray:
    """Per-feature mean of one modality over the training patients who have it (0 where none is observed)."""
    adata = mdata.mod[mod_name]
    rows = modality_rows(mdata, mod_name)[train_rows]
    rows = np.sort(rows[rows >= 0])
    X = adata.X[rows]
    values = np.asarray(X.toarray() if sparse.issparse(X) else X, dtype=np.float64)
    if values.shape[0] == 0:
        return np.zeros(adata.n_vars)
    observed = ~np.isnan(values)
    counts = observed.sum(0)
    sums = np.where(observed, values, 0.0).sum(0)
    return np.divide(sums, counts, out=np.zeros(adata.n_vars), where=counts > 0)


def _gene_symbols(rna) -> np.ndarray:
    if "gene_symbol" in rna.var:
        return rna.var["gene_symbol"].astype(str).to_numpy()
    return np.asarray(rna.var_names, dtype=str)


def _genomic_bins(var: pd.DataFrame, *, bin_size: int) -> np.ndarray:
    """Contiguous genomic-bin index per gene from ``var['chromosome']`` and ``var['start']`` (-1 if unknown)."""
    if "chromosome" not in var or "start" not in var:
        return np.full(len(var), -1)
    chrom = pd.Index(CHROMOSOMES).get_indexer(var["chromosome"].astype(str))
    start = pd.to_numeric(var["start"], errors="coerce").to_numpy()
    known = (chrom >= 0) & np.isfinite(start)
    keys = np.where(known, chrom * 10_000 + np.floor(np.nan_to_num(start) / bin_size), -1).astype(np.int64)
    _, codes = np.unique(keys[known], return_inverse=True)
    out = np.full(len(var), -1, dtype=np.int64)
    out[known] = codes
    return out


def _gene_offset(X, rna_scale: str) -> np.ndarray:
    """Decoder baseline: log mean expression proportion (counts) or mean value (other scales)."""
    if rna_scale == "counts":
        X = sparse.csr_matrix(X, dtype=np.float64)
        totals = np.asarray(X.sum(1)).ravel()
        totals[totals == 0] = 1.0
        proportion = np.asarray((sparse.diags(1.0 / totals) @ X).mean(0)).ravel()
        return np.log(proportion + 1e-10).astype(np.float32)
    return np.asarray(X.mean(0)).ravel().astype(np.float32)


def _gene_moments(X, rna_scale: str, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and standard deviation of the log-normalised expression (streamed over patients)."""
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    total_sq = np.zeros(X.shape[1])
    for start in range(0, n, chunk):
        block = log_normalise(X[start : start + chunk], rna_scale)
        total += block.sum(0)
        total_sq += (block**2).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def _resolve_likelihoods(mdata, modalities: Mapping[str, str], likelihoods: Mapping[str, str]) -> dict[str, str]:
    return {mod: likelihoods.get(mod) or _infer_likelihood(mdata.mod[mod], mod) for mod in modalities.values()}


def _validate_setup(mdata, rna_key, rna_layer, rna_scale, modalities, likelihoods, cancer_type_key) -> dict[str, str]:
    """All checks of :meth:`StructuredVAE.setup_mudata`, before anything is registered."""
    check_choice(rna_scale, "rna_scale", RNA_SCALES)
    rna = check_modality(mdata, rna_key)
    check_unique(mdata.obs_names, "mdata.obs_names")
    field = f"mdata[{rna_key!r}]" + (f".layers[{rna_layer!r}]" if rna_layer else ".X")
    X = get_matrix(rna, rna_layer, field=f"mdata[{rna_key!r}]")
    check_unique(rna.obs_names, f"mdata[{rna_key!r}].obs_names")
    check_unique(rna.var_names, f"mdata[{rna_key!r}].var_names")
    check_expression_scale(X, rna_scale, field)
    missing_rna = mdata.obs_names[modality_rows(mdata, rna_key) < 0]
    if len(missing_rna):
        raise InvalidInputError(
            f"Every patient needs RNA: {len(missing_rna)} patient(s) of mdata.obs are missing from "
            f"mdata[{rna_key!r}] ({describe_examples(missing_rna)})."
        )
    if not isinstance(modalities, Mapping):
        raise InvalidInputError("`modalities` must map latent slice names to modality names.")
    for mod_name in likelihoods:
        if mod_name not in modalities.values():
            raise InvalidInputError(f"`likelihoods` names {mod_name!r}, which is not in `modalities`.")
    for mod_name, lik in likelihoods.items():
        check_choice(lik, f"likelihoods[{mod_name!r}]", MODALITY_LIKELIHOODS)
    for slice_name, mod_name in modalities.items():
        if mod_name == rna_key:
            raise InvalidInputError(f"`modalities[{slice_name!r}]` must not be the RNA modality {rna_key!r}.")
        adata = check_modality(mdata, mod_name)
        fieldm = f"mdata[{mod_name!r}].X"
        check_numeric(adata.X, fieldm)
        check_unique(adata.obs_names, f"mdata[{mod_name!r}].obs_names")
        values = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X, dtype=np.float64)
        if np.isinf(values).any():
            raise InvalidInputError(f"{fieldm} has infinite values; use NaN for missing measurements.")
        all_nan = np.isnan(values).all(axis=0)
        if all_nan.any():
            raise InvalidInputError(
                f"{fieldm} has {int(all_nan.sum())} all-NaN feature(s) ({describe_examples(adata.var_names[all_nan])}); "
                "drop them before setup."
            )
        lik = likelihoods.get(mod_name) or _infer_likelihood(adata, mod_name)
        finite = values[~np.isnan(values)]
        if lik == "beta" and (finite.min() < 0 or finite.max() > 1):
            raise InvalidInputError(f"{fieldm} must hold beta values in [0, 1] for a beta likelihood.")
        if lik == "bernoulli" and not np.isin(finite, [0, 1]).all():
            raise InvalidInputError(f"{fieldm} must hold 0/1 values for a bernoulli likelihood.")
        check_finite(finite, fieldm)
    if cancer_type_key is not None:
        check_obs_columns(mdata.obs, [cancer_type_key])
        if mdata.obs[cancer_type_key].isna().any():
            raise InvalidInputError(f"mdata.obs[{cancer_type_key!r}] has missing values.")
    return _resolve_likelihoods(mdata, modalities, likelihoods)
