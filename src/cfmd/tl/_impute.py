"""``cfmd.tl.impute``: fit CFMD (or load one) and write the imputed latent into the MuData."""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._layout import LatentLayout, layout_uns_key
from .._logging import logger
from .._validation import InvalidInputError, check_choice, check_positive_int

if TYPE_CHECKING:
    from mudata import MuData

    from ..models import CFMD

PROVENANCE_CATEGORIES = ("observed", "imputed", "zero-masked")


def impute(
    mdata: MuData,
    *,
    model: CFMD | str | PathLike | None = None,
    latent_key: str = "X_structured",
    key_added: str = "X_cfmd",
    fill: Literal["missing", "all"] = "missing",
    layout: LatentLayout | None = None,
    rna_key: str = "rna",
    rna_layer: str | None = None,
    rna_scale: Literal["counts", "log2", "zscore"] = "counts",
    geneformer_key: str | None = "X_geneformer",
    gene_embedding_key: str | None = "X_esm2",
    split_key: str | None = "cfmd_split",
    seed: int = 42,
    max_epochs: int = 200,
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    save_model: str | PathLike | None = None,
    prefix: str | None = None,
    min_gene_overlap: float = 0.5,
    n_samples: int = 10,
    generate_kwargs: Mapping | None = None,
) -> CFMD:
    """Impute the structured latent of every patient from RNA with CFMD.

    With no ``model``, CFMD is set up on ``mdata`` and trained on the patients whose latent is observed (strict
    patient-disjoint 80/10/10 split, the ``split_key`` column when present; normalisation from the training
    split only), then every patient is imputed. With a model (or the folder of a saved one), nothing is trained
    and ``mdata`` needs RNA only (new patients without any latent are the usual case).

    Genes are matched by name: a different gene order is reordered; genes of the model that ``mdata`` lacks are
    padded with their training mean, i.e. zero in the model's normalised (standardised log-expression) units, and a
    ``UserWarning`` names them and what reads them; fewer than ``min_gene_overlap`` of the model's genes is an
    error. A saved model is read without unpickling anything (safetensors + JSON, see :meth:`CFMD.load
    <cfmd.models.CFMD.load>`). On any error ``mdata`` is left exactly as it was.

    Parameters
    ----------
    mdata
        MuData with RNA for every patient, teacher embeddings (``mdata[rna_key].obsm[geneformer_key]``,
        ``mdata[rna_key].varm[gene_embedding_key]``) and, for training, the observed latent in
        ``mdata.obsm[latent_key]`` (NaN rows for patients without it) with its layout in ``.uns``.
    model
        A trained :class:`~cfmd.models.CFMD`, the directory of a saved one, or ``None`` to train.
    latent_key
        ``.obsm`` key of the observed latent (optional when ``model`` is given).
    key_added
        ``.obsm`` key to write the imputed latent under.
    fill
        ``"missing"``: observed latents are kept and only patients without one are imputed; ``"all"``: every
        patient gets CFMD's prediction (what evaluation on held-out patients needs).
    layout
        Layout of the latent (default: stored next to ``latent_key``).
    rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key
        Passed to :meth:`~cfmd.models.CFMD.setup_mudata` when training.
    split_key
        ``.obs`` column with a patient split (see :func:`~cfmd.tl.split_patients`). The default ``"cfmd_split"`` is
        used when present, otherwise a seeded split is drawn (and logged); any other name must be a column of
        ``mdata.obs``; ``None`` draws a split.
    seed
        Seed of the split and of training (``scvi.settings.seed``).
    max_epochs
        Maximum training epochs (200 in the paper; early stopping with patience 40).
    model_kwargs, train_kwargs
        Extra keyword arguments of :class:`~cfmd.models.CFMD` and :meth:`~cfmd.models.CFMD.train`.
    save_model
        Directory to save the trained model to (overwritten).
    prefix
        File-name prefix of the saved model, for ``save_model`` and for loading ``model`` from a folder.
    min_gene_overlap
        With ``model``: smallest fraction of the model's genes ``mdata[rna_key]`` must have (default 0.5).
    n_samples, generate_kwargs
        With ``model="diffusion"`` / ``"coherent_denoising"`` (or such a model, or its saved folder):
        :func:`~cfmd.tl.generate` is called instead (``generate_kwargs``: its other options, e.g. ``target``, ``conditions``).

    Returns
    -------
    The CFMD model (trained here, loaded or given). Fields written to ``mdata`` (all at the end, after every
    check and the whole computation succeeded):

    ``.obsm[key_added]``
        ``(n_patients, n_dims)`` imputed latent (zero-masked slices exactly 0; with ``fill="missing"`` the rows of
        patients with an observed latent hold the observed values).
    ``.obsm[f"{key_added}_provenance"]``
        DataFrame, one categorical column per slice: ``observed``, ``imputed`` or ``zero-masked``.
    ``.uns[f"{key_added}_layout"]``
        The layout.
    ``.uns[key_added]``
        Model identity and settings: class, version, init parameters (JSON), split sizes, seed, the saved model
        path (if any), ``fill``, the source latent key, ``provenance`` (per slice), and ``split``: the model's
        stored patient split, ``{"train": [obs names], "validation": [...], "test": [...]}`` (lists of str; the
        training cohort's patients, so evaluation can check it never scores patients the model trained on).

    Examples
    --------
    A quick run on the synthetic cohort, with its planted teacher signals as teacher embeddings:

    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300)
    >>> _ = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    >>> model = cfmd.tl.impute(
    ...     mdata,
    ...     geneformer_key="transcriptomic_context",
    ...     gene_embedding_key="structural_features",
    ...     max_epochs=2,
    ...     model_kwargs={"rmd_kwargs": {"d_model": 16, "d_feedforward": 32}},
    ...     train_kwargs={"enable_progress_bar": False},
    ... )
    >>> mdata.obsm["X_cfmd"].shape, mdata.uns["X_cfmd"]["provenance"]["cnv"]
    ((120, 328), 'zero-masked')
    """
    from .._transaction import unchanged_on_error
    from ._generate import generate, is_generative

    if is_generative(model, prefix):  # "diffusion" / "coherent_denoising", such a model or its saved folder
        return generate(
            mdata, model=model, latent_key=latent_key, key_added=key_added, fill=fill, rna_key=rna_key,
            rna_layer=rna_layer, rna_scale=rna_scale, split_key=split_key, seed=seed, max_epochs=max_epochs,
            model_kwargs=model_kwargs, train_kwargs=train_kwargs, save_model=save_model, prefix=prefix,
            min_gene_overlap=min_gene_overlap, n_samples=n_samples, **dict(generate_kwargs or {}),
        )  # fmt: skip
    with unchanged_on_error(mdata):
        return _impute(
            mdata, model=model, latent_key=latent_key, key_added=key_added, fill=fill, layout=layout,
            rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key, split_key=split_key, seed=seed, max_epochs=max_epochs,
            model_kwargs=model_kwargs, train_kwargs=train_kwargs, save_model=save_model, prefix=prefix,
            min_gene_overlap=min_gene_overlap,
        )  # fmt: skip


def _impute(
    mdata, *, model, latent_key, key_added, fill, layout, rna_key, rna_layer, rna_scale, geneformer_key,
    gene_embedding_key, split_key, seed, max_epochs, model_kwargs, train_kwargs, save_model, prefix, min_gene_overlap,
):  # fmt: skip
    """The body of :func:`impute` (run inside ``unchanged_on_error``)."""
    import pandas as pd
    import scvi

    from .. import __version__
    from ..models import CFMD

    check_choice(fill, "fill", ("missing", "all"))
    check_positive_int(max_epochs, "max_epochs")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    if key_added == latent_key:
        raise InvalidInputError("`key_added` must differ from `latent_key` (the observed latent is kept).")
    source, target = None, mdata
    if model is None and layout is not None:
        if not isinstance(layout, LatentLayout):
            raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
        if latent_key in mdata.obsm:
            layout.check_width(np.shape(mdata.obsm[latent_key])[1], field=f"mdata.obsm[{latent_key!r}]")
    if model is None:
        from ..models._latent_imputer import check_split_key, make_split, validate_imputer_setup

        check_split_key(mdata, split_key)

        # every check that does not need the registered model, before anything touches `mdata`
        validate_imputer_setup(
            mdata,
            latent_key=latent_key,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key,
        )
        fractions = dict(model_kwargs or {}).get("split_fractions", (0.8, 0.1, 0.1))
        make_split(mdata, latent_key, split_key, fractions, seed, log=False)  # checked here, logged by CFMD
        scvi.settings.seed = int(seed)
        CFMD.setup_mudata(
            mdata,
            latent_key=latent_key,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key,
        )
        model = CFMD(mdata, layout=layout, split_key=split_key, seed=seed, **dict(model_kwargs or {}))
        options = {"max_epochs": max_epochs, **dict(train_kwargs or {})}
        model.train(**options)
        if save_model is not None:
            model.save(save_model, overwrite=True, prefix=prefix)
            source = str(save_model)
    elif isinstance(model, str | PathLike):
        source = str(model)
        model = CFMD.load(Path(model), adata=mdata, prefix=prefix, min_gene_overlap=min_gene_overlap)
        target = model.adata  # `mdata` itself, or its copy with the model's genes (already aligned, warned once)
    elif not isinstance(model, CFMD):
        raise InvalidInputError(
            f"`model` must be a CFMD model, a saved model directory or None; got {type(model).__name__}."
        )

    model_layout = model.layout
    latent_key_used = model.adata_manager.registry["setup_args"]["latent_key"]
    prediction = model.get_imputed_latent(target)
    if latent_key_used in mdata.obsm:
        observed_latent = np.asarray(mdata.obsm[latent_key_used], dtype=np.float32)
        model_layout.check_width(observed_latent.shape[1], field=f"mdata.obsm[{latent_key_used!r}]")
        observed = np.isfinite(observed_latent).all(axis=1)
    else:
        observed_latent, observed = None, np.zeros(mdata.n_obs, dtype=bool)
    result = prediction.astype(np.float32)
    if fill == "missing" and observed_latent is not None:
        result[observed] = observed_latent[observed]
    keep_observed = observed if fill == "missing" else np.zeros_like(observed)
    provenance = pd.DataFrame(
        {
            name: pd.Categorical(np.where(keep_observed, "observed", kind), categories=PROVENANCE_CATEGORIES)
            for name, kind in model.provenance.items()
        },
        index=mdata.obs_names.copy(),
    )
    split_sizes = {k: len(v) for k, v in model.split_.items()}

    mdata.obsm[key_added] = result
    mdata.obsm[f"{key_added}_provenance"] = provenance
    mdata.uns[layout_uns_key(key_added)] = model_layout.to_dict()
    mdata.uns[key_added] = {
        "model": type(model).__name__,
        "cfmd_version": __version__,
        "init_params": json.dumps(_jsonable(model.init_params_), sort_keys=True),
        "split_sizes": split_sizes,
        "split": {k: [str(name) for name in v] for k, v in model.split_.items()},
        "seed": int(seed),
        "model_path": source or "",
        "fill": fill,
        "latent_key": latent_key_used,
        "provenance": dict(model.provenance),
    }
    logger.info(
        "impute: wrote .obsm[%r] for %d patients (%d observed, %d imputed).",
        key_added,
        mdata.n_obs,
        int(keep_observed.sum()),
        int((~keep_observed).sum()),
    )
    return model


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)
