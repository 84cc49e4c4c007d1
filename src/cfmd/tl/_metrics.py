"""Moved to :mod:`cfmd.metrics._r2`; kept so that ``from ._metrics import ...`` inside :mod:`cfmd.tl` still works."""

from ..metrics._r2 import *  # noqa: F403
from ..metrics._r2 import __all__  # noqa: F401
