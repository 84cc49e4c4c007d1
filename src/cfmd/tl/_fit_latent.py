"""``cfmd.tl.fit_latent``: train the StructuredVAE and write the structured latent into the MuData."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._constants import DEFAULT_LATENT_KEY, DEFAULT_RNA_KEY, DEFAULT_SEED, DEFAULT_SPLIT_KEY
from .._layout import LatentLayout, layout_uns_key
from .._transaction import unchanged_on_error
from .._utils import quiet_scvi_logging
from .._validation import InvalidInputError, check_not_view, check_positive_int

if TYPE_CHECKING:
    from mudata import MuData

    from ..models import StructuredVAE


def fit_latent(
    mdata: MuData,
    *,
    layout: LatentLayout | None = None,
    rna_key: str = DEFAULT_RNA_KEY,
    rna_layer: str | None = None,
    rna_scale: Literal["counts", "log2", "zscore"] = "counts",
    modalities: Mapping[str, str] | None = None,
    likelihoods: Mapping[str, str] | None = None,
    cancer_type_key: str | None = None,
    split_key: str | None = DEFAULT_SPLIT_KEY,
    key_added: str = DEFAULT_LATENT_KEY,
    rna_only_key_added: str | None = None,
    max_epochs: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    n_epochs_kl_warmup: int = 20,
    seed: int = DEFAULT_SEED,
    accelerator: str = "auto",
    devices: int | str = "auto",
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
) -> StructuredVAE:
    """Fit the structured multi-omics latent (:class:`~cfmd.models.StructuredVAE`) and store it.

    When ``mdata.obs[split_key]`` exists (see :func:`~cfmd.tl.split_patients`), the VAE is trained on the
    ``train`` and ``rna_only`` patients, monitored on ``validation``, and never sees ``test`` patients (so
    their RNA-only posterior is an honest out-of-sample baseline); every patient is then encoded. Without
    a split column the fit is transductive over all patients, like the paper's VAE pre-training. Every statistic
    the model takes from the data (gene means and SDs, initialisation, proliferation-score standardisation,
    modality means) comes from the training patients only. On error ``mdata`` is left exactly as it was.

    Parameters
    ----------
    mdata
        MuData with RNA for every patient; other modalities may cover subsets of patients.
    layout
        Latent layout. Default: :meth:`~cfmd.LatentLayout.cfmd328` when the data define all of it, else that
        layout adapted to the data by :meth:`~cfmd.LatentLayout.adapted_to` (said in a log line): pathway blocks
        with no gene in the RNA and a proliferation slice without signature genes are dropped (warnings naming
        them); with ``modalities=None``, slices whose default modality is absent (e.g. ``ctx`` without ``mut``)
        are dropped, while with explicit ``modalities`` a slice left without an owner is an error naming it.
        Roles (``pathway_slice``, ``prolif_slice``, ``residual_slice``) whose slice was dropped are switched off.
    rna_key, rna_layer, rna_scale, likelihoods, cancer_type_key
        Passed to :meth:`~cfmd.models.StructuredVAE.setup_mudata`.
    modalities
        ``{latent slice: modality}`` (passed to :meth:`~cfmd.models.StructuredVAE.setup_mudata`). Default: those
        of ``{"meth": "meth", "cnv": "cnv", "ctx": "mut"}`` whose modality is in ``mdata``.
    split_key
        ``mdata.obs`` column with the patient split; ``None`` or a missing column: train on everyone.
    key_added
        ``mdata.obsm`` key of the latent (posterior mean from all modalities).
    rna_only_key_added
        ``mdata.obsm`` key of the RNA-only posterior mean (default ``f"{key_added}_rna_only"``).
    max_epochs, batch_size, lr, n_epochs_kl_warmup
        Training settings.
    seed
        Random seed (``scvi.settings.seed``); the same seed gives the same latent.
    accelerator, devices
        Passed to Lightning (e.g. ``accelerator="gpu"``); further Lightning options such as ``strategy`` go in
        ``train_kwargs``.
    model_kwargs
        Extra keyword arguments of :class:`~cfmd.models.StructuredVAE`.
    train_kwargs
        Extra keyword arguments of :meth:`~cfmd.models.StructuredVAE.train`.

    Returns
    -------
    The trained model. Fields written to ``mdata``:

    ``.obsm[key_added]``
        ``(n_patients, n_dims)`` posterior mean from every modality, for patients who have **every** modality
        the layout's slices are defined by; NaN rows for the others (exactly the patients CFMD will impute).
    ``.obsm[rna_only_key_added]``
        RNA-only posterior mean for every patient (the "PoE VAE RNA-only" baseline).
    ``.uns[f"{key_added}_layout"]``
        The layout (:meth:`LatentLayout.to_dict <cfmd.LatentLayout.to_dict>`).
    ``.uns[key_added]``
        Parameters: model class, RNA modality, layer (``""`` for ``.X``) and scale, modalities, epochs trained,
        seed, keys written.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=100, n_genes=300)
    >>> vae = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    >>> mdata.obsm["X_structured"].shape, mdata.obsm["X_structured_rna_only"].shape
    ((100, 328), (100, 328))
    """
    import mudata as md

    if not isinstance(mdata, md.MuData):
        raise InvalidInputError(f"`mdata` must be a MuData object; got {type(mdata).__name__}.")
    check_not_view(mdata, "mdata")
    check_positive_int(max_epochs, "max_epochs")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    rna_only_key_added = rna_only_key_added or f"{key_added}_rna_only"
    if rna_only_key_added == key_added:
        raise InvalidInputError("`rna_only_key_added` must differ from `key_added`.")
    if layout is not None and not isinstance(layout, LatentLayout):
        raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")
    with unchanged_on_error(mdata), quiet_scvi_logging():
        return _fit_latent(
            mdata,
            layout=layout,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            modalities=modalities,
            likelihoods=likelihoods,
            cancer_type_key=cancer_type_key,
            split_key=split_key,
            key_added=key_added,
            rna_only_key_added=rna_only_key_added,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            seed=int(seed),
            accelerator=accelerator,
            devices=devices,
            model_kwargs=dict(model_kwargs or {}),
            train_kwargs=dict(train_kwargs or {}),
            given_modalities=modalities is not None,
        )


#: Fewest training patients :func:`fit_latent` accepts (gene SDs and a minibatch need more than one).
MIN_TRAINING_PATIENTS = 2


def _fit_latent(
    mdata: MuData,
    *,
    layout: LatentLayout,
    rna_key: str,
    rna_layer: str | None,
    rna_scale: str,
    modalities: Mapping[str, str] | None,
    likelihoods: Mapping[str, str] | None,
    cancer_type_key: str | None,
    split_key: str | None,
    key_added: str,
    rna_only_key_added: str,
    max_epochs: int,
    batch_size: int,
    lr: float,
    n_epochs_kl_warmup: int,
    seed: int,
    accelerator: str,
    devices: int | str,
    model_kwargs: dict,
    train_kwargs: dict,
    given_modalities: bool = True,
) -> StructuredVAE:
    """The body of :func:`fit_latent`, run inside :func:`~cfmd._transaction.unchanged_on_error`."""
    import scvi

    from .._logging import logger
    from ..models import StructuredVAE
    from ..models._structured_vae import DEFAULT_MODALITIES, _validate_setup, check_layout_roles
    from ._split import split_indices

    # every check that needs no registration runs before scvi-tools writes into mdata.uns
    if mdata.n_obs < MIN_TRAINING_PATIENTS + 1:
        raise InvalidInputError(
            f"mdata has {mdata.n_obs} patient(s) (mdata.n_obs); fit_latent needs at least "
            f"{MIN_TRAINING_PATIENTS + 1} (training patients plus one to monitor training)."
        )
    if modalities is None:
        modalities = {name: mod for name, mod in DEFAULT_MODALITIES.items() if mod in mdata.mod}
    if layout is None:
        _validate_setup(
            mdata, rna_key, rna_layer, rna_scale, dict(modalities), dict(likelihoods or {}), cancer_type_key
        )
        layout, model_kwargs = _default_layout(
            mdata, rna_key=rna_key, modalities=modalities, explicit=given_modalities, model_kwargs=model_kwargs
        )
    check_layout_roles(layout, modalities, model_kwargs)
    indexing, train = None, None
    if split_key is not None and split_key in mdata.obs:
        parts = split_indices(mdata, split_key)
        train = np.sort(np.concatenate([parts["train"], parts["rna_only"]]))
        if parts["validation"].size == 0:
            raise InvalidInputError(f"mdata.obs[{split_key!r}] has no 'validation' patients to monitor training.")
        if train.size < MIN_TRAINING_PATIENTS:
            raise InvalidInputError(
                f"mdata.obs[{split_key!r}] has {train.size} 'train'/'rna_only' patient(s); fit_latent needs at least "
                f"{MIN_TRAINING_PATIENTS} training patients."
            )
        indexing = [train, parts["validation"], parts["test"]]
        logger.info(
            "fit_latent: training on %d patients, monitoring on %d, %d test patients held out (split %r).",
            train.size,
            parts["validation"].size,
            parts["test"].size,
            split_key,
        )
    else:
        logger.info("fit_latent: no split column %r; training transductively on all patients.", split_key)

    scvi.settings.seed = seed
    StructuredVAE.setup_mudata(
        mdata,
        rna_key=rna_key,
        rna_layer=rna_layer,
        rna_scale=rna_scale,
        modalities=modalities,
        likelihoods=likelihoods,
        cancer_type_key=cancer_type_key,
    )
    model = StructuredVAE(mdata, layout=layout, train_indices=train, **model_kwargs)
    train_options = {
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "accelerator": accelerator,
        "devices": devices,
        "plan_kwargs": {"lr": lr, "n_epochs_kl_warmup": n_epochs_kl_warmup},
    }
    if indexing is not None:
        train_options["datasplitter_kwargs"] = {"external_indexing": indexing}
    train_options.update(train_kwargs)
    model.train(**train_options)

    latent = model.get_latent_representation(mdata)
    latent[~model.patients_with_all_modalities(mdata)] = np.nan
    rna_only = model.get_latent_representation(mdata, modalities=[rna_key])

    mdata.obsm[key_added] = latent.astype(np.float32)
    mdata.obsm[rna_only_key_added] = rna_only.astype(np.float32)
    mdata.uns[layout_uns_key(key_added)] = layout.to_dict()
    mdata.uns[key_added] = {
        "model": "StructuredVAE",
        "rna_key": rna_key,
        "rna_layer": rna_layer or "",
        "rna_scale": rna_scale,
        "modality_slices": np.array(list(model.slice_modalities), dtype=object),
        "modality_names": np.array(list(model.slice_modalities.values()), dtype=object),
        "epochs_trained": int(len(model.history["elbo_train"])) if "elbo_train" in model.history else max_epochs,
        "seed": seed,
        "split_key": split_key if indexing is not None else "",
        "rna_only_key": rna_only_key_added,
        "n_patients_with_latent": int(np.isfinite(latent[:, 0]).sum()),
    }
    return model


_ROLES = {"pathway_slice": "pathway", "prolif_slice": "prolif", "residual_slice": "residual"}


def _default_layout(
    mdata: MuData, *, rna_key: str, modalities: Mapping[str, str], explicit: bool, model_kwargs: dict
) -> tuple[LatentLayout, dict]:
    """The default layout for this data (``cfmd328``, adapted when it does not fit) and the model's roles."""
    import warnings

    from .._logging import logger

    base = LatentLayout.cfmd328()
    roles = {role: model_kwargs.get(role, default) for role, default in _ROLES.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layout = LatentLayout.adapted_to(
            mdata,
            modalities=modalities,
            rna_key=rna_key,
            gene_sets=model_kwargs.get("gene_sets"),
            pathway_slice=roles["pathway_slice"],
            prolif_slice=roles["prolif_slice"],
            rna_slices=tuple(r for r in (roles["residual_slice"],) if r is not None),
            drop_unowned=not explicit,
        )
    for w in caught:  # re-issued from here so that the caller sees them once, at its own call site
        warnings.warn(str(w.message), w.category, stacklevel=4)
    if layout == base:
        return layout, model_kwargs
    dropped = [s.name for s in base if s.name not in layout]
    logger.info(
        "fit_latent: the default layout (cfmd328) does not fit the data; using LatentLayout.adapted_to(...): "
        "%d dims (%s)%s.",
        layout.n_dims,
        ", ".join(f"{s.name} {s.dim}" for s in layout),
        f", dropped {', '.join(dropped)}" if dropped else "",
    )
    model_kwargs = dict(model_kwargs)
    for role, name in roles.items():
        if name is not None and name not in layout:
            model_kwargs[role] = None
    return layout, model_kwargs
