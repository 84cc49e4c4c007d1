"""``cfmd.tl.fit_latent``: train the StructuredVAE and write the structured latent into the MuData."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._layout import LatentLayout, layout_uns_key
from .._validation import InvalidInputError, check_positive_int

if TYPE_CHECKING:
    from mudata import MuData

    from ..models import StructuredVAE


def fit_latent(
    mdata: MuData,
    *,
    layout: LatentLayout | None = None,
    rna_key: str = "rna",
    rna_layer: str | None = None,
    rna_scale: Literal["counts", "log2", "zscore"] = "counts",
    modalities: Mapping[str, str] | None = None,
    likelihoods: Mapping[str, str] | None = None,
    cancer_type_key: str | None = None,
    split_key: str | None = "cfmd_split",
    key_added: str = "X_structured",
    rna_only_key_added: str | None = None,
    max_epochs: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    n_epochs_kl_warmup: int = 20,
    seed: int = 0,
    accelerator: str = "auto",
    devices: int | str = "auto",
    model_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
) -> StructuredVAE:
    """Fit the structured multi-omics latent (:class:`~cfmd.models.StructuredVAE`) and store it.

    When ``mdata.obs[split_key]`` exists (see :func:`~cfmd.tl.split_patients`), the VAE is trained on the
    ``train`` and ``rna_only`` patients, monitored on ``validation``, and never sees ``test`` patients (so
    their RNA-only posterior is an honest out-of-sample baseline); every patient is then encoded. Without
    a split column the fit is transductive over all patients, like the paper's VAE pre-training.

    Parameters
    ----------
    mdata
        MuData with RNA for every patient; other modalities may cover subsets of patients.
    layout
        Latent layout (default :meth:`~cfmd.LatentLayout.cfmd328`).
    rna_key, rna_layer, rna_scale, modalities, likelihoods, cancer_type_key
        Passed to :meth:`~cfmd.models.StructuredVAE.setup_mudata`.
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
        Parameters: model class, RNA scale, modalities, epochs trained, seed, keys written.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=100, n_genes=300)
    >>> vae = cfmd.tl.fit_latent(mdata, max_epochs=2, train_kwargs={"enable_progress_bar": False})
    >>> mdata.obsm["X_structured"].shape, mdata.obsm["X_structured_rna_only"].shape
    ((100, 328), (100, 328))
    """
    import scvi

    from .._logging import logger
    from ..models import StructuredVAE
    from ._split import split_indices

    check_positive_int(max_epochs, "max_epochs")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    rna_only_key_added = rna_only_key_added or f"{key_added}_rna_only"
    if rna_only_key_added == key_added:
        raise InvalidInputError("`rna_only_key_added` must differ from `key_added`.")
    layout = layout if layout is not None else LatentLayout.cfmd328()
    if not isinstance(layout, LatentLayout):
        raise InvalidInputError(f"`layout` must be a cfmd.LatentLayout; got {type(layout).__name__}.")

    indexing = None
    if split_key is not None and split_key in mdata.obs:
        parts = split_indices(mdata, split_key)
        train = np.sort(np.concatenate([parts["train"], parts["rna_only"]]))
        if parts["validation"].size == 0:
            raise InvalidInputError(f"mdata.obs[{split_key!r}] has no 'validation' patients to monitor training.")
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

    scvi.settings.seed = int(seed)
    StructuredVAE.setup_mudata(
        mdata,
        rna_key=rna_key,
        rna_layer=rna_layer,
        rna_scale=rna_scale,
        modalities=modalities,
        likelihoods=likelihoods,
        cancer_type_key=cancer_type_key,
    )
    model = StructuredVAE(mdata, layout=layout, **dict(model_kwargs or {}))
    train_options = {
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "accelerator": accelerator,
        "devices": devices,
        "plan_kwargs": {"lr": lr, "n_epochs_kl_warmup": n_epochs_kl_warmup},
    }
    if indexing is not None:
        train_options["datasplitter_kwargs"] = {"external_indexing": indexing}
    train_options.update(dict(train_kwargs or {}))
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
        "rna_scale": rna_scale,
        "modality_slices": np.array(list(model.slice_modalities), dtype=object),
        "modality_names": np.array(list(model.slice_modalities.values()), dtype=object),
        "epochs_trained": int(len(model.history["elbo_train"])) if "elbo_train" in model.history else max_epochs,
        "seed": int(seed),
        "split_key": split_key if indexing is not None else "",
        "rna_only_key": rna_only_key_added,
        "n_patients_with_latent": int(np.isfinite(latent[:, 0]).sum()),
    }
    return model
