"""The expression-weighted patient structural fingerprint (paper, Section 3.2).

The function lives in :mod:`cfmd._fingerprint` (shared with :func:`cfmd.pp.structural_fingerprint`, so that ``pp``
does not import ``models``); it is re-exported here for the model building blocks.
"""

from ..._fingerprint import expression_weighted_fingerprint

__all__ = ["expression_weighted_fingerprint"]
