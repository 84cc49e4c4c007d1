"""Latent layouts: named, non-overlapping slices of a structured latent space.

A :class:`LatentLayout` says which dimensions of a latent vector carry which biological meaning
(e.g. ``pathway = [1, 201)``) and how each slice is filled for a patient who only has RNA
(its *imputation strategy*). Layouts are data, not code: users with their own VAE declare their
own slices, and every ``cfmd`` function that reads or writes a latent takes its layout from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._constants import DEFAULT_RNA_KEY
from ._validation import InvalidInputError, describe_examples

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["STRATEGIES", "LatentLayout", "Slice", "layout_uns_key"]

#: Imputation strategies understood by :class:`cfmd.models.CFMD`. Any other non-empty identifier
#: is accepted as a user-defined strategy (for users who fill those slices themselves).
STRATEGIES: dict[str, str] = {
    "rna": "predicted directly from RNA expression (e.g. the proliferation signature)",
    "geneformer": "distilled from the Geneformer embedding by projector P_G",
    "esm": "distilled from the ESM-2 expression-weighted structural fingerprint by projector P_E",
    "regional_methylation": "predicted by the Regional Methylation Decoder",
    "zero": "zero-masked: not recoverable from RNA alone",
}

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def layout_uns_key(latent_key: str) -> str:
    """The ``.uns`` key under which the layout of ``.obsm[latent_key]`` is stored."""
    return f"{latent_key}_layout"


@dataclass(frozen=True)
class Slice:
    """A named half-open range ``[start, stop)`` of latent dimensions.

    Parameters
    ----------
    name
        Identifier of the slice (``"pathway"``, ``"meth"``, ...).
    start
        First dimension (inclusive).
    stop
        Last dimension (exclusive).
    strategy
        How the slice is filled from RNA alone; one of :data:`STRATEGIES` or a user-defined name.
    groups
        Optional labels of equal-width blocks inside the slice, e.g. the 50 Hallmark pathways of the
        200-d pathway slice (4 dimensions each). ``dim`` must be a multiple of ``len(groups)``.
    """

    name: str
    start: int
    stop: int
    strategy: str = "zero"
    groups: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise InvalidInputError(
                f"Slice name must be a non-empty identifier (letters, digits, '_', '.', '-'); got {self.name!r}."
            )
        for attr in ("start", "stop"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidInputError(f"Slice {self.name!r}: `{attr}` must be an integer; got {value!r}.")
            object.__setattr__(self, attr, int(value))
        if self.start < 0:
            raise InvalidInputError(f"Slice {self.name!r}: `start` must be >= 0; got {self.start}.")
        if self.stop <= self.start:
            raise InvalidInputError(
                f"Slice {self.name!r}: `stop` must be greater than `start` (half-open range [start, stop)); "
                f"got [{self.start}, {self.stop})."
            )
        if not isinstance(self.strategy, str) or not _NAME_RE.match(self.strategy):
            raise InvalidInputError(
                f"Slice {self.name!r}: `strategy` must be one of {list(STRATEGIES)} or a user-defined identifier; "
                f"got {self.strategy!r}."
            )
        groups = tuple(str(g) for g in self.groups)
        object.__setattr__(self, "groups", groups)
        if groups:
            if len(set(groups)) != len(groups):
                raise InvalidInputError(f"Slice {self.name!r}: `groups` must be unique.")
            if self.dim % len(groups):
                raise InvalidInputError(
                    f"Slice {self.name!r}: its {self.dim} dimensions cannot be split into {len(groups)} equal groups."
                )

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return self.stop - self.start

    @property
    def indices(self) -> np.ndarray:
        """The latent dimensions of the slice as an integer array."""
        return np.arange(self.start, self.stop)

    @property
    def as_slice(self) -> slice:
        """The range as a Python :class:`slice`, for indexing the last axis."""
        return slice(self.start, self.stop)

    @property
    def group_size(self) -> int:
        """Dimensions per group (the whole slice when it has no groups)."""
        return self.dim // len(self.groups) if self.groups else self.dim

    def group_slice(self, group: str | int) -> slice:
        """Latent dimensions of one group (by label or position), as a Python :class:`slice`."""
        if isinstance(group, str):
            if group not in self.groups:
                raise InvalidInputError(f"Slice {self.name!r} has no group {group!r}.")
            group = self.groups.index(group)
        if not 0 <= group < max(len(self.groups), 1):
            raise InvalidInputError(f"Slice {self.name!r}: group index {group} out of range.")
        start = self.start + group * self.group_size
        return slice(start, start + self.group_size)


class LatentLayout:
    """Named, contiguous, non-overlapping slices covering a latent space ``[0, n_dims)``.

    Parameters
    ----------
    slices
        The slices, as :class:`Slice` objects or mappings with keys ``name``, ``start``, ``stop``,
        ``strategy`` (and optionally ``groups``). Order does not matter; they are sorted by ``start``.
    n_dims
        Width of the latent the layout describes. When given, the slices must cover exactly
        ``[0, n_dims)``.

    Examples
    --------
    >>> import cfmd
    >>> layout = cfmd.LatentLayout.cfmd328()
    >>> layout["meth"].as_slice
    slice(248, 296, None)
    >>> own = cfmd.LatentLayout.from_sizes({"state": (8, "geneformer"), "batch": (2, "zero")})
    >>> own.n_dims
    10
    """

    def __init__(self, slices: Iterable[Slice | Mapping[str, Any]], *, n_dims: int | None = None) -> None:
        parsed = [s if isinstance(s, Slice) else _slice_from_mapping(s) for s in slices]
        if not parsed:
            raise InvalidInputError("A LatentLayout needs at least one slice.")
        names = [s.name for s in parsed]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"LatentLayout slice names must be unique; duplicated: {describe_examples(dups)}.")
        parsed.sort(key=lambda s: (s.start, s.stop))
        expected_start, previous = 0, None
        for s in parsed:
            if previous is not None and s.start < previous.stop:
                raise InvalidInputError(
                    f"LatentLayout slices overlap: {previous.name!r} [{previous.start}, {previous.stop}) and "
                    f"{s.name!r} [{s.start}, {s.stop})."
                )
            if s.start > expected_start:
                raise InvalidInputError(
                    f"LatentLayout has a gap: dimensions [{expected_start}, {s.start}) belong to no slice "
                    f"(before {s.name!r}). Declare them as a slice (strategy 'zero' if RNA cannot fill them)."
                )
            expected_start, previous = s.stop, s
        if n_dims is not None and expected_start != n_dims:
            raise InvalidInputError(
                f"LatentLayout covers [0, {expected_start}) but `n_dims` is {n_dims}: the slices must cover the "
                "whole latent exactly."
            )
        self._slices: tuple[Slice, ...] = tuple(parsed)
        self._by_name = {s.name: s for s in parsed}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_sizes(cls, sizes: Mapping[str, tuple[int, str]] | Sequence[tuple[str, int, str]]) -> LatentLayout:
        """Build a contiguous layout from slice widths, in order.

        Parameters
        ----------
        sizes
            ``{name: (dim, strategy)}`` or a sequence of ``(name, dim, strategy)`` tuples.
        """
        items = [(k, *v) for k, v in sizes.items()] if isinstance(sizes, Mapping) else list(sizes)
        slices, start = [], 0
        for name, dim, strategy in items:
            if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim <= 0:
                raise InvalidInputError(
                    f"`sizes`: the width of slice {name!r} must be a positive integer; got {dim!r}."
                )
            slices.append(Slice(name, start, start + int(dim), strategy))
            start += int(dim)
        return cls(slices)

    @classmethod
    def cfmd328(cls, pathway_names: Sequence[str] | None = None) -> LatentLayout:
        """The paper's 328-d layout.

        ======== =========== ==== =========================
        slice    range       dims strategy
        ======== =========== ==== =========================
        prolif   [0, 1)      1    ``rna``
        pathway  [1, 201)    200  ``geneformer`` (50 Hallmark pathways x 4)
        ctx      [201, 232)  31   ``zero``
        residual [232, 248)  16   ``esm``
        meth     [248, 296)  48   ``regional_methylation``
        cnv      [296, 328)  32   ``zero``
        ======== =========== ==== =========================

        Parameters
        ----------
        pathway_names
            Labels of the 50 pathway blocks; defaults to the shipped MSigDB Hallmark sets, in file order.
        """
        if pathway_names is None:
            from .datasets import hallmark_gene_sets

            pathway_names = list(hallmark_gene_sets())
        if len(pathway_names) != 50:
            raise InvalidInputError(f"`pathway_names` must list 50 pathways; got {len(pathway_names)}.")
        return cls(
            [
                Slice("prolif", 0, 1, "rna"),
                Slice("pathway", 1, 201, "geneformer", groups=tuple(pathway_names)),
                Slice("ctx", 201, 232, "zero"),
                Slice("residual", 232, 248, "esm"),
                Slice("meth", 248, 296, "regional_methylation"),
                Slice("cnv", 296, 328, "zero"),
            ]
        )

    @classmethod
    def adapted_to(
        cls,
        mdata: MuData,
        *,
        modalities: Mapping[str, str],
        base: LatentLayout | None = None,
        rna_key: str = DEFAULT_RNA_KEY,
        gene_sets: Mapping[str, Sequence[str]] | None = None,
        pathway_slice: str | None = "pathway",
        prolif_slice: str | None = "prolif",
        rna_slices: Sequence[str] = ("residual",),
        drop_unowned: bool = False,
    ) -> LatentLayout:
        """``base`` (default :meth:`cfmd328`) with the slices the data cannot define taken out.

        - Pathway blocks whose gene set has no gene in ``mdata[rna_key]`` (matched on ``var['gene_symbol']``,
          else ``var_names``) are dropped, with a warning naming them; the pathway slice keeps the same width per
          block. With no block left, the pathway slice is dropped.
        - The proliferation slice is dropped (warning) when no gene of the shipped proliferation signature is
          present.
        - Every other slice must be owned by a modality present in ``mdata``: a key of ``modalities`` (``{slice:
          modality}``) whose modality is in ``mdata.mod``, or one of ``rna_slices`` (slices RNA defines alone).
          A slice owned by no present modality is an error naming it, or, with ``drop_unowned=True``, dropped
          with a warning.

        The remaining slices are packed contiguously in their original order (strategies and groups kept). When
        nothing is dropped the result equals ``base``.

        Parameters
        ----------
        mdata
            MuData with RNA under ``rna_key`` and the modalities named in ``modalities``.
        modalities
            ``{latent slice: modality}``, as given to :meth:`cfmd.models.StructuredVAE.setup_mudata`.
        base
            Layout to adapt (default :meth:`cfmd328`).
        rna_key
            Modality with RNA.
        gene_sets
            Gene sets of the pathway blocks (default: the shipped Hallmark sets).
        pathway_slice, prolif_slice
            Names of the pathway and proliferation slices in ``base`` (``None``: no such role).
        rna_slices
            Further slices defined by RNA alone (need no owner).
        drop_unowned
            Drop slices owned by no present modality instead of raising.

        Returns
        -------
        The adapted layout.

        Examples
        --------
        >>> import cfmd
        >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=30, n_genes=250)
        >>> layout = cfmd.LatentLayout.adapted_to(mdata, modalities={"meth": "meth", "cnv": "cnv"}, drop_unowned=True)
        >>> "ctx" in layout, layout.n_dims
        (False, 297)
        """
        import warnings

        from .datasets import hallmark_gene_sets, proliferation_signature

        base = cls.cfmd328() if base is None else base
        if not isinstance(base, LatentLayout):
            raise InvalidInputError(f"`base` must be a cfmd.LatentLayout or None; got {type(base).__name__}.")
        if not isinstance(modalities, Mapping):
            raise InvalidInputError("`modalities` must map latent slice names to modality names.")
        mods = getattr(mdata, "mod", None)
        if not isinstance(mods, Mapping) or rna_key not in mods:
            raise InvalidInputError(
                f"`mdata` must be a MuData with an RNA modality {rna_key!r}"
                + (f"; it has {describe_examples(list(mods))}." if isinstance(mods, Mapping) else ".")
            )
        rna = mods[rna_key]
        symbols = set(
            (rna.var["gene_symbol"] if "gene_symbol" in rna.var else rna.var_names).dropna().astype(str).tolist()
        )
        unknown = [name for name in modalities if name not in base]
        if unknown:
            raise InvalidInputError(
                f"`modalities` names slice(s) {describe_examples(unknown)} absent from the layout (slices: {base.names})."
            )
        ownerless = [
            s.name
            for s in base
            if s.name not in (pathway_slice, prolif_slice, *rna_slices)
            and (s.name not in modalities or modalities[s.name] not in mods)
        ]
        if ownerless and not drop_unowned:
            details = ", ".join(
                f"{n!r} ({base[n].dim} dims" + (f", modality {modalities[n]!r} absent)" if n in modalities else ")")
                for n in ownerless
            )
            raise InvalidInputError(
                f"Latent slice(s) {details} are owned by no modality present in mdata (modalities: "
                f"{describe_examples(list(mods))}; `modalities` = {dict(modalities)}). Map each to a modality, or pass "
                "`drop_unowned=True` to drop them."
            )
        kept: list[tuple[str, int, str, tuple[str, ...]]] = []
        dropped: list[str] = []
        for s in base:
            if s.name in ownerless:
                dropped.append(s.name)
                continue
            if s.name == prolif_slice and not symbols & set(proliferation_signature()):
                warnings.warn(
                    f"LatentLayout.adapted_to: slice {s.name!r} dropped: no proliferation-signature gene in "
                    f"mdata[{rna_key!r}].",
                    UserWarning,
                    stacklevel=2,
                )
                dropped.append(s.name)
                continue
            if s.name == pathway_slice:
                sets = dict(gene_sets) if gene_sets is not None else hallmark_gene_sets()
                groups = list(s.groups) or list(sets)
                if s.dim % len(groups):
                    raise InvalidInputError(f"The pathway slice's {s.dim} dims do not split into {len(groups)} blocks.")
                width = s.dim // len(groups)
                empty = [g for g in groups if not symbols & set(sets.get(g, ()))]
                if empty:
                    warnings.warn(
                        f"LatentLayout.adapted_to: {len(empty)} of {len(groups)} pathway block(s) dropped, no gene of "
                        f"their set in mdata[{rna_key!r}]: {', '.join(empty)}.",
                        UserWarning,
                        stacklevel=2,
                    )
                left = tuple(g for g in groups if g not in empty)
                if not left:
                    dropped.append(s.name)
                    continue
                kept.append((s.name, width * len(left), s.strategy, left))
                continue
            kept.append((s.name, s.dim, s.strategy, s.groups))
        if ownerless:
            warnings.warn(
                f"LatentLayout.adapted_to: slice(s) {', '.join(repr(n) for n in ownerless)} dropped: owned by no "
                "modality present in mdata.",
                UserWarning,
                stacklevel=2,
            )
        if not kept:
            raise InvalidInputError("LatentLayout.adapted_to: no slice of the layout can be defined by this data.")
        slices, start = [], 0
        for name, dim, strategy, groups in kept:
            slices.append(Slice(name, start, start + dim, strategy, groups))
            start += dim
        return cls(slices)

    # ------------------------------------------------------------------ container protocol
    def __iter__(self) -> Iterator[Slice]:
        return iter(self._slices)

    def __len__(self) -> int:
        return len(self._slices)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Slice:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidInputError(f"LatentLayout has no slice {name!r}; slices: {self.names}.") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LatentLayout) and self._slices == other._slices

    def __hash__(self) -> int:
        return hash(self._slices)

    def __repr__(self) -> str:
        rows = [f"  {s.name:<12} [{s.start}, {s.stop})  {s.dim:>4}d  {s.strategy}" for s in self._slices]
        return f"LatentLayout({self.n_dims} dims)\n" + "\n".join(rows)

    # ------------------------------------------------------------------ properties
    @property
    def slices(self) -> tuple[Slice, ...]:
        """The slices, ordered by ``start``."""
        return self._slices

    @property
    def names(self) -> list[str]:
        """Slice names, in latent order."""
        return [s.name for s in self._slices]

    @property
    def n_dims(self) -> int:
        """Width of the latent."""
        return self._slices[-1].stop

    @property
    def strategies(self) -> dict[str, str]:
        """``{slice name: strategy}``."""
        return {s.name: s.strategy for s in self._slices}

    def with_strategy(self, *strategies: str) -> list[Slice]:
        """Slices whose strategy is one of ``strategies``."""
        return [s for s in self._slices if s.strategy in strategies]

    def replace_strategies(self, **strategies: str) -> LatentLayout:
        """A copy with the strategies of some slices changed, e.g. ``replace_strategies(residual="zero")``."""
        for name in strategies:
            self[name]  # raises on unknown names
        return LatentLayout(replace(s, strategy=strategies.get(s.name, s.strategy)) for s in self._slices)

    # ------------------------------------------------------------------ array helpers
    def check_width(self, n_dims: int, *, field: str = "latent") -> None:
        """Raise if a latent of width ``n_dims`` does not match the layout."""
        if int(n_dims) != self.n_dims:
            raise InvalidInputError(
                f"{field} has {n_dims} dimensions but its LatentLayout describes {self.n_dims} "
                f"(slices {', '.join(f'{s.name}[{s.start},{s.stop})' for s in self._slices)})."
            )

    def mask(self, names: str | Iterable[str]) -> np.ndarray:
        """Boolean mask over the latent's dimensions selecting the named slice(s)."""
        names = [names] if isinstance(names, str) else list(names)
        mask = np.zeros(self.n_dims, dtype=bool)
        for name in names:
            mask[self[name].as_slice] = True
        return mask

    def take(self, array, name: str):
        """The named slice of ``array`` along its last axis (a view for NumPy arrays and tensors)."""
        self.check_width(array.shape[-1], field="array")
        return array[..., self[name].as_slice]

    def put(self, array, name: str, values):
        """Write ``values`` into the named slice of ``array`` (last axis), in place; returns ``array``."""
        self.check_width(array.shape[-1], field="array")
        s = self[name]
        if values.shape[-1] != s.dim:
            raise InvalidInputError(f"values for slice {name!r} must have {s.dim} columns; got {values.shape[-1]}.")
        array[..., s.as_slice] = values
        return array

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """A dictionary of plain arrays, safe to store in ``.uns`` and to write to ``.h5ad``/``.h5mu``."""
        return {
            "names": np.array(self.names, dtype=object),
            "starts": np.array([s.start for s in self._slices], dtype=np.int64),
            "stops": np.array([s.stop for s in self._slices], dtype=np.int64),
            "strategies": np.array([s.strategy for s in self._slices], dtype=object),
            "groups": {s.name: np.array(s.groups, dtype=object) for s in self._slices if s.groups},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatentLayout:
        """Inverse of :meth:`to_dict` (also accepts what ``.h5mu`` round trips give back)."""
        try:
            names = [_to_str(x) for x in np.asarray(data["names"]).ravel()]
            starts = np.asarray(data["starts"]).ravel()
            stops = np.asarray(data["stops"]).ravel()
            strategies = [_to_str(x) for x in np.asarray(data["strategies"]).ravel()]
        except KeyError as err:
            raise InvalidInputError(f"Stored layout lacks the field {err.args[0]!r}.") from None
        groups = data.get("groups", {}) or {}
        if not len(names) == len(starts) == len(stops) == len(strategies):
            raise InvalidInputError("Stored layout fields `names`, `starts`, `stops`, `strategies` differ in length.")
        return cls(
            Slice(
                n,
                _stored_int(a, f"stored layout: `starts` of slice {n!r}"),
                _stored_int(b, f"stored layout: `stops` of slice {n!r}"),
                st,
                tuple(_to_str(g) for g in np.asarray(groups[n]).ravel()) if n in groups else (),
            )
            for n, a, b, st in zip(names, starts, stops, strategies)
        )

    @classmethod
    def from_mudata(cls, data: MuData, latent_key: str) -> LatentLayout:
        """Read the layout stored next to ``data.obsm[latent_key]`` (in ``data.uns[f"{latent_key}_layout"]``)."""
        key = layout_uns_key(latent_key)
        if key not in data.uns:
            raise InvalidInputError(
                f"No layout stored for .obsm[{latent_key!r}]: .uns[{key!r}] is missing. Store one with "
                f"`mdata.uns[{key!r}] = layout.to_dict()` or pass `layout=` explicitly."
            )
        return cls.from_dict(data.uns[key])

    def write(self, data, latent_key: str) -> None:
        """Store the layout in ``data.uns[f"{latent_key}_layout"]`` (checking the latent's width if present)."""
        if latent_key in data.obsm:
            self.check_width(np.shape(data.obsm[latent_key])[1], field=f".obsm[{latent_key!r}]")
        data.uns[layout_uns_key(latent_key)] = self.to_dict()


def _stored_int(value, field: str) -> int:
    """An index read back from storage: integers, or integer-valued floats (as some round trips give)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidInputError(f"{field} must be an integer; got {value!r}.")
    if not float(value).is_integer():
        raise InvalidInputError(f"{field} must be an integer; got {value!r}.")
    return int(value)


def _to_str(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _slice_from_mapping(m: Mapping[str, Any]) -> Slice:
    missing = [k for k in ("name", "start", "stop") if k not in m]
    if missing:
        raise InvalidInputError(f"Slice definition {dict(m)!r} lacks {describe_examples(missing)}.")
    return Slice(m["name"], m["start"], m["stop"], m.get("strategy", "zero"), tuple(m.get("groups", ())))
