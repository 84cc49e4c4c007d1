"""``cfmd.tl.decode``: imputed latent -> modality values through the StructuredVAE's decoders."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._logging import logger
from .._validation import InvalidInputError, check_choice, check_obsm, describe_examples

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["decode"]


def decode(
    mdata: MuData,
    *,
    latent_key: str = "X_diffusion",
    vae=None,
    modality: str = "meth",
    key_added: str | None = None,
    patients: Literal["missing", "all"] = "missing",
    prefix: str | None = None,
):
    """Decode an (imputed) latent into values of a modality with the StructuredVAE's decoder of that modality.

    The modality's decoder reads only its own slice of the latent (plus the cancer type when the VAE conditions
    on it), so an imputed slice decodes to expected feature values: beta means for methylation, Gaussian means
    for CNV, mutation probabilities for ``mut``.

    Parameters
    ----------
    mdata
        MuData with the latent in ``mdata.obsm[latent_key]`` (e.g. written by :func:`~cfmd.tl.generate`).
    latent_key
        ``.obsm`` key of the latent to decode (the VAE's layout and width).
    vae
        A trained :class:`~cfmd.models.StructuredVAE` or the folder of a saved one.
    modality
        A non-RNA modality of the VAE (``"meth"``, ``"cnv"``, ``"mut"``).
    key_added
        Name of the new modality (default ``f"{modality}_imputed"``).
    patients
        ``"missing"``: patients absent from ``mdata.mod[modality]``; ``"all"``: every patient.
    prefix
        File prefix of a saved ``vae``.

    Returns
    -------
    The new :class:`~anndata.AnnData`, also written as ``mdata.mod[key_added]`` (and ``mdata.update()`` called),
    a regular modality that muon / scanpy use directly:

    ``.X``
        ``(n_decoded_patients, n_features)`` float32 decoded values.
    ``.var``
        ``var_names`` ``f"{key_added}:{feature}"`` (unique across the MuData); ``var["feature"]``: the VAE's
        feature names (those of ``mdata.mod[modality]``).
    ``.obs``
        The decoded patients (``mdata.obs_names``).
    ``.uns["cfmd_decode"]``
        ``latent_key``, ``modality``, ``slice`` (the latent slice decoded), ``patients``, ``likelihood``.
    """
    from .._transaction import unchanged_on_error

    with unchanged_on_error(mdata):
        return _decode(mdata, latent_key, vae, modality, key_added, patients, prefix)


def _decode(mdata, latent_key, vae, modality, key_added, patients, prefix):
    import anndata as ad
    import pandas as pd
    import torch

    from ..models import StructuredVAE
    from ..models._scvi_private import SETUP_ARGS_KEY
    from ..models._structured_vae import _modality_key

    check_choice(patients, "patients", ("missing", "all"))
    latent = check_obsm(mdata, latent_key, field="mdata")
    if isinstance(vae, str | PathLike):
        from ..models._io import read_model_folder

        meta, state = read_model_folder(vae, prefix=prefix, expected_class="StructuredVAE")
        module = StructuredVAE._module_cls(**meta["module_kwargs"])
        module.load_state_dict(state, strict=True)
        registry, slice_modalities = meta["registry"], meta["attributes"]["slice_modalities"]
    elif isinstance(vae, StructuredVAE):
        module, registry, slice_modalities = vae.module, vae.adata_manager.registry, vae.slice_modalities
    else:
        raise InvalidInputError(f"`vae` must be a StructuredVAE or a saved one's folder; got {type(vae).__name__}.")
    owners = {m: s for s, m in slice_modalities.items()}
    if modality not in owners:
        raise InvalidInputError(f"`modality` must be one of the VAE's modalities {sorted(owners)}; got {modality!r}.")
    slice_name = owners[modality]
    spec = next(s for s in module.modalities if s.registry_key == _modality_key(slice_name))
    if latent.shape[1] < spec.slice_stop:
        raise InvalidInputError(
            f"mdata.obsm[{latent_key!r}] has {latent.shape[1]} dimensions; the VAE's {slice_name!r} slice needs "
            f"[{spec.slice_start}, {spec.slice_stop})."
        )
    key_added = key_added or f"{modality}_imputed"
    if key_added in mdata.mod:
        raise InvalidInputError(f"mdata.mod already has a modality {key_added!r}; pass another `key_added`.")
    if patients == "missing" and modality in mdata.mod:
        rows = np.flatnonzero(~mdata.obs_names.isin(mdata.mod[modality].obs_names))
    else:
        rows = np.arange(mdata.n_obs)
    z = np.asarray(latent, dtype=np.float32)[rows]
    bad = ~np.isfinite(z[:, spec.slice_start : spec.slice_stop]).all(1)
    if bad.any():
        raise InvalidInputError(
            f"mdata.obsm[{latent_key!r}] has NaN/inf in the {slice_name!r} slice for {int(bad.sum())} patient(s) to "
            f"decode ({describe_examples(mdata.obs_names[rows][bad])})."
        )
    cancer_type = None
    if module.n_cancer_types:
        key = registry[SETUP_ARGS_KEY]["cancer_type_key"]
        mapping = list(registry["field_registries"]["cancer_type"]["state_registry"]["categorical_mapping"])
        if key not in mdata.obs:
            raise InvalidInputError(f"mdata.obs has no column {key!r}, which the VAE's decoders condition on.")
        labels = mdata.obs[key].astype(str).to_numpy()[rows]
        unknown = sorted(set(labels) - set(map(str, mapping)))
        if unknown:
            raise InvalidInputError(
                f"mdata.obs[{key!r}] has cancer type(s) the VAE was not trained on: {describe_examples(unknown)}."
            )
        codes = {str(c): i for i, c in enumerate(mapping)}
        cancer_type = torch.as_tensor([codes[v] for v in labels], dtype=torch.long).reshape(-1, 1)
    features = registry["field_registries"][spec.registry_key]["state_registry"]["column_names"]
    module.eval()
    with torch.inference_mode():
        raw = module.decode_modality(spec.registry_key, torch.as_tensor(z), cancer_type)
        values = raw if spec.likelihood == "normal" else torch.sigmoid(raw)
    adata = ad.AnnData(
        X=values.numpy().astype(np.float32),
        obs=mdata.obs.iloc[rows][[]].copy(),
        var=pd.DataFrame(
            {"feature": np.asarray(features, dtype=str)},
            index=[f"{key_added}:{name}" for name in np.asarray(features, dtype=str)],
        ),
    )
    adata.uns["cfmd_decode"] = {
        "latent_key": latent_key,
        "modality": modality,
        "slice": slice_name,
        "patients": patients,
        "likelihood": spec.likelihood,
    }
    mdata.mod[key_added] = adata
    mdata.update()
    logger.info("decode: wrote mdata.mod[%r] (%d patients x %d features).", key_added, *adata.shape)
    return adata
