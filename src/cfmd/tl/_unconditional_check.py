"""``cfmd.tl.unconditional_check``: what a generative imputer produces with no conditions (seed 004, Table 3).

A generative model that reproduces the training patients' latents without any input is a privacy concern: it can
emit patient-like profiles on demand. The seed reports the multi-condition model (trained with random condition
masks, the empty set included) close to the training manifold and the Coherent Denoising ensemble (single-condition
members only) far from it, producing samples around the mean. This tool measures that for any
:class:`~cfmd.models.LatentDiffusion` / :class:`~cfmd.models.CoherentDenoising`: samples drawn with every condition
masked against the training patients' latents, with maintained implementations of the metrics (``dcor``'s energy
distance; ``prdc``'s precision, recall, density and coverage).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._docs import DOC_COPY, doc_params
from .._logging import logger
from .._transaction import unchanged_on_error
from .._utils import copy_mudata
from .._validation import InvalidInputError, check_not_view, check_positive_int, describe_examples

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["UNCONDITIONAL_EMBEDDINGS", "UNCONDITIONAL_METRICS", "unconditional_check", "unconditional_metrics"]

#: Columns of the per-run table, in order.
UNCONDITIONAL_METRICS = ("energy_distance", "precision", "recall", "f1", "density", "coverage")
#: ``embeddings=`` values.
UNCONDITIONAL_EMBEDDINGS = ("pca", "umap")
#: ``model`` label of the reference rows: held-out real patients against the training patients.
HELD_OUT = "held-out patients"


def unconditional_metrics(reference: np.ndarray, generated: np.ndarray, *, nearest_k: int = 5) -> dict[str, float]:
    """Energy distance and precision / recall / F1 / density / coverage of ``generated`` against ``reference``.

    Parameters
    ----------
    reference
        ``(n_real, n_dims)`` real samples (the training latents).
    generated
        ``(n_generated, n_dims)`` generated samples.
    nearest_k
        Neighbours defining each sample's k-NN ball (``prdc``; Naeem et al. 2020 recommend 5).

    Returns
    -------
    ``energy_distance``: :func:`dcor.energy_distance` (the V-statistic :math:`2E|X-Y| - E|X-X'| - E|Y-Y'|`; seed
    004's code reports its square root); ``precision``, ``recall``, ``density``, ``coverage``:
    :func:`prdc.compute_prdc`; ``f1``: the harmonic mean of precision and recall (0 when both are 0; the seed's
    "F1 score").
    """
    reference = np.ascontiguousarray(reference, dtype=np.float64)
    generated = np.ascontiguousarray(generated, dtype=np.float64)
    k = check_positive_int(nearest_k, "nearest_k")
    for name, values in (("reference", reference), ("generated", generated)):
        if values.ndim != 2 or values.shape[0] <= k:
            raise InvalidInputError(
                f"`{name}` must be a 2-d array with more than `nearest_k` = {k} rows; got shape {values.shape}."
            )
        if not np.isfinite(values).all():
            raise InvalidInputError(f"`{name}` has NaN or infinite values.")
    if reference.shape[1] != generated.shape[1]:
        raise InvalidInputError(
            f"`reference` and `generated` must have the same width; got {reference.shape[1]} and {generated.shape[1]}."
        )
    import dcor  # after the checks: dcor compiles its numba kernels on import (~10 s)
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        found = prdc.compute_prdc(real_features=reference, fake_features=generated, nearest_k=k)
    precision, recall = float(found["precision"]), float(found["recall"])
    return {
        "energy_distance": float(dcor.energy_distance(reference, generated)),
        "precision": precision,
        "recall": recall,
        "f1": 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
        "density": float(found["density"]),
        "coverage": float(found["coverage"]),
    }


def _resolve_models(mdata, models) -> dict:
    from ._generate import is_generative, load_generative

    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError(
            "`models` must be a non-empty mapping {label: trained LatentDiffusion / CoherentDenoising or saved folder}."
        )
    out = {}
    for label, model in models.items():
        if not isinstance(label, str) or not label or label == HELD_OUT:
            raise InvalidInputError(
                f"`models` labels must be non-empty strings other than {HELD_OUT!r}; got {label!r}."
            )
        if isinstance(model, str) and not is_generative(model):
            raise InvalidInputError(
                f"`models[{label!r}]` must be a trained LatentDiffusion / CoherentDenoising or the folder of a saved "
                f"one; got {model!r}."
            )
        if not is_generative(model):
            raise InvalidInputError(
                f"`models[{label!r}]` must be a trained LatentDiffusion / CoherentDenoising or the folder of a saved "
                f"one; got {type(model).__name__}."
            )
        if not hasattr(model, "module"):
            model = load_generative(model, mdata)
        if not getattr(model, "is_trained_", False):
            raise InvalidInputError(f"`models[{label!r}]` is not trained; call its `train` first.")
        out[label] = model
    return out


def _reference(mdata, model):
    """Training and held-out latents (target dimensions) of ``model``'s patients in ``mdata``."""
    from ..models._scvi_private import setup_args

    latent_key = setup_args(model)["latent_key"]
    if latent_key not in mdata.obsm:
        raise InvalidInputError(f"mdata.obsm has no latent {latent_key!r}, the latent the model was trained on.")
    latent = np.asarray(mdata.obsm[latent_key], dtype=float)[:, model.module.target_index]
    parts = {}
    for part in ("train", "validation", "test"):
        names = pd.Index([str(n) for n in model.split_[part]])
        rows = mdata.obs_names.get_indexer(names)
        if (rows < 0).any():
            raise InvalidInputError(
                f"The model's {part} patients are not all in mdata ({describe_examples(names[rows < 0])}); pass the "
                "MuData the model was trained on."
            )
        parts[part] = rows
    train = latent[parts["train"]]
    held_out = latent[np.concatenate([parts["validation"], parts["test"]])]
    held_out = held_out[np.isfinite(held_out).all(axis=1)]
    if not np.isfinite(train).all():
        raise InvalidInputError(f"Training patients have NaN values in mdata.obsm[{latent_key!r}].")
    return train, held_out, parts["train"]


@doc_params(copy=DOC_COPY)
def unconditional_check(
    mdata: MuData,
    models: Mapping[str, object],
    *,
    n_generated: int | None = None,
    n_runs: int = 10,
    nearest_k: int = 5,
    standardise: bool = True,
    embeddings: Sequence[str] = ("pca", "umap"),
    num_inference_steps: int | None = None,
    seed: int = 0,
    key_added: str = "cfmd_unconditional",
    copy: bool = False,
) -> MuData | None:
    """Draw samples with no conditions from each generative imputer and compare them with the training latents.

    For each model, ``n_runs`` times: ``n_generated`` samples with every condition masked (``generate(conditions=[])``)
    against the latents (the model's target slices) of its training patients (``model.split_["train"]``), scored with
    :func:`unconditional_metrics` (energy distance; precision, recall, their F1, density, coverage). A reference row,
    ``"held-out patients"``, scores the validation and test patients' real latents against the same training
    patients: what a model that had learnt the distribution (and no more) would reach at that sample size.

    What "no conditions" means per model: :class:`~cfmd.models.LatentDiffusion` was trained with random condition
    masks, the empty set included, so it has learnt the unconditional distribution (classifier-free style).
    :class:`~cfmd.models.CoherentDenoising` has no unconditional member: with every condition masked, each
    single-condition member runs with a zeroed condition embedding, a state none of them was trained in, and the
    consensus of their predictions (validation-MSE weights) drives the reverse process. That is the seed's
    unconditional ensemble; nothing is retrained.

    Parameters
    ----------
    mdata
        The MuData the models were trained on (the training latents are read from it).
    models
        ``{label: model}``: trained :class:`~cfmd.models.LatentDiffusion` / :class:`~cfmd.models.CoherentDenoising`
        models or folders of saved ones.
    n_generated
        Samples per run (default: as many as the model's training patients).
    n_runs
        Runs (independent draws); the seed reports mean +- SD over 10.
    nearest_k
        k of the k-NN balls of precision / recall / density / coverage.
    standardise
        Score in the training patients' standardised units (each target dimension centred and scaled by the
        training mean and SD), so that no dimension dominates the distances; ``False``: latent units.
    embeddings
        Two-dimensional pictures to compute: ``"pca"`` (scikit-learn) and / or ``"umap"`` (umap-learn), each
        fitted on the training latents (standardised as above); the first run's samples are placed into them.
        ``()``: none.
    num_inference_steps
        Reverse steps of the sampling (default: each model's T).
    seed
        Seed of the draws (run ``r`` uses ``seed + r``) and of the embeddings.
    key_added
        ``.uns`` key of the results.
    {copy}

    Returns
    -------
    ``None`` (or the copy when ``copy=True``). Fields written:

    ``.uns[key_added]["runs"]``
        One row per model and run: ``model``, ``run``, and :data:`UNCONDITIONAL_METRICS` (the held-out reference has
        ``run`` 0 only).
    ``.uns[key_added]["summary"]``
        Per model: ``n_runs``, ``n_generated``, ``n_train``, and ``{metric}_mean`` / ``{metric}_sd`` (SD over runs).
    ``.uns[key_added]["embedding"]``
        Tidy DataFrame: ``model`` (whose training patients define the map), ``basis`` (``pca`` / ``umap``),
        ``source`` (``training`` or ``generated``), ``x``, ``y``.
    ``.uns[key_added]["settings"]``
        ``models`` ({label: class}), ``n_runs``, ``nearest_k``, ``standardise``, ``embeddings``,
        ``num_inference_steps``, ``seed``.

    Examples
    --------
    >>> cfmd.tl.unconditional_check(mdata, {"multi-condition": ld, "Coherent Denoising": cd})  # doctest: +SKIP
    >>> mdata.uns["cfmd_unconditional"]["summary"]  # doctest: +SKIP
    >>> cfmd.pl.unconditional_check(mdata)  # doctest: +SKIP
    """
    if not copy:
        check_not_view(mdata, "mdata")
    target = copy_mudata(mdata) if copy else mdata
    with unchanged_on_error(target):
        _unconditional_check(
            target, models, n_generated=n_generated, n_runs=n_runs, nearest_k=nearest_k, standardise=standardise,
            embeddings=embeddings, num_inference_steps=num_inference_steps, seed=seed, key_added=key_added,
        )  # fmt: skip
    return target if copy else None


def _unconditional_check(mdata, models, *, n_generated, n_runs, nearest_k, standardise, embeddings,
                         num_inference_steps, seed, key_added):  # fmt: skip
    n_runs = check_positive_int(n_runs, "n_runs")
    nearest_k = check_positive_int(nearest_k, "nearest_k")
    if n_generated is not None:
        n_generated = check_positive_int(n_generated, "n_generated", minimum=nearest_k + 1)
    if num_inference_steps is not None:
        num_inference_steps = check_positive_int(num_inference_steps, "num_inference_steps")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    if not isinstance(standardise, bool | np.bool_):
        raise InvalidInputError(f"`standardise` must be True or False; got {standardise!r}.")
    embeddings = [embeddings] if isinstance(embeddings, str) else list(embeddings)
    unknown = [e for e in embeddings if e not in UNCONDITIONAL_EMBEDDINGS]
    if unknown:
        raise InvalidInputError(f"`embeddings` must be a subset of {list(UNCONDITIONAL_EMBEDDINGS)}; got {unknown}.")
    if not isinstance(key_added, str) or not key_added:
        raise InvalidInputError(f"`key_added` must be a non-empty string; got {key_added!r}.")
    resolved = _resolve_models(mdata, models)
    references = {label: _reference(mdata, model) for label, model in resolved.items()}
    for label, (train, _, _) in references.items():
        if train.shape[0] <= nearest_k:
            raise InvalidInputError(
                f"`models[{label!r}]` has {train.shape[0]} training patients; `nearest_k` ({nearest_k}) needs more."
            )

    rows, pictures, summary = [], [], []
    distinct = {label: (ref[0].tobytes(), ref[1].tobytes()) for label, ref in references.items()}
    held_out_scored = set()
    for label, model in resolved.items():
        train, held_out, train_rows = references[label]
        mean, sd = (train.mean(0), train.std(0, ddof=1)) if standardise else (0.0, 1.0)
        sd = np.where(np.asarray(sd) > 0, sd, 1.0) if standardise else sd

        def scaled(x, mean=mean, sd=sd):
            return (x - mean) / sd

        n = int(n_generated or train.shape[0])
        indices = np.resize(train_rows, n)  # the rows only set the count: every condition is masked
        first = None
        for run in range(n_runs):
            generated = model.generate(
                indices=indices,
                n_samples=1,
                conditions=[],
                seed=int(seed) + run,
                num_inference_steps=num_inference_steps,
            )[0]
            first = generated if first is None else first
            rows.append({"model": label, "run": run, **unconditional_metrics(scaled(train), scaled(generated),
                                                                             nearest_k=nearest_k)})  # fmt: skip
        if held_out.shape[0] > nearest_k and distinct[label] not in held_out_scored:  # once per distinct reference
            held_out_scored.add(distinct[label])
            found = unconditional_metrics(scaled(train), scaled(held_out), nearest_k=nearest_k)
            name = HELD_OUT if len(set(distinct.values())) == 1 else f"{HELD_OUT} ({label})"
            rows.append({"model": name, "run": 0, **found})
            summary.append(_summary_row(name, [found], held_out.shape[0], train.shape[0]))
        summary.append(_summary_row(label, [r for r in rows if r["model"] == label], n, train.shape[0]))
        for basis in embeddings:
            train_xy, generated_xy = _embed(basis, scaled(train), scaled(first), int(seed))
            for source, xy in (("training", train_xy), ("generated", generated_xy)):
                pictures.append(pd.DataFrame({"model": label, "basis": basis, "source": source,
                                              "x": xy[:, 0], "y": xy[:, 1]}))  # fmt: skip
        logger.info(
            "unconditional_check: %s: energy distance %.3f, F1 %.3f, coverage %.3f (mean of %d runs).",
            label, summary[-1]["energy_distance_mean"], summary[-1]["f1_mean"], summary[-1]["coverage_mean"], n_runs,
        )  # fmt: skip
    runs = pd.DataFrame(rows, columns=["model", "run", *UNCONDITIONAL_METRICS])
    embedding = (
        pd.concat(pictures, ignore_index=True)
        if pictures
        else pd.DataFrame({"model": [], "basis": [], "source": [], "x": [], "y": []})
    )
    mdata.uns[key_added] = {
        "runs": runs,
        "summary": pd.DataFrame(summary),
        "embedding": embedding,
        "settings": {
            "models": {label: type(model).__name__ for label, model in resolved.items()},
            "n_runs": int(n_runs),
            "nearest_k": int(nearest_k),
            "standardise": bool(standardise),
            "embeddings": list(embeddings),
            "num_inference_steps": 0 if num_inference_steps is None else int(num_inference_steps),
            "seed": int(seed),
        },
    }


def _summary_row(label, found, n_generated, n_train) -> dict:
    table = pd.DataFrame(found)
    row = {"model": label, "n_runs": len(table), "n_generated": int(n_generated), "n_train": int(n_train)}
    for metric in UNCONDITIONAL_METRICS:
        row[f"{metric}_mean"] = float(table[metric].mean())
        row[f"{metric}_sd"] = float(table[metric].std(ddof=1)) if len(table) > 1 else np.nan
    return row


def _embed(basis: str, train: np.ndarray, generated: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-d coordinates of the training latents and of the generated ones, the map fitted on the training latents."""
    if basis == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(train)
        return pca.transform(train), pca.transform(generated)
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        reducer = umap.UMAP(n_neighbors=min(15, train.shape[0] - 1), random_state=seed).fit(train)
        return reducer.embedding_, reducer.transform(generated)
