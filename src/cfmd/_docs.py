"""Shared docstring fragments: one description per parameter that several functions take.

A function's docstring names a fragment with a placeholder on a line of its own (``{copy}``); :func:`doc_params`
substitutes it, indented like the placeholder (the pattern of decoupler's ``_docs.py`` and scvi-tools'
``setup_anndata_dsp``). Only named placeholders are touched, so other braces (LaTeX, dictionaries) are safe.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DOC_COPY", "DOC_RNA_DATA", "DOC_RNA_KEY", "DOC_SPLIT_KEY", "DOC_UNS_KEY_ADDED", "doc_params"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: ``copy`` of every in-place ``pp``/``tl`` function (scanpy's contract).
DOC_COPY = """\
copy
    Return a modified copy instead of writing into the object passed in."""

#: ``rna_key`` alone.
DOC_RNA_KEY = """\
rna_key
    The RNA modality, ``mdata[rna_key]`` (every patient)."""

#: ``rna_key``, ``rna_layer``, ``rna_scale``: where the RNA is and what scale its values are on.
DOC_RNA_DATA = (
    DOC_RNA_KEY
    + """
rna_layer
    Layer of ``mdata[rna_key]`` holding the expression; ``None``: ``.X``.
rna_scale
    Scale of the expression: ``"counts"`` (raw read counts), ``"log2"`` (log2(x + 1) of normalised expression,
    e.g. UCSC Xena) or ``"zscore"`` (standardised)."""
)

#: ``split_key`` of the functions that read the patient split.
DOC_SPLIT_KEY = """\
split_key
    ``mdata.obs`` column with the patient split (:func:`~cfmd.tl.split_patients`)."""

#: ``key_added`` of the functions that write a result table into ``.uns``.
DOC_UNS_KEY_ADDED = """\
key_added
    ``.uns`` key of the results."""


def doc_params(**fragments: str) -> Callable[[_F], _F]:
    """Substitute shared docstring fragments (``{name}`` placeholders on a line of their own).

    The docstring is cleaned with :func:`inspect.cleandoc` and each placeholder is replaced by its fragment,
    indented like the placeholder. Only the named placeholders are touched, so other braces in the docstring
    (LaTeX, dictionaries) are safe.

    Parameters
    ----------
    **fragments
        ``{placeholder name: fragment text}``.

    Returns
    -------
    A decorator that rewrites the decorated object's ``__doc__`` and returns the object.
    """

    def decorate(obj: _F) -> _F:
        doc = inspect.cleandoc(obj.__doc__ or "")
        lines = []
        for line in doc.splitlines():
            stripped = line.strip()
            if stripped.startswith("{") and stripped.endswith("}") and stripped[1:-1] in fragments:
                indent = line[: len(line) - len(line.lstrip())]
                lines.extend(indent + fl if fl else fl for fl in fragments[stripped[1:-1]].splitlines())
            else:
                lines.append(line)
        obj.__doc__ = "\n".join(lines)
        return obj

    return decorate
