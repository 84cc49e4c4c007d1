"""scvi-tools data registration for *unpaired* MuData (modalities covering different patients).

scvi-tools fetches a modality's matrix and indexes its rows with the *global* patient indices, which is
only correct when every modality lists every patient in the global order. :class:`UnpairedMuDataManager`
aligns each registered modality to ``mdata.obs_names`` when the data are fetched: a patient absent from a
modality gets a row of NaN (the module treats NaN as "not observed"). Nothing is written into the
user's object, and a modality that is already aligned (RNA, typically) is returned without copying.
"""

from __future__ import annotations

import numpy as np
from mudata import MuData
from scipy import sparse
from scvi.data import AnnDataManager, fields
from scvi.data._utils import get_anndata_attribute

from ._scvi_private import DR_ATTR_KEY, DR_ATTR_NAME, DR_MOD_KEY

__all__ = ["MuDataOptionalObsmField", "OptionalObsmField", "UnpairedMuDataManager", "align_to_global", "modality_rows"]


class OptionalObsmField(fields.ObsmField):
    """An ``.obsm`` field that may be absent from data the model is *applied* to (never from training data).

    scvi-tools' ``ObsmField`` has no ``required=False``. This one must exist when registered, but a target
    object (e.g. RNA-only patients to impute) may lack it: :class:`UnpairedMuDataManager` then serves an
    all-NaN placeholder of the registered width, which models read as "not observed".
    """

    def validate_field(self, adata) -> None:
        """Validate the field if present."""
        if self.attr_key in getattr(adata, self.attr_name):
            super().validate_field(adata)

    def transfer_field(self, state_registry: dict, adata_target, **kwargs) -> dict:
        """Transfer the field; an absent key keeps the source registry (placeholder at load time)."""
        if self.attr_key not in getattr(adata_target, self.attr_name):
            return {self.COLUMN_NAMES_KEY: state_registry[self.COLUMN_NAMES_KEY]}
        return super().transfer_field(state_registry, adata_target, **kwargs)


#: :class:`OptionalObsmField` wrapped for MuData (``mod_key=None``: the global ``mdata.obsm``).
MuDataOptionalObsmField = fields.MuDataWrapper(OptionalObsmField)


def modality_rows(mdata: MuData, mod_key: str) -> np.ndarray:
    """Row of each global patient in ``mdata[mod_key]`` (-1 where the patient is absent)."""
    return mdata.mod[mod_key].obs_names.get_indexer(mdata.obs_names)


def align_to_global(mdata: MuData, mod_key: str, matrix):
    """Return ``matrix`` (rows = patients of ``mdata[mod_key]``) with rows in global patient order.

    Aligned inputs are returned as they are. Otherwise sparse matrices are row-reordered (missing
    patients are an error: sparse modalities must cover everyone) and dense matrices are padded with NaN.
    """
    rows = modality_rows(mdata, mod_key)
    n_mod = mdata.mod[mod_key].n_obs
    if n_mod == mdata.n_obs and np.array_equal(rows, np.arange(n_mod)):
        return matrix
    present = rows >= 0
    if sparse.issparse(matrix):
        if not present.all():
            raise ValueError(f"Sparse modality {mod_key!r} must contain every patient of the MuData.")
        return matrix[rows]
    matrix = np.asarray(matrix)
    out = np.full((mdata.n_obs, *matrix.shape[1:]), np.nan, dtype=np.result_type(matrix.dtype, np.float32))
    out[present] = matrix[rows[present]]
    return out


class UnpairedMuDataManager(AnnDataManager):
    """An :class:`~scvi.data.AnnDataManager` whose modality fields are aligned to the global patients.

    Use with :func:`~cfmd.models._scvi_private.unpaired_validation`.
    """

    def get_from_registry(self, registry_key: str):
        """The registered data, with modality matrices aligned to ``self.adata.obs_names``."""
        data_loc = self.data_registry[registry_key]
        mod_key = getattr(data_loc, DR_MOD_KEY, None)
        attr_name, attr_key = data_loc[DR_ATTR_NAME], data_loc[DR_ATTR_KEY]
        holder = self.adata.mod[mod_key] if mod_key is not None else self.adata
        if attr_name == "obsm" and attr_key not in holder.obsm:  # optional field absent: placeholder
            n_cols = len(self.get_state_registry(registry_key)[OptionalObsmField.COLUMN_NAMES_KEY])
            return np.full((self.adata.n_obs, n_cols), np.nan, dtype=np.float32)
        data = get_anndata_attribute(self.adata, attr_name, attr_key, mod_key=mod_key)
        if mod_key is None or not isinstance(self.adata, MuData):
            return data
        return align_to_global(self.adata, mod_key, data)
