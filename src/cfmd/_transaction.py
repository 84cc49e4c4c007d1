"""All-or-nothing calls: the caller's AnnData/MuData is left exactly as it was when a public function fails.

cfmd validates inputs before doing any work, but some steps write as a side effect before every check can run
(scvi-tools' ``setup_mudata`` stores ``_scvi_uuid`` / ``_scvi_manager_uuid`` in ``.uns``). Public ``pp``/``tl``
functions therefore run their body inside :func:`unchanged_on_error`, which records every container of the
object (``obs``, ``var``, ``obsm``, ``varm``, ``obsp``, ``layers``, ``uns`` of the MuData and of each modality)
and puts it back when an exception escapes. Arrays are held by reference: cfmd writes results by assigning new
arrays, never by mutating the caller's arrays in place.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mudata as md

_MAPPINGS = ("obsm", "varm", "obsp", "varp", "layers")


def _objects(data) -> list:
    """The AnnData-like objects whose containers are recorded: the MuData and each modality, or the AnnData."""
    if isinstance(data, md.MuData):
        return [data, *data.mod.values()]
    return [data]


def _snapshot(obj) -> dict[str, Any]:
    state: dict[str, Any] = {
        "obs": obj.obs.copy(deep=True),
        "var": obj.var.copy(deep=True),
        "uns": copy.deepcopy(dict(obj.uns)),
    }
    for name in _MAPPINGS:
        container = getattr(obj, name, None)
        if container is not None:
            state[name] = dict(container.items())
    return state


def _restore(obj, state: dict[str, Any]) -> None:
    obj.uns.clear()
    obj.uns.update(state["uns"])
    for name in _MAPPINGS:
        if name not in state:
            continue
        container = getattr(obj, name)
        for key in [k for k in container.keys() if k not in state[name]]:
            del container[key]
        for key, value in state[name].items():
            if key not in container or container[key] is not value:
                container[key] = value
    if not obj.obs.equals(state["obs"]) or list(obj.obs.columns) != list(state["obs"].columns):
        obj.obs = state["obs"]
    if not obj.var.equals(state["var"]) or list(obj.var.columns) != list(state["var"].columns):
        obj.var = state["var"]


@contextmanager
def unchanged_on_error(*data) -> Iterator[None]:
    """Restore ``data`` (AnnData or MuData objects; ``None`` is skipped) if the block raises.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=40, n_genes=250)
    >>> try:
    ...     with cfmd._transaction.unchanged_on_error(mdata):
    ...         mdata.uns["half_written"] = 1
    ...         raise ValueError("a check failed")
    ... except ValueError:
    ...     pass
    >>> "half_written" in mdata.uns
    False
    """
    objects = [obj for item in data if item is not None for obj in _objects(item)]
    states = [_snapshot(obj) for obj in objects]
    try:
        yield
    except BaseException:
        for obj, state in zip(objects, states):
            _restore(obj, state)
        raise
