"""``cfmd.tl.generate``: impute part of the latent with a generative model (LatentDiffusion / CoherentDenoising).

The imputation is the mean of ``n_samples`` generations; its uncertainty is their variance as a fraction of the
training patients' variance (per slice and per patient), as in seed 004's Table 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._constants import (
    DEFAULT_LATENT_KEY,
    DEFAULT_RNA_KEY,
    DEFAULT_SEED,
    DEFAULT_SPLIT_KEY,
    DIFFUSION_MAX_EPOCHS,
)
from .._layout import layout_uns_key
from .._logging import logger
from .._validation import InvalidInputError, check_choice, check_positive_int

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["GENERATIVE_MODELS", "generate"]

#: ``model=`` names of the generative imputers.
GENERATIVE_MODELS = ("diffusion", "coherent_denoising")


def _model_class(name: str):
    from ..models import CoherentDenoising, LatentDiffusion

    return {"diffusion": LatentDiffusion, "coherent_denoising": CoherentDenoising}[name]


def generate(
    mdata: MuData,
    *,
    model="diffusion",
    target: str | Sequence[str] = "meth",
    conditions: Sequence[str] | None = None,
    latent_key: str = DEFAULT_LATENT_KEY,
    key_added: str = "X_diffusion",
    fill: Literal["missing", "all"] = "missing",
    n_samples: int = 10,
    return_samples: bool = False,
    rna_key: str = DEFAULT_RNA_KEY,
    rna_layer: str | None = None,
    rna_scale: Literal["counts", "log2", "zscore"] = "counts",
    geneformer_key: str | None = None,
    gene_embedding_key: str | None = None,
    cancer_type_key: str | None = "cancer_type",
    split_key: str | None = DEFAULT_SPLIT_KEY,
    seed: int = DEFAULT_SEED,
    max_epochs: int = DIFFUSION_MAX_EPOCHS,
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    save_model: str | PathLike | None = None,
    prefix: str | None = None,
    min_gene_overlap: float = 0.5,
):
    """Impute target slices of the latent with a diffusion model: mean of ``n_samples`` generations + uncertainty.

    With ``model="diffusion"`` (:class:`~cfmd.models.LatentDiffusion`) or ``"coherent_denoising"``
    (:class:`~cfmd.models.CoherentDenoising`) the model is set up on ``mdata`` and trained on the training split
    (patient-disjoint; normalisation from the training patients only), then every patient is generated. With a
    trained model or the folder of a saved one nothing is trained and ``mdata`` needs RNA only (and whatever other
    conditions the model uses; missing ones are masked). On any error ``mdata`` is left exactly as it was.

    Parameters
    ----------
    mdata
        MuData with RNA for every patient and, for training, the latent ``mdata.obsm[latent_key]`` with its layout.
    model
        ``"diffusion"``, ``"coherent_denoising"``, a trained model, or the folder of a saved one.
    target, conditions
        What to generate and from what (see :class:`~cfmd.models.LatentDiffusion`); only when training.
    latent_key
        ``.obsm`` key of the observed latent.
    key_added
        ``.obsm`` key of the imputed latent.
    fill
        ``"missing"``: patients with an observed latent keep it; ``"all"``: every patient gets the generated mean.
    n_samples
        Generations per patient.
    return_samples
        Also write the generations (``.obsm[f"{key_added}_samples"]``).
    rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key, cancer_type_key
        Passed to ``setup_mudata`` when training (``gene_embedding_key``: the per-gene ESM-2 embeddings in
        ``mdata[rna_key].varm`` that the ``"esm"`` condition, the expression-weighted structural fingerprint, is
        computed from).
    split_key, seed
        Patient split (as for :func:`~cfmd.tl.impute`) and the seed of split, initialisation, training and sampling.
    max_epochs
        Maximum training epochs (early stopping on the denoised validation MSE decides; see
        :meth:`~cfmd.models.LatentDiffusion.train`).
    model_kwargs, train_kwargs
        Extra keyword arguments of the model and of its ``train``.
    save_model, prefix
        Folder (and file prefix) to save the trained model to; ``prefix`` also applies to loading ``model``.
    min_gene_overlap
        With a saved model: smallest fraction of its genes ``mdata`` must have.

    Returns
    -------
    The model. Fields written to ``mdata`` (all at the end):

    ``.obsm[key_added]``
        ``(n_patients, n_dims)``: target slices = mean of the generations; slices the model does not generate
        are 0 (``zero-masked``); with ``fill="missing"`` patients with an observed latent keep it.
    ``.obsm[f"{key_added}_variance"]``
        DataFrame, one column per target slice: the variance of the generations summed over the slice's
        dimensions divided by the training patients' variance summed over them (the seed's "output variance as %
        of the data's", as a fraction), for every patient.
    ``.obs[f"{key_added}_uncertainty"]``
        The same over all target dimensions, per patient.
    ``.obsm[f"{key_added}_samples"]``
        Only with ``return_samples``: ``(n_patients, n_samples, n_target_dims)`` generations in latent units
        (target dimensions in layout order of ``.uns[key_added]["target_slices"]``).
    ``.obsm[f"{key_added}_provenance"]``
        DataFrame, one categorical column per slice: ``observed``, ``imputed`` or ``zero-masked``.
    ``.uns[f"{key_added}_layout"]``
        The layout.
    ``.uns[key_added]``
        Model class, cfmd version, init parameters (JSON), ``split`` (obs names of the train / validation / test
        patients) and ``split_sizes``, ``seed``, ``model_path``, ``fill``, ``latent_key``, ``provenance``,
        ``n_samples``, ``target_slices``, ``conditions``; for Coherent Denoising also ``member_weights``,
        ``member_validation_mse`` and ``rejection`` (``n_trajectories``, ``n_rejected``, ``rejection_rate``,
        ``n_unresolved``).
    """
    from .._transaction import unchanged_on_error

    with unchanged_on_error(mdata):
        return _generate(
            mdata, model=model, target=target, conditions=conditions, latent_key=latent_key, key_added=key_added,
            fill=fill, n_samples=n_samples, return_samples=return_samples, rna_key=rna_key, rna_layer=rna_layer,
            rna_scale=rna_scale, geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
            cancer_type_key=cancer_type_key, split_key=split_key,
            seed=seed, max_epochs=max_epochs, model_kwargs=model_kwargs, train_kwargs=train_kwargs,
            save_model=save_model, prefix=prefix, min_gene_overlap=min_gene_overlap,
        )  # fmt: skip


def is_generative(model, prefix: str | None = None) -> bool:
    """Whether ``model`` names, is, or is the folder of a LatentDiffusion / CoherentDenoising."""
    if isinstance(model, str) and model in GENERATIVE_MODELS:
        return True
    if type(model).__name__ in ("LatentDiffusion", "CoherentDenoising"):
        return True
    if isinstance(model, str | PathLike):
        from ..models._io import model_files

        meta = model_files(model, prefix)[1]
        try:
            return json.loads(meta.read_text(encoding="utf-8")).get("class") in ("LatentDiffusion", "CoherentDenoising")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return False
    return False


def load_generative(path, mdata, *, prefix=None, min_gene_overlap=0.5):
    """Load a saved LatentDiffusion / CoherentDenoising (the class is read from the folder's JSON)."""
    from ..models import CoherentDenoising, LatentDiffusion
    from ..models._io import check_model_folder

    _, meta_path = check_model_folder(path, prefix)
    try:
        name = json.loads(meta_path.read_text(encoding="utf-8")).get("class")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{str(meta_path)!r} is not a readable cfmd model description: {err}.") from None
    classes = {"LatentDiffusion": LatentDiffusion, "CoherentDenoising": CoherentDenoising}
    if name not in classes:
        raise InvalidInputError(f"{str(path)!r} holds a {name!r} model, not a LatentDiffusion / CoherentDenoising.")
    return classes[name].load(Path(path), adata=mdata, prefix=prefix, min_gene_overlap=min_gene_overlap)


def _generate(
    mdata, *, model, target, conditions, latent_key, key_added, fill, n_samples, return_samples, rna_key, rna_layer,
    rna_scale, geneformer_key, gene_embedding_key, cancer_type_key, split_key, seed, max_epochs, model_kwargs,
    train_kwargs, save_model, prefix, min_gene_overlap,
):  # fmt: skip
    import pandas as pd

    from .. import __version__
    from ..models import CoherentDenoising, LatentDiffusion
    from ._impute import PROVENANCE_CATEGORIES, _jsonable

    check_choice(fill, "fill", ("missing", "all"))
    check_positive_int(n_samples, "n_samples")
    check_positive_int(max_epochs, "max_epochs")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    if key_added == latent_key:
        raise InvalidInputError("`key_added` must differ from `latent_key` (the observed latent is kept).")
    source, data = None, mdata
    if isinstance(model, str) and model in GENERATIVE_MODELS:
        cls = _model_class(model)
        cls.setup_mudata(
            mdata,
            latent_key=latent_key,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key,
            cancer_type_key=cancer_type_key,
        )
        model = cls(mdata, target=target, conditions=conditions, split_key=split_key, seed=int(seed),
                    **dict(model_kwargs or {}))  # fmt: skip
        model.train(**{"max_epochs": max_epochs, **dict(train_kwargs or {})})
        if save_model is not None:
            model.save(save_model, overwrite=True, prefix=prefix)
            source = str(save_model)
    elif isinstance(model, str | PathLike):
        if isinstance(model, str) and not Path(model).exists():
            raise InvalidInputError(
                f"`model` must be one of {list(GENERATIVE_MODELS)}, a trained model or a saved model folder; "
                f"got {model!r}."
            )
        source = str(model)
        model = load_generative(model, mdata, prefix=prefix, min_gene_overlap=min_gene_overlap)
        data = model.adata
    elif not isinstance(model, LatentDiffusion):
        raise InvalidInputError(
            f"`model` must be one of {list(GENERATIVE_MODELS)}, a LatentDiffusion / CoherentDenoising model or a "
            f"saved model folder; got {type(model).__name__}."
        )

    module = model.module
    layout = module.layout
    samples, stats = model._generate(data, n_samples, None, None, int(seed), None)  # (S, n, D_target) latent units
    train_var = model.training_variance()
    var = samples.var(axis=0, ddof=1) if n_samples > 1 else np.zeros_like(samples[0])
    index = module.target_index
    per_slice, start = {}, 0
    for name in module.target_slices:
        width = layout[name].dim
        per_slice[name] = var[:, start : start + width].sum(1) / train_var[start : start + width].sum()
        start += width
    per_patient = var.sum(1) / train_var.sum()

    latent_key_used = model.adata_manager.registry["setup_args"]["latent_key"]
    result = np.zeros((mdata.n_obs, layout.n_dims), dtype=np.float32)
    result[:, index] = samples.mean(0)
    observed = np.zeros(mdata.n_obs, dtype=bool)
    if latent_key_used in mdata.obsm:
        observed_latent = np.asarray(mdata.obsm[latent_key_used], dtype=np.float32)
        layout.check_width(observed_latent.shape[1], field=f"mdata.obsm[{latent_key_used!r}]")
        observed = np.isfinite(observed_latent).all(axis=1)
        if fill == "missing":
            result[observed] = observed_latent[observed]
    keep = observed if fill == "missing" else np.zeros_like(observed)
    kinds = model.provenance
    provenance = pd.DataFrame(
        {n: pd.Categorical(np.where(keep, "observed", k), categories=PROVENANCE_CATEGORIES) for n, k in kinds.items()},
        index=mdata.obs_names.copy(),
    )
    record = {
        "model": type(model).__name__,
        "cfmd_version": __version__,
        "init_params": json.dumps(_jsonable(model.init_params_), sort_keys=True),
        "split_sizes": {k: len(v) for k, v in model.split_.items()},
        "split": {k: [str(name) for name in v] for k, v in model.split_.items()},
        "seed": int(seed),
        "model_path": source or "",
        "fill": fill,
        "latent_key": latent_key_used,
        "provenance": dict(kinds),
        "n_samples": int(n_samples),
        "target_slices": list(module.target_slices),
        "conditions": [c["name"] for c in module.conditions],
    }
    if isinstance(model, CoherentDenoising):
        record["member_weights"] = module.member_weights.numpy().astype(float).tolist()
        record["member_validation_mse"] = module.member_validation_mse.numpy().astype(float).tolist()
        record["rejection"] = {k: v for k, v in stats.items() if not isinstance(v, np.ndarray)}

    mdata.obsm[key_added] = result
    mdata.obsm[f"{key_added}_variance"] = pd.DataFrame(per_slice, index=mdata.obs_names.copy()).astype(np.float32)
    mdata.obs[f"{key_added}_uncertainty"] = per_patient.astype(np.float32)
    if return_samples:
        mdata.obsm[f"{key_added}_samples"] = np.ascontiguousarray(np.transpose(samples, (1, 0, 2)), dtype=np.float32)
    mdata.obsm[f"{key_added}_provenance"] = provenance
    mdata.uns[layout_uns_key(key_added)] = layout.to_dict()
    mdata.uns[key_added] = record
    logger.info(
        "generate: wrote .obsm[%r] (%s, %d samples) for %d patients; median uncertainty %.3f.",
        key_added,
        type(model).__name__,
        n_samples,
        mdata.n_obs,
        float(np.median(per_patient)),
    )
    return model


def run_generative_method(kind: str):
    """A :class:`~cfmd.tl.ImputationMethod` runner for ``"diffusion"`` / ``"coherent_denoising"``.

    Target: every slice of the layout; conditions: RNA, the Geneformer embedding and the ESM-2 structural
    fingerprint (when their embeddings are present) and the cancer type (when in ``.obs``). Trained on the context's split; the mean of 10 generations is the imputation; the per-patient
    uncertainty and per-slice variance fractions go to ``context.state[f"{kind}_uncertainty"]`` /
    ``[f"{kind}_variance"]``. ``context.state[f"{kind}_kwargs"]``, when set, holds extra model arguments (widths,
    ``num_train_timesteps``).
    """

    def run(context) -> np.ndarray:
        import inspect

        import pandas as pd

        cls = _model_class(kind)
        rna = context.mdata.mod[context.rna_key]
        geneformer = context.geneformer_key if context.geneformer_key in rna.obsm else None
        esm = context.gene_embedding_key if context.gene_embedding_key in rna.varm else None
        if esm is not None and not np.isfinite(np.asarray(rna.varm[esm], dtype=float)).all(axis=1).any():
            esm = None
        cls.setup_mudata(
            context.mdata, latent_key=context.latent_key, rna_key=context.rna_key, rna_layer=context.rna_layer,
            rna_scale=context.rna_scale, geneformer_key=geneformer, gene_embedding_key=esm,
        )  # fmt: skip
        conditions = ["rna"] + (["geneformer"] if geneformer else []) + (["esm"] if esm else [])
        conditions += ["cancer_type"] if "cancer_type" in context.mdata.obs else []
        model = cls(context.mdata, target=context.layout.names, conditions=conditions, layout=context.layout,
                    split_key=context.split_key, seed=int(context.seed),
                    **dict(context.state.get(f"{kind}_kwargs", {})))  # fmt: skip
        accepted = set(inspect.signature(model.train).parameters)
        options = {k: v for k, v in dict(context.train_kwargs).items() if k in accepted}
        model.train(**{"max_epochs": context.max_epochs, **options})
        samples, _ = model._generate(context.mdata, 10, None, None, int(context.seed), None)
        train_var = model.training_variance()
        var = samples.var(axis=0, ddof=1)
        context.state[f"{kind}_uncertainty"] = var.sum(1) / train_var.sum()
        fractions, start = {}, 0
        for name in model.module.target_slices:
            width = context.layout[name].dim
            fractions[name] = var[:, start : start + width].sum(1) / train_var[start : start + width].sum()
            start += width
        context.state[f"{kind}_variance"] = pd.DataFrame(fractions, index=context.mdata.obs_names.copy())
        out = np.zeros((context.mdata.n_obs, context.layout.n_dims), dtype=np.float32)
        out[:, model.module.target_index] = samples.mean(0)
        return out

    return run
