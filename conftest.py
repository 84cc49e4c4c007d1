"""Doctest set-up: ``cfmd`` and ``np`` in the namespace, a fresh temporary working directory per example.

Files that docstring examples write (tiny checkpoints, ``.h5mu``) so never land in the repository.
"""

import numpy as np
import pytest
from _pytest.doctest import DoctestItem


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace, request, tmp_path, monkeypatch):
    import cfmd

    doctest_namespace.update({"cfmd": cfmd, "np": np})
    if isinstance(request.node, DoctestItem):
        monkeypatch.chdir(tmp_path)
