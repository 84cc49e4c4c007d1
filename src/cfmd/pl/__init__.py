"""Plotting: latent UMAPs, leave-one-chromosome-out bars, reconstruction-utility scatters, per-slice R^2, semantics.

Every function follows one convention (:mod:`cfmd.pl._base`): keyword-only ``ax``, ``figsize``, ``dpi``,
``return_fig`` and ``save``; colour-blind-safe Okabe-Ito colours; inputs are the tidy tables :mod:`cfmd.tl`
writes, given as a DataFrame or read from ``mdata.uns``.
"""

from ._acquisition_curve import acquisition_curve
from ._base import OKABE_ITO
from ._downstream_rescue import downstream_rescue
from ._latent_umap import latent_umap
from ._loco import loco
from ._reconstruction_utility import reconstruction_utility
from ._slice_r2 import slice_r2
from ._slice_semantics import slice_semantics
from ._unconditional_check import unconditional_check

__all__ = [
    "OKABE_ITO",
    "acquisition_curve",
    "downstream_rescue",
    "latent_umap",
    "loco",
    "reconstruction_utility",
    "slice_r2",
    "slice_semantics",
    "unconditional_check",
]
