"""One UMAP embedding shared by the observed latent and the imputed latents (computed here, drawn by ``pl``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .._constants import DEFAULT_LATENT_KEY
from .._logging import logger
from .._validation import InvalidInputError, check_obsm

__all__ = ["MIN_FIT_PATIENTS", "latent_umap", "umap_key"]

#: Fewest observed patients a UMAP is fitted on.
MIN_FIT_PATIENTS = 5


def umap_key(latent_key: str, basis: str = "umap") -> str:
    """The ``.obsm`` key of the UMAP coordinates of the latent ``.obsm[latent_key]``.

    Parameters
    ----------
    latent_key
        ``.obsm`` key of a latent, e.g. ``"X_cfmd"``.
    basis
        The ``key_added`` of :func:`latent_umap`.

    Returns
    -------
    ``f"X_{basis}_{stem}"`` with ``stem`` the latent key without its ``X_`` prefix, e.g. ``"X_umap_cfmd"``.

    Examples
    --------
    >>> umap_key("X_structured")
    'X_umap_structured'
    """
    return f"X_{basis}_{latent_key.removeprefix('X_')}"


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidInputError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def latent_umap(
    mdata,
    *,
    observed_key: str = DEFAULT_LATENT_KEY,
    imputed_keys: str | Sequence[str] = "X_cfmd",
    n_neighbors: int = 15,
    min_dist: float = 0.5,
    random_state: int = 0,
    key_added: str = "umap",
) -> None:
    """Embed the observed latent with UMAP and place the imputed latents into that same embedding.

    One UMAP (umap-learn) is fitted on the observed latents, the rows of ``mdata.obsm[observed_key]`` that are finite
    (patients without the other modalities are NaN rows and are left out), and each imputed latent
    (``mdata.obsm[key]`` for ``key`` in ``imputed_keys``, every patient) is placed into that embedding with the fitted
    UMAP's ``transform``. The embeddings therefore share their coordinates: an imputed patient that lands where
    observed patients of its cancer type lie has kept the latent's structure (fitting a second UMAP on the imputed
    latents would not allow that comparison). Draw them with :func:`cfmd.pl.latent_umap`.

    For a plain UMAP of one latent, chain scanpy instead: ``sc.pp.neighbors(mdata, use_rep="X_cfmd")`` then
    ``sc.tl.umap(mdata)`` (see the tutorial *Chaining with scanpy and muon*).

    Parameters
    ----------
    mdata
        A :class:`~mudata.MuData` (or :class:`~anndata.AnnData`) with the latents in ``.obsm``.
    observed_key
        ``.obsm`` key of the observed structured latent (NaN rows for patients without it); the UMAP is fitted on it.
    imputed_keys
        ``.obsm`` key(s) of imputed latents (``cfmd.tl.impute``'s ``key_added``), each as wide as the observed one.
    n_neighbors
        UMAP's neighbourhood size (reduced to the number of fitted patients minus one when larger).
    min_dist
        UMAP's minimum distance between embedded points (scanpy's default, 0.5).
    random_state
        Seed of the UMAP fit and transform.
    key_added
        Name of the embedding (the ``basis`` of :func:`cfmd.pl.latent_umap`).

    Returns
    -------
    ``None``; writes into ``mdata``:

    ``.obsm[umap_key(observed_key, key_added)]``
        ``(n_obs, 2)`` UMAP coordinates of the observed latent, e.g. ``.obsm["X_umap_structured"]`` (NaN rows for
        patients without it).
    ``.obsm[umap_key(key, key_added)]``
        ``(n_obs, 2)`` coordinates of each imputed latent in the same embedding, e.g. ``.obsm["X_umap_cfmd"]`` (NaN
        rows where the imputed latent is not finite).
    ``.uns[f"cfmd_{key_added}"]``
        ``observed_key``, ``imputed_keys`` and ``params`` (``n_neighbors``, ``min_dist``, ``random_state``).

    Examples
    --------
    >>> import cfmd
    >>> cfmd.tl.latent_umap(mdata, observed_key="X_structured", imputed_keys="X_cfmd")  # doctest: +SKIP
    >>> cfmd.pl.latent_umap(mdata, color="cancer_type")  # doctest: +SKIP
    """
    if not hasattr(mdata, "obsm") or not hasattr(mdata, "uns"):
        raise InvalidInputError(f"`mdata` must be a MuData or AnnData object; got {type(mdata).__name__}.")
    keys = [imputed_keys] if isinstance(imputed_keys, str) else list(imputed_keys)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise InvalidInputError(f"`imputed_keys` must be an .obsm key or a list of them; got {imputed_keys!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise InvalidInputError(f"`key_added` must be a non-empty string; got {key_added!r}.")
    observed = check_obsm(mdata, observed_key, field="mdata").astype(float, copy=False)
    imputed = {}
    for key in keys:
        imputed[key] = check_obsm(mdata, key, field="mdata").astype(float, copy=False)
        if imputed[key].shape[1] != observed.shape[1]:
            raise InvalidInputError(
                f"mdata.obsm[{key!r}] has {imputed[key].shape[1]} columns but mdata.obsm[{observed_key!r}] has "
                f"{observed.shape[1]}: the imputed latent must be as wide as the observed one to share its UMAP."
            )
    n_neighbors = _check_int(n_neighbors, "n_neighbors", 2)
    random_state = _check_int(random_state, "random_state", 0)
    if not isinstance(min_dist, int | float | np.number) or not 0 <= float(min_dist):
        raise InvalidInputError(f"`min_dist` must be a non-negative number; got {min_dist!r}.")
    fit_rows = np.isfinite(observed).all(axis=1)
    n_fit = int(fit_rows.sum())
    if n_fit < MIN_FIT_PATIENTS:
        raise InvalidInputError(
            f"mdata.obsm[{observed_key!r}] has {n_fit} finite row(s) (observed patients); the UMAP needs at least "
            f"{MIN_FIT_PATIENTS}."
        )

    import umap

    reducer = umap.UMAP(
        n_neighbors=int(min(n_neighbors, n_fit - 1)), min_dist=float(min_dist), random_state=random_state, n_jobs=1
    )
    coordinates = {observed_key: np.full((observed.shape[0], 2), np.nan)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        reducer.fit(observed[fit_rows])
        coordinates[observed_key][fit_rows] = reducer.embedding_
        for key, latent in imputed.items():
            finite = np.isfinite(latent).all(axis=1)
            if not finite.all():
                logger.warning(
                    "latent_umap: %d patient(s) have a non-finite latent in .obsm[%r]; their coordinates are NaN.",
                    int((~finite).sum()),
                    key,
                )
            coordinates[key] = np.full((latent.shape[0], 2), np.nan)
            if finite.any():
                coordinates[key][finite] = reducer.transform(latent[finite])
    for key, coords in coordinates.items():
        mdata.obsm[umap_key(key, key_added)] = coords.astype(np.float32)
    mdata.uns[f"cfmd_{key_added}"] = {
        "observed_key": observed_key,
        "imputed_keys": keys,
        "params": {"n_neighbors": n_neighbors, "min_dist": float(min_dist), "random_state": random_state},
    }
