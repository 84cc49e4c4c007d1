"""Doctest set-up: docstring examples can use ``cfmd``, ``np`` and ``torch`` without importing them."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import cfmd

    doctest_namespace.update({"cfmd": cfmd, "np": np})
