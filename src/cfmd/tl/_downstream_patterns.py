"""Missing-modality patterns of :func:`cfmd.tl.downstream_rescue`.

Which modality owns which latent slices, the patterns checked and named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .._layout import LatentLayout
from .._validation import (
    InvalidInputError,
    describe_examples,
)


def _slice_owners(mdata, latent_key: str, layout: LatentLayout, slice_modalities) -> dict[str, str]:
    if slice_modalities is None:
        record = mdata.uns.get(latent_key, {})
        slices = record.get("modality_slices") if isinstance(record, Mapping) else None
        names = record.get("modality_names") if isinstance(record, Mapping) else None
        if slices is None or names is None:
            raise InvalidInputError(
                f"mdata.uns[{latent_key!r}] does not record which modality owns which latent slice "
                "('modality_slices' / 'modality_names', written by cfmd.tl.fit_latent); pass "
                "`slice_modalities={slice: modality}`."
            )
        slice_modalities = {str(s): str(m) for s, m in zip(np.asarray(slices).ravel(), np.asarray(names).ravel())}
    if not isinstance(slice_modalities, Mapping) or not slice_modalities:
        raise InvalidInputError(
            f"`slice_modalities` must map latent slices to the modalities owning them; got {slice_modalities!r}."
        )
    owners = {str(s): str(m) for s, m in slice_modalities.items()}
    unknown = [s for s in owners if s not in layout]
    if unknown:
        raise InvalidInputError(
            f"`slice_modalities` names slice(s) {describe_examples(unknown)} absent from the layout of "
            f".obsm[{latent_key!r}] (slices: {layout.names})."
        )
    return owners


def _patterns(patterns, owners: Mapping[str, str]) -> list[tuple[str, ...]]:
    modalities = list(dict.fromkeys(owners.values()))
    if patterns is None:
        out = [(m,) for m in modalities]
        if len(modalities) > 1:
            out.append(tuple(modalities))
        return out
    if isinstance(patterns, str) or not isinstance(patterns, Sequence) or not patterns:
        raise InvalidInputError(
            "`patterns` must be a non-empty list of missing-modality patterns, each a modality or a list of "
            f"modalities (e.g. ['meth', 'cnv', ['meth', 'cnv']]); got {patterns!r}."
        )
    out = []
    for pattern in patterns:
        mods = (pattern,) if isinstance(pattern, str) else tuple(pattern)
        unknown = [m for m in mods if m not in modalities]
        if not mods or unknown:
            raise InvalidInputError(
                f"`patterns` entry {pattern!r} must name modalities that own latent slices: "
                f"{describe_examples(modalities)}."
            )
        if len(set(mods)) != len(mods) or tuple(mods) in out:
            raise InvalidInputError(f"`patterns` repeats a modality or a pattern: {pattern!r}.")
        out.append(tuple(mods))
    return out


def pattern_label(pattern: Sequence[str]) -> str:
    """The name of a missing-modality pattern in the tables, e.g. ``"meth+cnv"``."""
    return "+".join(pattern)
