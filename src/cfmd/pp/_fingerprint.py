"""The expression-weighted structural fingerprint at a fixed temperature (:func:`structural_fingerprint`)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from anndata import AnnData
from scipy import sparse

from .._docs import DOC_COPY, doc_params
from .._expression import fingerprint_log_expression
from .._logging import logger
from .._transaction import unchanged_on_error
from .._validation import InvalidInputError, check_not_view, check_positive_number, describe_examples, get_matrix
from ._tokenize import _check_expression, _check_key, _resolve_scale

__all__ = ["structural_fingerprint"]

_CHUNK_ROWS = 512


@doc_params(copy=DOC_COPY)
def structural_fingerprint(
    adata: AnnData,
    *,
    embedding_key: str = "X_esm2",
    tau: float = 1.0,
    layer: str | None = None,
    scale: Literal["counts", "log2"] | None = None,
    key_added: str = "X_fingerprint",
    copy: bool = False,
) -> AnnData | None:
    r"""Expression-weighted patient structural fingerprint (paper, Section 3.2) at a fixed temperature.

    For each sample, with :math:`\tilde x_g = \log_2(x_g + 1)` over the genes :math:`g` that have an embedding
    :math:`e_g` in ``adata.varm[embedding_key]``:

    .. math::

        \alpha_g = \operatorname{softmax}_g(\tilde x_g / \tau), \quad s = \sum_g \alpha_g e_g, \quad
        H = \exp\Big(-\sum_g \alpha_g \log \alpha_g\Big),

    computed with the log-sum-exp trick (:func:`cfmd.models.nn.expression_weighted_fingerprint`, in float64), so
    counts of 10^7 or a small ``tau`` cannot overflow. :math:`H` is the effective number of genes: 1 when one
    gene dominates, the number of genes when all are equally expressed. The CFMD model learns ``tau``; this
    function is its inspectable, fixed-``tau`` counterpart.

    As in the paper, the weights use log2 counts without library-size normalisation.

    Parameters
    ----------
    adata
        Samples x genes with gene embeddings in ``adata.varm[embedding_key]`` (e.g. from
        :func:`cfmd.pp.esm_gene_embeddings`); genes whose row is not finite (no embedding) are left out.
    embedding_key
        Key of the gene embeddings in ``adata.varm``.
    tau
        Temperature (> 0). Small values concentrate the weights on the most expressed genes.
    layer
        Layer holding the expression; ``None`` uses ``adata.X``.
    scale
        ``"counts"`` (non-negative counts; ``log2(x + 1)`` is taken here) or ``"log2"`` (already
        ``log2(x + 1)``). ``None``: as declared in ``adata.uns['scale']`` (see :func:`cfmd.pp.tokenize`), else
        ``"counts"``.
    key_added
        Where to write (see Returns).
    {copy}

    Returns
    -------
    ``None``, or the modified copy if ``copy=True``. Writes

    ``adata.obsm[key_added]``
        ``float32`` fingerprints :math:`s`, ``n_samples x d_e``.
    ``adata.obs[f"{key_added}_effective_genes"]``
        The effective number of genes :math:`H` per sample.
    ``adata.uns[key_added]``
        ``tau``, ``embedding_key``, ``layer``, ``scale``, ``n_genes_used``.

    Examples
    --------
    >>> rna = cfmd.datasets.synthetic_cohort(n_patients=50, n_genes=300, seed=0)["rna"]
    >>> cfmd.pp.structural_fingerprint(rna, embedding_key="structural_features", tau=2.0)
    >>> rna.obsm["X_fingerprint"].shape
    (50, 32)
    """
    if not copy:
        check_not_view(adata, "adata")
    with unchanged_on_error(adata):
        import torch

        from .._fingerprint import expression_weighted_fingerprint

        # ------------------------------------------------------------------ validation (nothing written yet)
        if not isinstance(adata, AnnData):
            raise InvalidInputError(f"`adata` must be an AnnData object; got {type(adata).__name__}.")
        _check_key(key_added, "key_added")
        tau = check_positive_number(tau, "tau")
        if embedding_key not in adata.varm:
            raise InvalidInputError(
                f"adata.varm has no key {embedding_key!r}; available: {describe_examples(list(adata.varm.keys()))}. "
                "Compute gene embeddings first, e.g. with cfmd.pp.esm_gene_embeddings."
            )
        embeddings = np.asarray(adata.varm[embedding_key])
        if embeddings.ndim != 2 or embeddings.dtype.kind not in "biuf":
            raise InvalidInputError(f"adata.varm[{embedding_key!r}] must be a numeric genes x dimensions matrix.")
        has_embedding = np.isfinite(embeddings).all(axis=1)
        if not has_embedding.any():
            raise InvalidInputError(f"adata.varm[{embedding_key!r}] has no gene with a finite embedding.")
        field = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
        X = get_matrix(adata, layer, field="adata")
        scale = _resolve_scale(adata, scale)
        _check_expression(X, field, scale)

        # ------------------------------------------------------------------ computation
        genes = np.flatnonzero(has_embedding)
        gene_embeddings = torch.from_numpy(embeddings[genes].astype(np.float64))
        fingerprints = np.empty((adata.n_obs, embeddings.shape[1]), dtype=np.float32)
        effective = np.empty(adata.n_obs, dtype=np.float64)
        for start in range(0, adata.n_obs, _CHUNK_ROWS):
            block = X[start : start + _CHUNK_ROWS][:, genes]
            block = block.toarray() if sparse.issparse(block) else np.asarray(block)
            block = block.astype(np.float64)
            log_expression = fingerprint_log_expression(block, scale)
            s, h = expression_weighted_fingerprint(torch.from_numpy(log_expression), gene_embeddings, tau)
            fingerprints[start : start + len(block)] = s.numpy()
            effective[start : start + len(block)] = h.numpy()
        logger.info(
            "structural_fingerprint: %d genes with embeddings, tau=%g, median effective number of genes %.1f.",
            genes.size,
            tau,
            float(np.median(effective)),
        )

        # ------------------------------------------------------------------ write
        target = adata.copy() if copy else adata
        target.obsm[key_added] = fingerprints
        target.obs[f"{key_added}_effective_genes"] = effective
        target.uns[key_added] = {
            "tau": tau,
            "embedding_key": embedding_key,
            "layer": "X" if layer is None else layer,
            "scale": scale,
            "n_genes_used": int(genes.size),
        }
        return target if copy else None
