"""Small helpers shared across sub-packages."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import anndata as ad


def new_mudata(modalities: Mapping[str, ad.AnnData]):
    """Build a :class:`~mudata.MuData` without mudata's legacy column pulling (and its FutureWarning).

    Global ``obs``/``var`` keep only the index; columns are set explicitly by the caller.
    """
    import mudata as md

    with md.set_options(pull_on_update=False):
        return md.MuData(dict(modalities))


def copy_mudata(mdata):
    """``mdata.copy()`` under the user's mudata options, without mudata's FutureWarning in cfmd's output.

    (``pull_on_update=False`` is not forced here: mudata 0.3 fails to copy some objects, e.g. with a named obs index,
    under it.) AnnData objects are copied as they are.
    """
    import warnings

    import mudata as md

    if not isinstance(mdata, md.MuData):
        return mdata.copy()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"From 0\.4 \.update\(\) will not pull", category=FutureWarning)
        return mdata.copy()


@contextmanager
def quiet_scvi_logging() -> Iterator[None]:
    """Raise scvi-tools' logger to WARNING for the duration of a cfmd call, then restore the user's level.

    cfmd never changes the ``scvi`` logger globally (that is the user's setting); its own calls use this context
    so that scvi-tools' INFO chatter (registration messages) stays out of cfmd's output.
    """
    scvi_logger = logging.getLogger("scvi")
    level = scvi_logger.level
    scvi_logger.setLevel(max(scvi_logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        scvi_logger.setLevel(level)


def import_diffusers():
    """``diffusers``' scheduler and time embedding, imported without its import-time changes to warning filters.

    Importing diffusers adds entries to Python's global warning filters; cfmd changes no global setting of other
    packages, so the import runs inside :func:`warnings.catch_warnings`, which restores the filters afterwards.

    Returns
    -------
    A namespace with ``DDPMScheduler`` and ``get_timestep_embedding``.
    """
    import warnings
    from types import SimpleNamespace

    with warnings.catch_warnings():
        from diffusers import DDPMScheduler
        from diffusers.models.embeddings import get_timestep_embedding

    return SimpleNamespace(DDPMScheduler=DDPMScheduler, get_timestep_embedding=get_timestep_embedding)
