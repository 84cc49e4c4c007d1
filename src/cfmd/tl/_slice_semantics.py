"""``cfmd.tl.slice_semantics``: does each modality-owned latent slice mean its modality (and not RNA)?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import DEFAULT_LATENT_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY
from .._expression import log_normalise
from .._layout import LatentLayout
from .._logging import logger
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import (
    InvalidInputError,
    check_modality,
    check_not_view,
    check_obsm,
    check_positive_int,
    get_matrix,
)

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["SEMANTICS_COLUMNS", "slice_semantics"]

#: Columns of the table :func:`slice_semantics` writes (``.uns[key_added]["table"]``).
SEMANTICS_COLUMNS = (
    "slice",
    "modality",
    "n_dims",
    "n_features",
    "n_train",
    "n_test",
    "r2_slice_to_modality",
    "r2_pca_ceiling",
    "fraction_of_ceiling",
    "r2_rna_to_slice",
    "r2_rna_to_modality",
    "r2_rna_to_pca",
    "rna_excess",
    "r2_rna_only_vs_full",
    "rna_only_excess",
    "train_r2_slice_to_modality",
    "train_r2_rna_to_modality",
    "passes",
)
_ALPHAS = tuple(np.logspace(-2, 4, 13))


def slice_semantics(
    mdata: MuData,
    *,
    latent_key: str = DEFAULT_LATENT_KEY,
    rna_only_key: str | None = None,
    modalities: Mapping[str, str] | None = None,
    rna_key: str | None = None,
    rna_layer: str | None = None,
    split_key: str = DEFAULT_SPLIT_KEY,
    n_folds: int | None = None,
    alphas: Sequence[float] = _ALPHAS,
    min_fraction: float = 0.8,
    max_rna_excess: float = 0.1,
    max_rna_only_excess: float = 0.15,
    seed: int = DEFAULT_SEED,
    key_added: str = "cfmd_slice_semantics",
    copy: bool = False,
) -> MuData | None:
    r"""Check that each modality-owned slice of a structured latent means its modality, on held-out patients.

    For every slice a modality owns (``meth``, ``cnv``, ``ctx``, ...), on patients who have the modality and an
    observed latent:

    (a) **own modality**: :math:`R^2` of a ridge map from the slice onto the modality's standardised features
        (``r2_slice_to_modality``), next to the :math:`R^2` of the best linear summary of the same width, a PCA
        of the modality with ``n_dims`` components (``r2_pca_ceiling``); their ratio is ``fraction_of_ceiling``;
    (b) **not RNA**: :math:`R^2` of a ridge on standardised RNA predicting the slice (``r2_rna_to_slice``) vs
        predicting the modality itself (``r2_rna_to_modality``); ``rna_excess`` is the difference. A slice that
        RNA predicts much better than the modality is an RNA summary, not the modality;
    (c) **RNA-only posterior**: how well the RNA-only posterior of the slice (``.obsm[rna_only_key]``) matches the
        full posterior, :math:`R^2` without any fit (``r2_rna_only_vs_full``); ``rna_only_excess`` is its excess
        over ``r2_rna_to_modality``.

    :math:`R^2` is pooled over features (variance-weighted: :math:`1 - SSE/SST` around the held-out mean).
    Every map, standardisation, PCA and ridge penalty (chosen by efficient leave-one-out CV, ``alphas``) is
    fitted on training patients only. Held-out patients: the ``test`` patients of ``mdata.obs[split_key]``
    (training: ``train`` and ``validation``), or, with ``n_folds`` (or without a split column), K-fold CV over
    patients (metrics averaged over folds). A latent fitted transductively (no split) has seen the held-out
    patients' data; the maps have not.

    Parameters
    ----------
    mdata
        MuData with the latent in ``.obsm[latent_key]`` and its layout in ``.uns[f"{latent_key}_layout"]``.
    latent_key
        ``.obsm`` key of the latent (full posterior).
    rna_only_key
        ``.obsm`` key of the RNA-only posterior (default: what :func:`~cfmd.tl.fit_latent` recorded, else
        ``f"{latent_key}_rna_only"``); when absent, the (c) columns are NaN.
    modalities
        ``{slice: modality}`` of the owned slices; default: what :func:`~cfmd.tl.fit_latent` recorded in
        ``.uns[latent_key]``.
    rna_key, rna_layer
        RNA modality and layer (default: those :func:`~cfmd.tl.fit_latent` recorded, else ``"rna"`` and ``.X``).
        Raw counts (``rna_scale="counts"`` recorded) are log1p-normalised (per 10k) first.
    split_key
        ``mdata.obs`` column with the patient split.
    n_folds
        K-fold CV over patients instead of the split (``None``: the split when present, else 5 folds).
    alphas
        Ridge penalties to choose from (on the training patients).
    min_fraction, max_rna_excess, max_rna_only_excess
        The criteria behind ``passes``: ``fraction_of_ceiling >= min_fraction``, ``rna_excess <= max_rna_excess``
        and ``rna_only_excess <= max_rna_only_excess`` (NaN counts as passing).
    seed
        Seed of the K-fold assignment.
    key_added
        ``.uns`` key of the result.
    copy
        Return a copy with the result instead of writing into ``mdata``.

    Returns
    -------
    ``None`` (or the copy, with ``copy=True``). Fields written: ``.uns[key_added]`` with

    ``"table"``
        :class:`~pandas.DataFrame`, one row per owned slice: ``slice``, ``modality``, ``n_dims`` (slice width),
        ``n_features`` (modality features used), ``n_train``, ``n_test`` (patients per fold, summed over folds
        for ``n_test``), ``r2_slice_to_modality``, ``r2_pca_ceiling``, ``fraction_of_ceiling``,
        ``r2_rna_to_slice``, ``r2_rna_to_modality``, ``r2_rna_to_pca``, ``rna_excess``, ``r2_rna_only_vs_full``, ``rna_only_excess``,
        ``train_r2_slice_to_modality`` and ``train_r2_rna_to_modality`` (in-sample :math:`R^2` on the training
        patients, for leakage checks), ``passes`` (all three criteria).
    ``"settings"``
        ``latent_key``, ``rna_only_key``, ``scheme`` (``"split"`` or ``"kfold"``), ``n_folds``, ``split_key``,
        ``min_fraction``, ``max_rna_excess``, ``max_rna_only_excess``, ``seed``.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=80, n_genes=250)
    >>> cfmd.tl.split_patients(mdata, seed=0)
    >>> _ = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    >>> cfmd.tl.slice_semantics(mdata)
    >>> list(mdata.uns["cfmd_slice_semantics"]["table"]["slice"])
    ['meth', 'cnv', 'ctx']
    """
    import mudata as md

    if not isinstance(mdata, md.MuData):
        raise InvalidInputError(f"`mdata` must be a MuData object; got {type(mdata).__name__}.")
    if not copy:
        check_not_view(mdata, "mdata")
    with unchanged_on_error(mdata):
        plan = _plan(
            mdata,
            latent_key=latent_key,
            rna_only_key=rna_only_key,
            modalities=modalities,
            rna_key=rna_key,
            rna_layer=rna_layer,
            split_key=split_key,
            n_folds=n_folds,
            alphas=alphas,
            thresholds=(min_fraction, max_rna_excess, max_rna_only_excess),
            seed=seed,
            key_added=key_added,
        )
        rows = [_evaluate_slice(plan, name, mod) for name, mod in plan["modalities"].items()]
        table = pd.DataFrame(rows, columns=list(SEMANTICS_COLUMNS))
        table["passes"] = (
            ~(table["fraction_of_ceiling"] < min_fraction)
            & ~(table["rna_excess"] > max_rna_excess)
            & ~(table["rna_only_excess"] > max_rna_only_excess)
        )
        settings = {
            "latent_key": latent_key,
            "rna_only_key": plan["rna_only_key"] or "",
            "scheme": plan["scheme"],
            "n_folds": len(plan["folds"]),
            "split_key": split_key if plan["scheme"] == "split" else "",
            "min_fraction": float(min_fraction),
            "max_rna_excess": float(max_rna_excess),
            "max_rna_only_excess": float(max_rna_only_excess),
            "seed": int(seed),
        }
        for row in table.itertuples():
            logger.info(
                "slice_semantics: %s: slice -> %s R^2 %.3f (PCA ceiling %.3f); RNA -> slice %.3f vs RNA -> %s %.3f; "
                "RNA-only vs full %.3f.",
                row.slice,
                row.modality,
                row.r2_slice_to_modality,
                row.r2_pca_ceiling,
                row.r2_rna_to_slice,
                row.modality,
                row.r2_rna_to_modality,
                row.r2_rna_only_vs_full,
            )
        target = copy_mudata(mdata) if copy else mdata
        target.uns[key_added] = {"table": table, "settings": settings}
        return target if copy else None


# ---------------------------------------------------------------------------------------------- validation
def _plan(
    mdata,
    *,
    latent_key,
    rna_only_key,
    modalities,
    rna_key,
    rna_layer,
    split_key,
    n_folds,
    alphas,
    thresholds,
    seed,
    key_added,
) -> dict:
    """Validate every input and gather the arrays; nothing is fitted here."""
    from ..models._unpaired import align_to_global, modality_rows
    from ._split import split_indices

    for name, value in (("latent_key", latent_key), ("split_key", split_key), ("key_added", key_added)):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"`{name}` must be a non-empty string; got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    for name, value in zip(("min_fraction", "max_rna_excess", "max_rna_only_excess"), thresholds):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value):
            raise InvalidInputError(f"`{name}` must be a finite number; got {value!r}.")
    alphas = np.asarray(list(alphas) if not isinstance(alphas, np.ndarray) else alphas, dtype=float).ravel()
    if alphas.size == 0 or not (np.isfinite(alphas) & (alphas > 0)).all():
        raise InvalidInputError(f"`alphas` must be positive finite ridge penalties; got {alphas.tolist()!r}.")
    latent = check_obsm(mdata, latent_key, field="mdata")
    layout = LatentLayout.from_mudata(mdata, latent_key)
    layout.check_width(latent.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    recorded = mdata.uns.get(latent_key, {})
    recorded = recorded if isinstance(recorded, Mapping) else {}
    if modalities is None:
        if "modality_slices" not in recorded or "modality_names" not in recorded:
            raise InvalidInputError(
                f"`modalities` not given and mdata.uns[{latent_key!r}] does not record them (written by "
                "cfmd.tl.fit_latent); pass `modalities={slice: modality}`."
            )
        modalities = {
            str(s): str(m)
            for s, m in zip(
                np.asarray(recorded["modality_slices"]).ravel(), np.asarray(recorded["modality_names"]).ravel()
            )
        }
    if not isinstance(modalities, Mapping) or not modalities:
        raise InvalidInputError(f"`modalities` must be a non-empty mapping {{slice: modality}}; got {modalities!r}.")
    for slice_name, mod in modalities.items():
        if slice_name not in layout:
            raise InvalidInputError(
                f"`modalities` names slice {slice_name!r}, absent from the layout of .obsm[{latent_key!r}] "
                f"(slices: {layout.names})."
            )
        check_modality(mdata, mod)
    rna_key = rna_key or str(recorded.get("rna_key", "rna"))
    if rna_layer is None and str(recorded.get("rna_layer", "")):
        rna_layer = str(recorded["rna_layer"])
    rna = check_modality(mdata, rna_key)
    X = get_matrix(rna, rna_layer, field=f"mdata[{rna_key!r}]")
    X = log_normalise(X, str(recorded.get("rna_scale", "")))  # as given unless recorded as counts
    X = np.asarray(align_to_global(mdata, rna_key, X), dtype=np.float64)
    rna_rows = modality_rows(mdata, rna_key)
    if not np.isfinite(X[rna_rows >= 0]).all():
        raise InvalidInputError(f"mdata[{rna_key!r}] has non-finite RNA values.")
    if rna_only_key is None:
        rna_only_key = str(recorded.get("rna_only_key", f"{latent_key}_rna_only"))
        if rna_only_key not in mdata.obsm:
            logger.info("slice_semantics: no RNA-only posterior .obsm[%r]; its columns are NaN.", rna_only_key)
            rna_only_key = None
    rna_only = None
    if rna_only_key is not None:
        rna_only = check_obsm(mdata, rna_only_key, field="mdata", n_cols=latent.shape[1])

    use_split = n_folds is None and split_key in mdata.obs
    if n_folds is not None:
        check_positive_int(n_folds, "n_folds", minimum=2)
    eligible = np.isfinite(latent).all(axis=1) & (rna_rows >= 0)
    if use_split:
        parts = split_indices(mdata, split_key)
        train = np.sort(np.concatenate([parts["train"], parts["validation"]]))
        folds = [(train[eligible[train]], parts["test"][eligible[parts["test"]]])]
        scheme = "split"
    else:
        n_folds = 5 if n_folds is None else int(n_folds)
        candidates = np.flatnonzero(eligible)
        if candidates.size < 2 * n_folds:
            raise InvalidInputError(
                f"{candidates.size} patient(s) have an observed latent and RNA; {n_folds}-fold CV needs at least "
                f"{2 * n_folds}."
            )
        order = np.random.default_rng(int(seed)).permutation(candidates)
        chunks = np.array_split(order, n_folds)
        folds = [(np.sort(np.concatenate(chunks[:k] + chunks[k + 1 :])), np.sort(chunks[k])) for k in range(n_folds)]
        scheme = "kfold"
    modality_data = {}
    for slice_name, mod in modalities.items():
        adata = mdata.mod[mod]
        values = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X, dtype=np.float64)
        values = np.asarray(align_to_global(mdata, mod, values), dtype=np.float64)
        present = modality_rows(mdata, mod) >= 0
        if np.isinf(values[present]).any():
            raise InvalidInputError(f"mdata[{mod!r}].X has infinite values; use NaN for missing measurements.")
        modality_data[slice_name] = (values, present)
        for train, test in folds:
            n_train, n_test = int(present[train].sum()), int(present[test].sum())
            if n_train < 3 or n_test < 2:
                raise InvalidInputError(
                    f"Slice {slice_name!r} ({mod!r}): {n_train} training and {n_test} held-out patient(s) have the "
                    f"modality and an observed latent ({scheme}); need >= 3 and >= 2."
                )
    return {
        "latent": latent,
        "rna_only": rna_only,
        "rna_only_key": rna_only_key,
        "layout": layout,
        "modalities": dict(modalities),
        "modality_data": modality_data,
        "rna": X,
        "folds": folds,
        "scheme": scheme,
        "alphas": alphas,
    }


# ---------------------------------------------------------------------------------------------- metrics
def _r2(truth: np.ndarray, pred: np.ndarray) -> float:
    sst = ((truth - truth.mean(0)) ** 2).sum()
    return float(1 - ((truth - pred) ** 2).sum() / sst) if sst > 0 else float("nan")


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Fill NaN with the training means, scale by the training SDs; drop features constant in training."""
    observed = ~np.isnan(train)
    counts = observed.sum(0)
    mean = np.where(counts > 0, np.where(observed, train, 0.0).sum(0) / np.maximum(counts, 1), np.nan)
    keep = np.isfinite(mean)
    filled = [np.where(np.isnan(a[:, keep]), mean[keep], a[:, keep]) for a in (train, *others)]
    sd = filled[0].std(axis=0)
    ok = sd > 1e-8
    return [(a[:, ok] - mean[keep][ok]) / sd[ok] for a in filled]


def _evaluate_slice(plan: dict, slice_name: str, mod: str) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV

    values, present = plan["modality_data"][slice_name]
    s = plan["layout"][slice_name]
    latent, rna_only, X = plan["latent"], plan["rna_only"], plan["rna"]
    alphas = plan["alphas"]
    metrics: dict[str, list[float]] = {}
    n_train, n_test, n_features = [], 0, 0

    def add(name: str, value: float) -> None:
        metrics.setdefault(name, []).append(value)

    for train, test in plan["folds"]:
        train, test = train[present[train]], test[present[test]]
        Y_tr, Y_te = _standardise(values[train], values[test])
        X_tr, X_te = _standardise(X[train], X[test])
        Z_tr, Z_te = latent[train, s.as_slice], latent[test, s.as_slice]
        z_mean = Z_tr.mean(0)
        Zc_tr, Zc_te = Z_tr - z_mean, Z_te - z_mean
        z_sd = np.where(Zc_tr.std(0) > 1e-8, Zc_tr.std(0), 1.0)
        # (a) the slice -> its modality, vs a PCA of the same width
        own = RidgeCV(alphas=alphas).fit(Zc_tr / z_sd, Y_tr)
        add("r2_slice_to_modality", _r2(Y_te, own.predict(Zc_te / z_sd)))
        add("train_r2_slice_to_modality", _r2(Y_tr, own.predict(Zc_tr / z_sd)))
        k = int(min(s.dim, Y_tr.shape[1], Y_tr.shape[0] - 1))
        pca = PCA(n_components=k, svd_solver="full").fit(Y_tr)
        add("r2_pca_ceiling", _r2(Y_te, pca.inverse_transform(pca.transform(Y_te))))
        # (b) RNA -> the slice vs RNA -> the modality
        to_slice = RidgeCV(alphas=alphas).fit(X_tr, Zc_tr)
        add("r2_rna_to_slice", _r2(Zc_te, to_slice.predict(X_te)))
        scores_tr, scores_te = pca.transform(Y_tr), pca.transform(Y_te)
        to_pca = RidgeCV(alphas=alphas).fit(X_tr, scores_tr)
        add("r2_rna_to_pca", _r2(scores_te, to_pca.predict(X_te)))
        to_mod = RidgeCV(alphas=alphas).fit(X_tr, Y_tr)
        add("r2_rna_to_modality", _r2(Y_te, to_mod.predict(X_te)))
        add("train_r2_rna_to_modality", _r2(Y_tr, to_mod.predict(X_tr)))
        # (c) the model's own RNA-only posterior vs its full posterior (no fit)
        add("r2_rna_only_vs_full", _r2(Z_te, rna_only[test, s.as_slice]) if rna_only is not None else float("nan"))
        n_train.append(train.size)
        n_test += test.size
        n_features = Y_tr.shape[1]
    row = {name: float(np.mean(v)) for name, v in metrics.items()}
    row["fraction_of_ceiling"] = (
        row["r2_slice_to_modality"] / row["r2_pca_ceiling"] if row["r2_pca_ceiling"] > 0 else float("nan")
    )
    row["rna_excess"] = row["r2_rna_to_slice"] - row["r2_rna_to_modality"]
    row["rna_only_excess"] = row["r2_rna_only_vs_full"] - row["r2_rna_to_modality"]
    row.update(
        slice=slice_name,
        modality=mod,
        n_dims=s.dim,
        n_features=int(n_features),
        n_train=int(round(np.mean(n_train))),
        n_test=int(n_test),
        passes=False,
    )
    return row
