"""Small helpers shared across sub-packages."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad


def new_mudata(modalities: Mapping[str, ad.AnnData]):
    """Build a :class:`~mudata.MuData` without mudata's legacy column pulling (and its FutureWarning).

    Global ``obs``/``var`` keep only the index; columns are set explicitly by the caller.
    """
    import mudata as md

    with md.set_options(pull_on_update=False):
        return md.MuData(dict(modalities))
