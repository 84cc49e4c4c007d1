"""``cfmd.tl.impute``: fit CFMD (or load one) and write the imputed latent into the MuData."""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._constants import (
    DEFAULT_GENE_EMBEDDING_KEY,
    DEFAULT_GENEFORMER_KEY,
    DEFAULT_IMPUTED_KEY,
    DEFAULT_LATENT_KEY,
    DEFAULT_RNA_KEY,
    DEFAULT_SEED,
    DEFAULT_SPLIT_KEY,
)
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
    latent_key: str = DEFAULT_LATENT_KEY,
    key_added: str = DEFAULT_IMPUTED_KEY,
    fill: Literal["missing", "all"] = "missing",
    layout: LatentLayout | None = None,
    rna_key: str = DEFAULT_RNA_KEY,
    rna_layer: str | None = None,
    rna_scale: Literal["counts", "log2", "zscore"] = "counts",
    geneformer_key: str | None = DEFAULT_GENEFORMER_KEY,
    gene_embedding_key: str | None = DEFAULT_GENE_EMBEDDING_KEY,
    split_key: str | None = DEFAULT_SPLIT_KEY,
    seed: int = DEFAULT_SEED,
    max_epochs: int | None = None,
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    save_model: str | PathLike | None = None,
    prefix: str | None = None,
    min_gene_overlap: float = 0.5,
    students: Literal["paper", "auto"] = "paper",
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
        Maximum training epochs, early stopping deciding. Default: 200 for CFMD (the paper's; patience 40), 2000 for
        ``model="diffusion"`` / ``"coherent_denoising"`` (see :func:`~cfmd.tl.generate`).
    model_kwargs, train_kwargs
        Extra keyword arguments of :class:`~cfmd.models.CFMD` and :meth:`~cfmd.models.CFMD.train`.
    save_model
        Directory to save the trained model to (overwritten).
    prefix
        File-name prefix of the saved model, for ``save_model`` and for loading ``model`` from a folder.
    min_gene_overlap
        With ``model``: smallest fraction of the model's genes ``mdata[rna_key]`` must have (default 0.5).
    students
        ``"paper"`` (default): every slice from CFMD's own student, as published. ``"auto"``: per slice, the
        student with the higher held-out :math:`R^2` among CFMD's student and a ridge on standardised RNA fitted on
        the same training patients (one penalty per slice, chosen by leave-one-out CV on them; see
        :func:`cfmd.tl.benchmark`'s ``"ridge"``). The rule: with at least
        :data:`~cfmd.tl._students.AUTO_INNER_CV_BELOW` (200) training patients the model's validation split
        decides; with fewer, a 3-fold inner CV over the training and validation patients (CFMD and the ridge
        refitted per inner fold, the same settings) decides on the pooled out-of-fold :math:`R^2`. Ties keep CFMD.
        The point-wise methylation MLP is not a candidate (it would need one more CFMD fit; compare it with
        :func:`cfmd.tl.benchmark`). With a trained model, ``"auto"`` needs the model's choice: a model trained here
        with ``students="auto"`` carries it (``model.students_``) and ``save_model`` writes it to
        ``{prefix}students.json`` (JSON arrays, no pickle) beside the model, which ``model=<folder>`` reads.
        Without training data and without that file, ``"auto"`` is an error.
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
        training cohort's patients, so evaluation can check it never scores patients the model trained on), and
        ``students``: ``mode`` (``students``), ``rule`` (how the choice was made), ``chosen`` (slice -> ``"cfmd"``
        or ``"ridge"``: the student that filled it; provenance categories stay ``imputed``), ``scores`` (slice ->
        {student: held-out :math:`R^2`}, CFMD's student next to the ridge, also with ``"paper"`` when trained
        here) and ``n_patients`` (patients the scores are computed on).

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
    from .._constants import CFMD_MAX_EPOCHS, DIFFUSION_MAX_EPOCHS
    from .._transaction import unchanged_on_error
    from ._generate import generate, is_generative

    if is_generative(model, prefix):  # "diffusion" / "coherent_denoising", such a model or its saved folder
        if max_epochs is None:
            max_epochs = DIFFUSION_MAX_EPOCHS
        return generate(
            mdata, model=model, latent_key=latent_key, key_added=key_added, fill=fill, rna_key=rna_key,
            rna_layer=rna_layer, rna_scale=rna_scale, split_key=split_key, seed=seed, max_epochs=max_epochs,
            model_kwargs=model_kwargs, train_kwargs=train_kwargs, save_model=save_model, prefix=prefix,
            min_gene_overlap=min_gene_overlap, n_samples=n_samples, **dict(generate_kwargs or {}),
        )  # fmt: skip
    if max_epochs is None:
        max_epochs = CFMD_MAX_EPOCHS
    with unchanged_on_error(mdata):
        return _impute(
            mdata, model=model, latent_key=latent_key, key_added=key_added, fill=fill, layout=layout,
            rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key, split_key=split_key, seed=seed, max_epochs=max_epochs,
            model_kwargs=model_kwargs, train_kwargs=train_kwargs, save_model=save_model, prefix=prefix,
            min_gene_overlap=min_gene_overlap, students=students,
        )  # fmt: skip


def _impute(
    mdata, *, model, latent_key, key_added, fill, layout, rna_key, rna_layer, rna_scale, geneformer_key,
    gene_embedding_key, split_key, seed, max_epochs, model_kwargs, train_kwargs, save_model, prefix, min_gene_overlap, students,
):  # fmt: skip
    """The body of :func:`impute` (run inside ``unchanged_on_error``)."""
    import pandas as pd
    import scvi

    from .. import __version__
    from ..models import CFMD
    from ..models._scvi_private import setup_args
    from ._students import load_students

    check_choice(fill, "fill", ("missing", "all"))
    check_choice(students, "students", ("paper", "auto"))
    stored_students = None
    if students == "auto" and isinstance(model, str | PathLike):
        stored_students = load_students(model, prefix=prefix)
        if stored_students is None:
            raise InvalidInputError(
                f"students='auto' with the saved model {str(model)!r} needs the choice made when it was trained "
                f"({prefix or ''}students.json in that folder, written by impute(..., students='auto', save_model=...)); "
                "the folder has none. Use students='paper', or train with students='auto' and save again."
            )
    if students == "auto" and model is not None and not isinstance(model, str | PathLike):
        if getattr(model, "students_", None) is None:
            raise InvalidInputError(
                "students='auto' with a trained model needs the model's per-slice choice (model.students_, set when "
                "impute trains with students='auto'); this model has none. Use students='paper' or model=None."
            )
    check_positive_int(max_epochs, "max_epochs")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    if key_added == latent_key:
        raise InvalidInputError("`key_added` must differ from `latent_key` (the observed latent is kept).")
    source, target, trained_students = None, mdata, None
    if model is None and layout is not None:
        if not isinstance(layout, LatentLayout):
            raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
        if latent_key in mdata.obsm:
            layout.check_width(np.shape(mdata.obsm[latent_key])[1], field=f"mdata.obsm[{latent_key!r}]")
    if model is None:
        from ..models._latent_imputer import check_split_key, make_split, validate_imputer_setup

        check_split_key(mdata, split_key)

        # every check that does not need the registered model, before anything touches `mdata`
        registered = {
            "latent_key": latent_key,
            "rna_key": rna_key,
            "rna_layer": rna_layer,
            "rna_scale": rna_scale,
            "geneformer_key": geneformer_key,
            "gene_embedding_key": gene_embedding_key,
        }
        validate_imputer_setup(mdata, **registered)
        fractions = dict(model_kwargs or {}).get("split_fractions", (0.8, 0.1, 0.1))
        make_split(mdata, latent_key, split_key, fractions, seed, log=False)  # checked here, logged by CFMD
        scvi.settings.seed = int(seed)
        CFMD.setup_mudata(mdata, **registered)
        model = CFMD(mdata, layout=layout, split_key=split_key, seed=seed, **dict(model_kwargs or {}))
        options = {"max_epochs": max_epochs, **dict(train_kwargs or {})}
        model.train(**options)
        trained_students = _fit_students(
            mdata, model, students, latent_key=latent_key, rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale,
            seed=seed, max_epochs=max_epochs, model_kwargs=model_kwargs, train_kwargs=train_kwargs,
            geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
        )  # fmt: skip
        if students == "auto":
            model.students_ = trained_students
        if save_model is not None:
            model.save(save_model, overwrite=True, prefix=prefix)
            source = str(save_model)
            if students == "auto":
                from ._students import save_students

                save_students(save_model, trained_students[0], trained_students[1], prefix=prefix)
    elif isinstance(model, str | PathLike):
        source = str(model)
        model = CFMD.load(Path(model), adata=mdata, prefix=prefix, min_gene_overlap=min_gene_overlap)
        if stored_students is not None:
            model.students_ = stored_students
        target = model.adata  # `mdata` itself, or its copy with the model's genes (already aligned, warned once)
    elif not isinstance(model, CFMD):
        raise InvalidInputError(
            f"`model` must be a CFMD model, a saved model directory or None; got {type(model).__name__}."
        )

    model_layout = model.layout
    latent_key_used = setup_args(model)["latent_key"]
    prediction = model.get_imputed_latent(target)
    record = None
    if students == "auto":
        prediction, record = _apply_students(model, target, prediction)
    elif trained_students is not None:
        record = trained_students[0]  # "paper": CFMD everywhere, the ridge's held-out scores shown next to it
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
    if record is not None:
        mdata.uns[key_added]["students"] = {
            "mode": students,
            "rule": record["rule"],
            "chosen": dict(record["chosen"]) if students == "auto" else dict.fromkeys(record["chosen"], "cfmd"),
            "scores": {k: dict(v) for k, v in record["scores"].items()},
            "n_patients": int(record.get("n_patients", 0)),
        }
        logger.info(
            "impute: students=%r; per slice %s; held-out R^2 %s (%s).",
            students,
            mdata.uns[key_added]["students"]["chosen"],
            {k: {c: round(x, 3) for c, x in v.items()} for k, v in record["scores"].items()},
            record["rule"],
        )
    logger.info(
        "impute: wrote .obsm[%r] for %d patients (%d observed, %d imputed).",
        key_added,
        mdata.n_obs,
        int(keep_observed.sum()),
        int((~keep_observed).sum()),
    )
    return model


def _fit_students(
    mdata, model, students, *, latent_key, rna_key, rna_layer, rna_scale, seed, max_epochs, model_kwargs, train_kwargs,
    geneformer_key, gene_embedding_key,
):  # fmt: skip
    """The ridge on the model's training patients and the per-slice held-out scores (see ``students``)."""
    from ._students import AUTO_INNER_CV_BELOW, choose_students, fit_ridge, predict_ridge, ridge_log_expression

    layout = model.layout
    names = mdata.obs_names
    rows = {k: np.flatnonzero(names.isin([str(v) for v in vals])) for k, vals in model.split_.items()}
    latent = np.asarray(mdata.obsm[latent_key], dtype=np.float64)
    log_expr = ridge_log_expression(mdata, rna_key, rna_layer, rna_scale)
    train, val = rows["train"], rows["validation"]
    ridge = fit_ridge(log_expr[train], latent[train], layout)
    slices = list(model.module.predicted_slices)
    if students == "auto" and train.size < AUTO_INNER_CV_BELOW:
        truth, preds = _inner_cv_predictions(
            mdata, np.sort(np.concatenate([train, val])), latent, log_expr, layout, seed=seed, latent_key=latent_key,
            rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale, max_epochs=max_epochs,
            model_kwargs=model_kwargs, train_kwargs=train_kwargs, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key,
        )  # fmt: skip
        rule = (
            f"inner 3-fold CV over the {truth.shape[0]} training + validation patients ({train.size} training "
            f"patients < {AUTO_INNER_CV_BELOW})"
        )
    else:
        cfmd_val = model.get_imputed_latent(mdata)[val]
        truth, preds = latent[val], {"cfmd": cfmd_val, "ridge": predict_ridge(ridge, log_expr[val], layout)}
        rule = f"validation split ({val.size} patients)"
    record = choose_students(truth, preds, layout, slices=slices)
    record["rule"] = rule
    record["genes"] = [str(g) for g in mdata.mod[rna_key].var_names]
    return record, ridge


def _inner_cv_predictions(
    mdata, rows, latent, log_expr, layout, *, seed, latent_key, rna_key, rna_layer, rna_scale, max_epochs,
    model_kwargs, train_kwargs, geneformer_key, gene_embedding_key, n_folds: int = 3,
):  # fmt: skip
    """Out-of-fold CFMD and ridge predictions of ``rows`` (3 folds; CFMD early-stopped on 12% of each fold's rest)."""
    import scvi

    from ..models import CFMD
    from ._students import fit_ridge, predict_ridge

    rng = np.random.default_rng(seed)
    order = rng.permutation(rows)
    folds = [order[i::n_folds] for i in range(n_folds)]
    preds = {"cfmd": np.zeros((rows.size, layout.n_dims)), "ridge": np.zeros((rows.size, layout.n_dims))}
    position = {r: i for i, r in enumerate(rows)}
    column = "_cfmd_inner_split"
    for k, held in enumerate(folds):
        rest = np.setdiff1d(rows, held)
        rest = rng.permutation(rest)
        n_val = max(3, int(round(0.12 * rest.size)))
        labels = np.where(np.isfinite(latent).all(axis=1), "test", "rna_only").astype(object)  # never trained on
        labels[rest[n_val:]], labels[rest[:n_val]], labels[held] = "train", "validation", "test"
        work = mdata.copy()
        work.obs[column] = labels
        scvi.settings.seed = int(seed) + k
        CFMD.setup_mudata(
            work, latent_key=latent_key, rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale,
            geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
        )  # fmt: skip
        inner = CFMD(work, layout=layout, split_key=column, seed=seed, **dict(model_kwargs or {}))
        inner.train(max_epochs=max_epochs, **dict(train_kwargs or {}))
        at = [position[r] for r in held]
        preds["cfmd"][at] = inner.get_imputed_latent(work)[held]
        ridge = fit_ridge(log_expr[rest[n_val:]], latent[rest[n_val:]], layout)
        preds["ridge"][at] = predict_ridge(ridge, log_expr[held], layout)
    return latent[rows], preds


def _apply_students(model, target, prediction):
    """The composite latent of a model with ``students_`` (its record and ridge)."""
    from ..models._scvi_private import setup_args
    from ._students import compose, predict_ridge, ridge_log_expression

    record, ridge = model.students_
    args = setup_args(model)
    rna = target.mod[args["rna_key"]]
    genes = [str(g) for g in rna.var_names]
    if genes != list(record["genes"]):
        raise InvalidInputError(
            f"The ridge students were fitted on {len(record['genes'])} genes but mdata[{args['rna_key']!r}] "
            f"(aligned to the model) has {len(genes)} in another order; cannot apply students='auto'."
        )
    log_expr = ridge_log_expression(target, args["rna_key"], args.get("rna_layer"), args["rna_scale"])
    ridge_prediction = predict_ridge(ridge, log_expr, model.layout)
    return compose({"cfmd": prediction, "ridge": ridge_prediction}, record["chosen"], model.layout), record


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
