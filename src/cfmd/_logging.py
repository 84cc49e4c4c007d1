"""The package logger (``logging.getLogger("cfmd")``): progress and reports go here, not to ``print``."""

import logging

logger = logging.getLogger("cfmd")
