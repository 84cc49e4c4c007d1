"""``cfmd.tl.loco_audit``: the leave-one-chromosome-out audit of methylation imputation (paper, 3.4 and 4.2)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .._constants import (
    CHROMOSOMES,
    DEFAULT_LATENT_KEY,
    DEFAULT_RNA_KEY,
    DEFAULT_SEED,
    DEFAULT_SPLIT_KEY,
    check_chromosomes,
)
from .._docs import DOC_COPY, DOC_RNA_DATA, DOC_UNS_KEY_ADDED, doc_params
from .._layout import LatentLayout
from .._logging import logger
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import InvalidInputError, check_choice, check_not_view, check_obsm, describe_examples
from ..metrics import slice_metrics
from ._split import split_indices

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["loco_audit"]

DECODERS = ("regional", "pointwise")


@doc_params(rna_data=DOC_RNA_DATA, key_added=DOC_UNS_KEY_ADDED, copy=DOC_COPY)
def loco_audit(
    mdata: MuData,
    *,
    latent_key: str = DEFAULT_LATENT_KEY,
    split_key: str = DEFAULT_SPLIT_KEY,
    mode: Literal["strict", "fast"] = "strict",
    decoders: Sequence[str] = DECODERS,
    chromosomes: Sequence[str] | None = None,
    negative_control: bool = True,
    seed: int = DEFAULT_SEED,
    max_epochs: int = 200,
    rna_key: str = DEFAULT_RNA_KEY,
    rna_layer: str | None = None,
    rna_scale: str = "counts",
    cfmd_kwargs: Mapping | None = None,
    train_kwargs: Mapping | None = None,
    key_added: str = "cfmd_loco",
    copy: bool = False,
) -> MuData | None:
    r"""Leave-one-chromosome-out audit of the methylation slice for the regional decoder and the point-wise MLP.

    For each chromosome, its RNA features are masked and its positional embedding ablated; the methylation
    slice of the held-out test patients is predicted and its :math:`R^2` compared with the unmasked model trained
    on the same (random, patient-level) split. ``mode="strict"`` retrains every decoder per chromosome on the
    training split with the chromosome masked (the paper's audit); ``"fast"`` masks at inference only. The
    negative control trains the regional decoder with chromosome positional embeddings shuffled (a fresh
    permutation per epoch), so position carries no information.

    Parameters
    ----------
    mdata
        MuData with the observed latent (``latent_key`` + layout, which must have a ``regional_methylation`` slice),
        RNA with ``var['chromosome']`` and the split column.
    latent_key, split_key
        The latent and the patient split.
    mode
        ``"strict"`` or ``"fast"``.
    decoders
        ``"regional"`` and/or ``"pointwise"``.
    chromosomes
        Chromosomes to hold out (default: 1-22 and X).
    negative_control
        Also run the shuffled-positional-embedding control.
    seed, max_epochs
        Training seed and epoch cap of every model.
    {rna_data}
    cfmd_kwargs, train_kwargs
        Extra keyword arguments of :class:`~cfmd.models.CFMD` and of ``train`` (e.g. smaller ``rmd_kwargs`` for
        a quick audit on CPU).
    {key_added}
    {copy}

    Returns
    -------
    ``None`` (or the copy). Fields written: ``.uns[key_added]`` with ``per_chromosome`` (DataFrame: chromosome,
    decoder, r2, r2_random, delta_r2 = r2_random - r2, mode) and ``summary`` (per decoder: random-split
    :math:`R^2`, mean and max :math:`\Delta R^2` and the spread of per-chromosome :math:`R^2`; the negative
    control's :math:`R^2` as ``r2_shuffled_positions``; mode, seed, wall time).
    """
    if not copy:
        check_not_view(mdata, "mdata")
    with unchanged_on_error(mdata):
        import scvi

        from ..models import CFMD

        check_choice(mode, "mode", ("strict", "fast"))
        decoders = list(decoders)
        bad = [d for d in decoders if d not in DECODERS]
        if bad or not decoders:
            raise InvalidInputError(f"`decoders` must be some of {list(DECODERS)}; got {describe_examples(decoders)}.")
        chromosomes = check_chromosomes(list(CHROMOSOMES if chromosomes is None else chromosomes), "chromosomes")
        truth_all, layout = check_loco_input(mdata, latent_key=latent_key, rna_key=rna_key)
        meth_names = [s.name for s in layout.with_strategy("regional_methylation")]
        meth_layout = layout.replace_strategies(**{s.name: "zero" for s in layout if s.name not in meth_names})
        parts = split_indices(mdata, split_key)
        test = parts["test"][np.isfinite(truth_all[parts["test"]]).all(axis=1)]
        if test.size < 3:
            raise InvalidInputError(f"The test split has {test.size} patient(s) with an observed latent; need >= 3.")
        truth = truth_all[test]
        work = copy_mudata(mdata)
        start = time.perf_counter()

        def train(decoder: str, masked: list[str] | None, shuffle: bool = False):
            scvi.settings.seed = int(seed)
            CFMD.setup_mudata(
                work, latent_key=latent_key, rna_key=rna_key, rna_layer=rna_layer, rna_scale=rna_scale,
                geneformer_key=None, gene_embedding_key=None,
            )  # fmt: skip
            kwargs = dict(cfmd_kwargs or {})
            rmd = dict(kwargs.pop("rmd_kwargs", {}) or {})
            if decoder == "pointwise":
                rmd = {}
            if shuffle:
                rmd["shuffle_positions"] = "per_epoch"
            model = CFMD(
                work, layout=meth_layout, methylation_decoder=decoder, masked_chromosomes=masked, split_key=split_key,
                seed=seed, rmd_kwargs=rmd, **kwargs,
            )  # fmt: skip
            model.train(**{"max_epochs": max_epochs, "enable_progress_bar": False, **dict(train_kwargs or {})})
            return model

        def meth_r2(model, masked: list[str] | None = None) -> float:
            pred = model.get_imputed_latent(work, indices=test, masked_chromosomes=masked)
            table = slice_metrics(truth, pred, meth_layout, slices=meth_names, macro_slices=[]).set_index("slice")
            return float(table.loc[meth_names, "r2"].mean())

        rows, summary = [], {"mode": mode, "seed": int(seed), "n_test": int(test.size)}
        for decoder in decoders:
            reference = train(decoder, None)
            r2_random = meth_r2(reference)
            summary[f"r2_random_{decoder}"] = r2_random
            for chrom in chromosomes:
                model = train(decoder, [chrom]) if mode == "strict" else reference
                r2 = meth_r2(model, [chrom])
                rows.append(
                    {
                        "chromosome": chrom,
                        "decoder": decoder,
                        "r2": r2,
                        "r2_random": r2_random,
                        "delta_r2": r2_random - r2,
                        "mode": mode,
                    }
                )
                logger.info("LOCO %s chr%s: R^2 %.3f (random split %.3f).", decoder, chrom, r2, r2_random)
        per_chromosome = pd.DataFrame(rows)
        for decoder, group in per_chromosome.groupby("decoder", sort=False):
            summary[f"mean_delta_r2_{decoder}"] = float(group["delta_r2"].mean())
            summary[f"max_delta_r2_{decoder}"] = float(group["delta_r2"].max())
            summary[f"sd_r2_{decoder}"] = float(group["r2"].std(ddof=0))
        if negative_control:
            summary["r2_shuffled_positions"] = meth_r2(train("regional", None, shuffle=True))
        summary["wall_time_s"] = time.perf_counter() - start
        target = copy_mudata(mdata) if copy else mdata
        target.uns[key_added] = {"per_chromosome": per_chromosome, "summary": summary}
        return target if copy else None


def check_loco_input(mdata: MuData, *, latent_key: str = DEFAULT_LATENT_KEY, rna_key: str = DEFAULT_RNA_KEY) -> tuple:
    """What :func:`loco_audit` needs from the data, checked before any training.

    A latent whose layout has a ``regional_methylation`` slice, and chromosome positions of the RNA genes (also run
    by ``cfmd benchmark --loco``).

    Parameters
    ----------
    mdata
        The cohort.
    latent_key, rna_key
        As in :func:`loco_audit`.

    Returns
    -------
    The observed latent (``mdata.obsm[latent_key]`` as an array) and its :class:`~cfmd.LatentLayout`.
    """
    truth_all = check_obsm(mdata, latent_key, field="mdata")
    layout = LatentLayout.from_mudata(mdata, latent_key)
    layout.check_width(truth_all.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    if not layout.with_strategy("regional_methylation"):
        raise InvalidInputError("The latent's layout has no 'regional_methylation' slice to audit.")
    if "chromosome" not in mdata.mod[rna_key].var:
        raise InvalidInputError(f"The audit needs mdata[{rna_key!r}].var['chromosome'].")
    return truth_all, layout
