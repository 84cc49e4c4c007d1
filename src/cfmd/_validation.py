"""Input validation shared by every public function.

Every public ``pp``/``tl``/``models`` entry point checks its inputs with these helpers *before*
doing any work, so that a bad input fails fast with an :class:`InvalidInputError` that names the
offending field and says what was expected, and the caller's object is never left half-modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData

__all__ = [
    "InvalidInputError",
    "check_choice",
    "check_counts",
    "check_finite",
    "check_latent_matrix",
    "check_modality",
    "check_names",
    "check_nonempty",
    "check_not_view",
    "check_numeric",
    "check_obs_columns",
    "check_obsm",
    "check_positive_int",
    "check_positive_number",
    "check_probability",
    "check_survival",
    "check_unique",
    "describe_examples",
    "get_matrix",
]


class InvalidInputError(ValueError):
    """Raised when an input does not meet cfmd's data contract.

    The message always names the offending field (e.g. ``mdata['rna'].X`` or
    ``mdata.obs['os_time']``) and states what was expected.
    """


def describe_examples(values: Iterable[Any], *, limit: int = 5) -> str:
    """Format up to ``limit`` example values for an error message."""
    values = list(values)
    # numpy scalars as Python values: 'TP53', not np.str_('TP53') (numpy >= 2 reprs)
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:limit])
    if len(values) > limit:
        shown += f", ... ({len(values)} in total)"
    return shown


def _data_values(X) -> np.ndarray:
    """The stored values of a dense or sparse matrix (no densification)."""
    if sparse.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X)


def check_numeric(X, field: str) -> None:
    """Require a numeric (integer, unsigned or floating point) matrix.

    Parameters
    ----------
    X
        Dense array, sparse matrix or :class:`~pandas.DataFrame`.
    field
        Name of the field for the error message, e.g. ``"mdata['meth'].X"``.
    """
    if isinstance(X, pd.DataFrame):
        bad = [c for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
        if bad:
            raise InvalidInputError(f"{field} must be numeric; columns {describe_examples(bad)} are not.")
        return
    dtype = X.dtype
    if dtype.kind not in "biuf":
        raise InvalidInputError(f"{field} must hold numbers (int or float); found dtype {dtype!s}.")


def check_finite(X, field: str) -> None:
    """Require all stored values to be finite (no NaN or infinity)."""
    check_numeric(X, field)
    values = _data_values(X)
    if values.dtype.kind == "f":
        n_bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if n_bad:
            raise InvalidInputError(f"{field} must be finite; found {n_bad} NaN or infinite value(s).")


def check_latent_matrix(x, field: str, *, missing_hint: str, check_width=None) -> np.ndarray:
    """A ``(patients, latent dimensions)`` float matrix: numeric, 2-dimensional, every row finite.

    Parameters
    ----------
    x
        Array-like or DataFrame.
    field
        Name used in error messages.
    missing_hint
        What to do about rows with NaN or infinite values (appended to that error).
    check_width
        Called with the number of columns before the rows are checked (raises on a wrong width), or ``None``.
    """
    arr = x.to_numpy() if isinstance(x, pd.DataFrame) else np.asarray(x)
    check_numeric(arr, field)
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{field} must be a 2-dimensional (patients x latent dimensions) array; got shape {arr.shape}."
        )
    if check_width is not None:
        check_width(arr.shape[1])
    arr = arr.astype(float, copy=False)
    bad_rows = ~np.isfinite(arr).all(axis=1)
    if bad_rows.any():
        raise InvalidInputError(
            f"{field} has {int(bad_rows.sum())} of {arr.shape[0]} row(s) with NaN or infinite values "
            f"(rows {describe_examples(np.flatnonzero(bad_rows).tolist())}); {missing_hint}"
        )
    return arr


def check_counts(X, field: str, *, require_integer: bool = True) -> None:
    """Require a matrix of non-negative, finite (integer) counts.

    Parameters
    ----------
    X
        Dense array or sparse matrix.
    field
        Name of the field for the error message.
    require_integer
        Also require integral values (raw read counts).
    """
    check_finite(X, field)
    values = _data_values(X)
    if values.size == 0:
        return
    vmin = values.min()
    if vmin < 0:
        n_neg = int(np.count_nonzero(values < 0))
        raise InvalidInputError(
            f"{field} must hold non-negative counts; found {n_neg} negative value(s) (minimum {vmin:g})."
        )
    if require_integer and values.dtype.kind == "f":
        frac = np.abs(values - np.round(values))
        n_frac = int(np.count_nonzero(frac > 1e-6))
        if n_frac:
            raise InvalidInputError(
                f"{field} must hold integer raw counts; found {n_frac} non-integer value(s) "
                f"(e.g. {values[frac > 1e-6][0]:g}). If the matrix is already normalised, declare its scale "
                "(for example `scale='log2'`) instead of treating it as counts."
            )


def check_unique(index: Sequence | pd.Index, field: str) -> None:
    """Require unique identifiers (patients, genes, features)."""
    index = pd.Index(index)
    if not index.is_unique:
        dups = index[index.duplicated()].unique()
        raise InvalidInputError(f"{field} must be unique; duplicated: {describe_examples(dups)}.")


def check_nonempty(n: int, field: str, what: str = "rows") -> None:
    """Require at least one element."""
    if n == 0:
        raise InvalidInputError(f"{field} is empty: expected at least one of its {what}.")


def check_positive_int(value, field: str, *, minimum: int = 1) -> int:
    """Require an integer ``>= minimum`` and return it as :class:`int`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"`{field}` must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise InvalidInputError(f"`{field}` must be an integer >= {minimum}; got {value}.")
    return int(value)


def check_positive_number(value, field: str, *, allow_none: bool = False) -> float | None:
    """A positive, finite real number (not a bool or a string) as a float; ``None`` passes when ``allow_none``."""
    from numbers import Real

    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not (np.isfinite(value) and value > 0):
        expected = "a positive number" + (" or None" if allow_none else "")
        raise InvalidInputError(f"`{field}` must be {expected} (finite; not a bool or a string); got {value!r}.")
    return float(value)


def check_probability(value, field: str, *, closed_right: bool = True) -> float:
    """Require a number in ``[0, 1]`` (or ``[0, 1)``) and return it as :class:`float`."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"`{field}` must be a number in [0, 1]; got {value!r}.") from None
    upper_ok = value <= 1 if closed_right else value < 1
    if not (value >= 0 and upper_ok):
        bracket = "]" if closed_right else ")"
        raise InvalidInputError(f"`{field}` must be in [0, 1{bracket}; got {value}.")
    return value


def check_choice(value, field: str, choices: Iterable) -> None:
    """Require ``value`` to be one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise InvalidInputError(f"`{field}` must be one of {describe_examples(choices, limit=20)}; got {value!r}.")


def check_modality(mdata: MuData, name: str, *, field: str = "mdata") -> AnnData:
    """Return ``mdata[name]`` or raise naming the available modalities."""
    from mudata import MuData

    if not isinstance(mdata, MuData):
        raise InvalidInputError(f"`{field}` must be a MuData object; got {type(mdata).__name__}.")
    if name not in mdata.mod:
        raise InvalidInputError(
            f"{field} has no modality {name!r}; available modalities: {describe_examples(list(mdata.mod))}."
        )
    adata = mdata.mod[name]
    check_nonempty(adata.n_obs, f"{field}[{name!r}]", "patients (rows)")
    check_nonempty(adata.n_vars, f"{field}[{name!r}]", "features (columns)")
    return adata


def check_not_view(data, field: str = "mdata") -> None:
    """Require an actual AnnData/MuData (not a view such as ``mdata[:10]``), whose modalities are not views either.

    cfmd writes its results into the object; a view cannot hold them (anndata would silently copy it, scvi-tools
    refuses it), so a view is rejected up front with the fix: pass ``data.copy()``.
    """
    from mudata import MuData

    if getattr(data, "is_view", False):
        raise InvalidInputError(
            f"`{field}` is a view of another object (e.g. `mdata[patients]`); cfmd writes into it, so pass an actual "
            f"object: `{field}.copy()`."
        )
    if isinstance(data, MuData):
        views = [name for name, adata in data.mod.items() if adata.is_view]
        if views:
            raise InvalidInputError(
                f"`{field}` holds modality view(s) {describe_examples(views)}; cfmd writes into the data, so pass a "
                f"MuData of actual AnnData objects (`{field}.copy()`)."
            )


def check_obs_columns(obs: pd.DataFrame, columns: Iterable[str], *, field: str = "mdata.obs") -> None:
    """Require columns to exist in an ``obs`` table."""
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        raise InvalidInputError(
            f"{field} lacks column(s) {describe_examples(missing)}; available: {describe_examples(list(obs.columns), limit=12)}."
        )


def check_obsm(adata, key: str, *, field: str = "adata", n_cols: int | None = None) -> np.ndarray:
    """Return ``adata.obsm[key]`` as an array, requiring it to exist (and to have ``n_cols`` columns)."""
    if key not in adata.obsm:
        raise InvalidInputError(
            f"{field}.obsm has no key {key!r}; available keys: {describe_examples(list(adata.obsm.keys()))}."
        )
    arr = adata.obsm[key]
    if isinstance(arr, pd.DataFrame):
        arr = arr.to_numpy()
    arr = np.asarray(arr)
    check_numeric(arr, f"{field}.obsm[{key!r}]")
    if arr.ndim != 2:
        raise InvalidInputError(f"{field}.obsm[{key!r}] must be 2-dimensional; got shape {arr.shape}.")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise InvalidInputError(f"{field}.obsm[{key!r}] must have {n_cols} columns; got {arr.shape[1]}.")
    return arr


def get_matrix(adata: AnnData, layer: str | None, *, field: str = "adata"):
    """Return ``adata.X`` or ``adata.layers[layer]``, naming the available layers on error."""
    if layer is None:
        if adata.X is None:
            raise InvalidInputError(f"{field}.X is empty; pass `layer=` naming the layer that holds the data.")
        return adata.X
    if layer not in adata.layers:
        raise InvalidInputError(
            f"{field}.layers has no layer {layer!r}; available layers: {describe_examples(list(adata.layers.keys()))}."
        )
    return adata.layers[layer]


def check_survival(
    time: np.ndarray | pd.Series,
    event: np.ndarray | pd.Series,
    *,
    time_field: str = "os_time",
    event_field: str = "os_event",
    index: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate survival times and event indicators; return ``(time, event)`` as float / bool arrays.

    Times must be finite and non-negative; events must be 0/1 (or boolean).
    """
    time_arr = pd.to_numeric(pd.Series(np.asarray(time)), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(time_arr)
    if bad.any():
        where = f" (patients {describe_examples(np.asarray(index)[bad])})" if index is not None else ""
        raise InvalidInputError(
            f"`{time_field}` must be a finite, non-negative survival time for every patient; "
            f"{int(bad.sum())} missing or non-numeric{where}."
        )
    if (time_arr < 0).any():
        raise InvalidInputError(
            f"`{time_field}` must be non-negative; found {int((time_arr < 0).sum())} negative time(s)."
        )
    event_raw = pd.Series(np.asarray(event))
    if event_raw.dtype == bool:
        event_num = event_raw.to_numpy(dtype=float)
    else:
        event_num = pd.to_numeric(event_raw, errors="coerce").to_numpy(dtype=float)
    bad_event = ~np.isin(event_num, [0.0, 1.0])
    if bad_event.any():
        where = f" (patients {describe_examples(np.asarray(index)[bad_event])})" if index is not None else ""
        raise InvalidInputError(
            f"`{event_field}` must be 0/1 (or boolean) for every patient; "
            f"{int(bad_event.sum())} invalid value(s){where}, e.g. {event_raw[bad_event].iloc[0]!r}."
        )
    return time_arr, event_num.astype(bool)


def check_names(values, field: str, allowed: Sequence[str], *, what: str = "name") -> list[str]:
    """``values`` (one name or several) as a list: each in ``allowed``, none repeated.

    Raises
    ------
    InvalidInputError
        A name is not in ``allowed`` (named, with the allowed ones) or is repeated.
    """
    names = [values] if isinstance(values, str) else ([] if values is None else list(values))
    unknown = [v for v in names if v not in allowed]
    if unknown:
        raise InvalidInputError(
            f"`{field}` has unknown {what}(s) {describe_examples(unknown)}; available {what}s: {list(allowed)}."
        )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"`{field}` must not repeat a {what}; got {names}.")
    return names


def check_mapping_keys(mapping: Mapping, allowed: Iterable[str], field: str) -> None:
    """Require that every key of ``mapping`` is one of ``allowed``."""
    allowed = list(allowed)
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise InvalidInputError(
            f"`{field}` has unknown key(s) {describe_examples(unknown)}; expected some of {describe_examples(allowed, limit=20)}."
        )
