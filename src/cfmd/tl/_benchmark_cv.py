"""``cfmd.tl.benchmark(..., cv=k)``: the comparison under repeated, patient-disjoint, stratified k-fold CV."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._layout import LatentLayout
from .._logging import logger
from .._validation import InvalidInputError, check_obs_columns, check_obsm, check_positive_int, describe_examples
from ..metrics import MIN_EVENTS_TO_SCORE
from ._benchmark import check_method_names, check_method_needs
from ._cv import CV_SPLIT_COLUMN, _check_refit, pooled_c_index, run_cv
from ._methods import METHODS, MethodContext
from ._scoring import check_ci, score_methods


def benchmark_cv(
    mdata, *, methods, seeds, latent_key, split_key, rna_key, rna_layer, rna_scale, geneformer_key, gene_embedding_key,
    rna_only_key, time_key, event_key, cancer_type_key, max_epochs, cfmd_kwargs, train_kwargs, n_boot, ci,
    bootstrap_seed, key_added, cv, cv_repeats, cv_validation_fraction, refit_latent,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    from ._benchmark import _table, _table1

    # every argument and input, before any work
    cv = check_positive_int(cv, "cv", minimum=2)
    cv_repeats = check_positive_int(cv_repeats, "cv_repeats")
    _check_refit(refit_latent)
    if isinstance(cv_validation_fraction, bool) or not 0 < float(cv_validation_fraction) < 0.5:
        raise InvalidInputError(f"`cv_validation_fraction` must be in (0, 0.5); got {cv_validation_fraction!r}.")
    n_boot = check_positive_int(n_boot, "n_boot")
    ci = check_ci(ci)
    methods = check_method_names(methods)
    if "poe_rna_only" in methods:
        raise InvalidInputError(
            "'poe_rna_only' cannot be cross-validated: its RNA-only posterior comes from the StructuredVAE fitted once "
            "(cfmd.tl.fit_latent), which trained on patients of every fold. Leave it out of `methods` with `cv`, or "
            "score it on the single split (cv=None)."
        )
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidInputError("`seeds` must list at least one seed.")
    truth_all = np.asarray(check_obsm(mdata, latent_key, field="mdata"), dtype=np.float64)
    layout = LatentLayout.from_mudata(mdata, latent_key)
    layout.check_width(truth_all.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    check_obs_columns(mdata.obs, [time_key, event_key, cancer_type_key])
    observed = np.isfinite(truth_all).all(axis=1)
    if split_key in mdata.obs:
        observed &= mdata.obs[split_key].astype(str).to_numpy() != "rna_only"
    scored = np.flatnonzero(observed)
    if scored.size < 3 * cv:
        raise InvalidInputError(
            f"cv={cv} needs >= {3 * cv} patients with an observed latent (3 per fold); got {scored.size}."
        )
    cancer = mdata.obs[cancer_type_key].astype(str).to_numpy()
    time = pd.to_numeric(mdata.obs[time_key], errors="coerce").to_numpy(dtype=float)
    event = pd.to_numeric(mdata.obs[event_key], errors="coerce").to_numpy(dtype=float)
    time[~np.isfinite(event)] = np.nan
    bad = np.isfinite(time) & ((time < 0) | ~np.isin(event, (0.0, 1.0)))
    if bad.any():
        raise InvalidInputError(
            f"mdata.obs[{time_key!r}] / [{event_key!r}] must be non-negative times and 0/1 events; "
            f"{int(bad.sum())} patient(s) are not (e.g. {describe_examples(list(mdata.obs_names[bad]))})."
        )
    check_method_needs(methods, MethodContext(
        mdata=mdata, latent_key=latent_key, layout=layout, split_key=split_key, rna_key=rna_key,
        geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key,
        cfmd_kwargs=dict(cfmd_kwargs or {}),
    ))  # fmt: skip

    def make_context(work, seed):
        return MethodContext(
            mdata=work, latent_key=latent_key, layout=layout, split_key=CV_SPLIT_COLUMN, seed=seed, rna_key=rna_key,
            rna_layer=rna_layer, rna_scale=rna_scale, geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key, rna_only_key=rna_only_key, max_epochs=max_epochs,
            cfmd_kwargs=dict(cfmd_kwargs or {}), train_kwargs=dict(train_kwargs or {}),
        )  # fmt: skip

    base = mdata.copy()
    if split_key in base.obs:
        del base.obs[split_key]  # the folds' split column is the only split the methods see
    run = run_cv(
        base, methods=methods, seed=seeds[0], cv=cv, cv_repeats=cv_repeats,
        cv_validation_fraction=float(cv_validation_fraction), latent_key=latent_key, layout=layout,
        truth_all=truth_all, scored=scored, cancer=cancer, time=time, event=event, make_context=make_context,
    )  # fmt: skip

    truth = truth_all[scored]
    cancer_s, time_s, event_s = cancer[scored], time[scored], event[scored]
    imputing = [m for m in methods if METHODS[m].imputes]
    main = [m for m in methods if m != "pointwise_meth_mlp"]
    reference = "cfmd" if "cfmd" in main else main[0]
    preds = {m: list(run["oof"][m]) for m in methods}
    scored_main = score_methods(
        truth, {m: preds[m] for m in main}, layout, cancer_type=cancer_s, reference=reference, imputing=imputing,
        n_boot=n_boot, ci=ci, seed=bootstrap_seed,
    )  # fmt: skip
    slices = scored_main["slices"]
    per_cancer = scored_main["per_cancer_type"]
    if "pointwise_meth_mlp" in methods:
        point = score_methods(
            truth, {"pointwise_meth_mlp": preds["pointwise_meth_mlp"]}, layout, cancer_type=cancer_s, n_boot=n_boot,
            ci=ci, seed=bootstrap_seed,
        )  # fmt: skip
        slices = pd.concat([slices, point["slices"]], ignore_index=True)
        per_cancer = pd.concat([per_cancer, point["per_cancer_type"]], ignore_index=True)
    summary = scored_main["summary"].set_index("method")
    notes = {}
    for name in main:
        c, low, high, note = pooled_c_index(
            time_s, event_s, run["risk"][name], cancer_s, n_boot, ci, bootstrap_seed + 1
        )  # fmt: skip
        summary.loc[name, ["c_index", "c_index_low", "c_index_high"]] = [c, low, high]
        notes[name] = note
    summary["c_index_note"] = [notes.get(m, "") for m in summary.index]
    if any(notes.values()):
        import warnings

        warnings.warn(
            f"benchmark cv: pooled C-index not scored: {next(v for v in notes.values() if v)}.",
            UserWarning,
            stacklevel=4,
        )
    summary = summary.reset_index()
    per_cancer = _add_cancer_c(per_cancer, run, main, cancer_s, time_s, event_s)
    verdict = _verdict(truth, preds, layout, methods, slices, run["folds"], cancer_s, n_boot, ci, bootstrap_seed)
    labels = {m: METHODS[m].label for m in methods}
    result = {
        "table1": _table1(slices, layout, methods),
        "table3": _table(summary, labels, delta_name="delta_c_index_vs_cfmd", with_p=False),
        "slices": slices,
        "per_cancer_type": per_cancer,
        "verdict": verdict,
        "folds": run["folds"],
        "students": run["students"],
        "timing": run["timing"],
    }
    names = mdata.obs_names[scored].astype(str)
    assignment = pd.DataFrame(
        {
            "patient": np.repeat(np.asarray(names, dtype=object)[None, :], cv_repeats, axis=0).ravel(),
            "repeat": np.repeat(np.arange(cv_repeats), scored.size),
            "fold": run["assignment"].ravel(),
        }
    )
    mdata.uns[key_added] = {
        **result,
        "assignment": assignment,
        "survival_heads": run["heads"],
        "oof_predictions": {m: run["oof"][m] for m in methods},
        "params": {
            "methods": np.array(methods, dtype=object),
            "seeds": np.array(seeds),
            "cv": int(cv),
            "cv_repeats": int(cv_repeats),
            "cv_validation_fraction": float(cv_validation_fraction),
            "refit_latent": False,
            "latent_key": latent_key,
            "n_patients": int(scored.size),
            "n_events": int(np.nansum(event_s)),
            "max_epochs": int(max_epochs),
            "n_boot": int(n_boot),
            "reference": reference,
            "min_events_to_score": MIN_EVENTS_TO_SCORE,
        },
    }
    logger.info("benchmark: %d methods x %d folds x %d repeats done.", len(methods), cv, cv_repeats)
    return result


def _add_cancer_c(per_cancer, run, methods, cancer, time, event) -> pd.DataFrame:
    from ..metrics import harrell_c

    per_cancer = per_cancer.copy()
    per_cancer["c_index"] = np.nan
    per_cancer["c_index_note"] = ""
    for name in methods:
        for c in sorted(set(cancer)):
            rows = (cancer == c) & np.isfinite(time) & np.isfinite(run["risk"][name]).all(axis=0)
            n_ev = int(event[rows].sum())
            where = (per_cancer["method"] == name) & (per_cancer["cancer_type"] == c)
            if n_ev < MIN_EVENTS_TO_SCORE:
                per_cancer.loc[where, "c_index_note"] = f"{n_ev} events (< {MIN_EVENTS_TO_SCORE})"
                continue
            value = np.mean([harrell_c(time[rows], event[rows] > 0, r[rows]) for r in run["risk"][name]])
            per_cancer.loc[where, "c_index"] = value
    return per_cancer


def _verdict(truth, preds, layout, methods, slices, folds, cancer, n_boot, ci, seed) -> pd.DataFrame:
    """Per slice: pooled R^2 of every method, the best one, CFMD - ridge (paired bootstrap), per-fold spread."""
    from ..metrics import make_strata, percentile_interval, resampled_slice_metrics, stratified_bootstrap_indices

    pooled = slices[slices["kind"] == "slice"].pivot_table(index="slice", columns="method", values="r2")
    spread = folds[folds["kind"] == "slice"].groupby(["slice", "method"])["r2"].std(ddof=1).unstack()
    paired = None
    if "cfmd" in methods and "ridge" in methods:
        idx = stratified_bootstrap_indices(make_strata(cancer), n_boot, seed=seed)
        dist = {}
        for m in ("cfmd", "ridge"):
            tabs = [resampled_slice_metrics(truth, p, layout, idx) for p in preds[m]]
            dist[m] = pd.concat(tabs).groupby(["resample", "slice", "kind"], sort=False)["r2"].mean()
        paired = (dist["cfmd"] - dist["ridge"]).xs("slice", level="kind")
    rows = []
    for s in layout:
        if s.strategy == "zero" or s.name not in pooled.index:
            continue
        r2 = pooled.loc[s.name].dropna()
        candidates = r2.drop(labels=[m for m in ("zero_mask",) if m in r2.index])
        row = {"slice": s.name, "dims": s.dim, **{f"r2_{m}": v for m, v in r2.items()}}
        row["best"] = candidates.idxmax() if len(candidates) else ""
        if paired is not None:
            d = paired.xs(s.name, level="slice").to_numpy()
            low, high = percentile_interval(d, ci)
            row.update(cfmd_minus_ridge=r2.get("cfmd", np.nan) - r2.get("ridge", np.nan))
            row.update(cfmd_minus_ridge_low=low, cfmd_minus_ridge_high=high)
            row["verdict"] = "ridge better" if high < 0 else ("CFMD better" if low > 0 else "no clear difference")
        if s.name in spread.index:
            for m in spread.columns:
                row[f"r2_fold_sd_{m}"] = spread.loc[s.name, m]
        rows.append(row)
    return pd.DataFrame(rows)
