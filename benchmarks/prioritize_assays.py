"""Seed 004's counterfactual assay prioritisation (Figure 4) and privacy table (Table 3) on a cfmd cohort.

Run from the project root (one command; writes Markdown and PNGs)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/prioritize_assays.py                  # synthetic
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/prioritize_assays.py --cohort tcga_lihc_360
    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/prioritize_assays.py --cohort tcga_brca_348 --threads 2

Synthetic cohort: :func:`cfmd.datasets.synthetic_cohort` with the planted subgroup (``unpredictable_noise=2``,
``unpredictable_outcome=1``): the last cancer type's methylation carries a part RNA cannot see, and their hazard
reads it. The latent is the planted truth (pathway: 4 pathway factors, meth: the 6-d methylation state as measured,
cnv: 4 CNV factors; RNA-only patients have none). Split 60 / 10 / 30 (a larger test set for the curves).

Real cohort (``--cohort tcga_lihc_360``): RNA, methylation and CNV read with :func:`cfmd.datasets.read_xena`, survival
from ``survival_cdr.tsv``; the latent is fitted by :func:`cfmd.tl.fit_latent` on the training patients (an RNA
slice, a methylation slice and a CNV slice of 16 dimensions each).

For the methylation slice, a multi-condition :class:`~cfmd.models.LatentDiffusion` and a
:class:`~cfmd.models.CoherentDenoising` ensemble are trained (conditions: RNA, cancer type when several, the other
slices); :func:`cfmd.tl.generate` draws ``--repeats`` x ``--per-repeat`` versions per patient. Then:

- :func:`cfmd.tl.prioritize_assays` for each imputer and task (survival: the frozen Cox head, C-index;
  classification of ``risk_group`` on the synthetic cohort: logistic regression, macro F1): informed vs random
  acquisition, area between the curves, Wilcoxon and paired t-test over the repeats;
- the planted subgroup (synthetic): how often the top-ranked test patient of a repeat belongs to it vs its
  prevalence (binomial test), precision among the top-k (k = subgroup size) and the AUROC of the score;
- :func:`cfmd.tl.unconditional_check` for both imputers (10 runs): energy distance, precision / recall / F1 /
  density / coverage, against the held-out patients as reference; PCA and UMAP pictures.

Results: ``benchmarks/results/prioritize_assays.md`` (synthetic) or ``prioritize_assays_<cohort>.md`` and PNGs
next to it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats

import cfmd
from cfmd.models import CoherentDenoising, LatentDiffusion

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic(args):
    from generative_table import attach_truth_latent

    mdata = cfmd.datasets.synthetic_cohort(
        n_patients=args.patients, n_genes=args.genes, seed=args.seed, unpredictable_noise=2.0,
        unpredictable_outcome=1.0, protein_sequences=False,
    )  # fmt: skip
    attach_truth_latent(mdata)
    cfmd.tl.split_patients(mdata, fractions=(0.6, 0.1, 0.3), seed=args.seed)
    return mdata, ("counts", None)


def real(args):
    """A real cohort read as ``benchmarks/real_cohorts.py`` does; the latent fitted on the training patients."""
    from real_cohorts import load_with_small_latent

    mdata, rna_args, modalities = load_with_small_latent(
        args.cohort,
        Path(args.shared) / "cohorts",
        fractions=(0.6, 0.1, 0.3),
        seed=args.seed,
        vae_epochs=args.vae_epochs,
    )
    return mdata, (rna_args["rna_scale"], rna_args["rna_layer"])


def subgroup_ranking(mdata, key: str) -> dict:
    """How the planted subgroup ranks: top-1 per repeat vs prevalence, precision among the top k, AUROC."""
    from sklearn.metrics import roc_auc_score

    scores = mdata.uns[key]["scores"]
    flagged = mdata.obs.loc[scores.index, "truth_unpredictable"].to_numpy().astype(bool)
    prevalence = float(flagged.mean())
    top1 = [bool(flagged[np.argmax(scores[c].to_numpy())]) for c in scores.columns]
    k = int(flagged.sum())
    mean = scores.mean(axis=1).to_numpy()
    top_k = np.argsort(-mean, kind="stable")[:k]
    return {
        "test patients": len(flagged),
        "subgroup": k,
        "prevalence": prevalence,
        "top-1 in subgroup": f"{sum(top1)}/{len(top1)}",
        "binomial p": float(stats.binomtest(sum(top1), len(top1), prevalence, alternative="greater").pvalue),
        "precision@k": float(flagged[top_k].mean()),
        "AUROC": float(roc_auc_score(flagged, mean)),
    }


def markdown(table: pd.DataFrame, floatfmt: str = ".4g") -> str:
    def fmt(v):
        return format(v, floatfmt) if isinstance(v, float | np.floating) else str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def run(args) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    is_synthetic = args.cohort == "synthetic"
    mdata, (scale, layer) = synthetic(args) if is_synthetic else real(args)
    layout = cfmd.LatentLayout.from_mudata(mdata, "X_structured")
    has_type = "cancer_type" in mdata.obs and mdata.obs["cancer_type"].nunique() > 1
    conditions = ["rna"] + (["cancer_type"] if has_type else []) + [s.name for s in layout if s.name != "meth"]
    widths = {"n_hidden": args.hidden, "n_layers": args.layers, "num_train_timesteps": args.steps}
    train = {"max_epochs": args.epochs, "validate_every": 10, "batch_size": 32, "early_stopping_patience": 5}
    n_samples = args.repeats * args.per_repeat
    models, timings = {}, {}
    for label, cls, key in (("multi-condition", LatentDiffusion, "X_multi"), ("Coherent Denoising",
                                                                               CoherentDenoising, "X_cd")):  # fmt: skip
        step = time.perf_counter()
        work = mdata if label == "multi-condition" else mdata.copy()  # one registration per object (scvi-tools)
        cls.setup_mudata(work, rna_scale=scale, rna_layer=layer)
        model = cls(work, target="meth", conditions=conditions, split_key="cfmd_split", seed=args.seed, **widths)
        model.train(**train)
        cfmd.tl.generate(mdata, model=model, key_added=key, n_samples=n_samples, return_samples=True, seed=args.seed)
        models[label] = (model, key)
        timings[f"train + generate {label}"] = time.perf_counter() - step

    tasks = [("survival", None)] + ([("classification", "risk_group")] if is_synthetic else [])
    rows, ranking, figure_rows = [], [], []
    fig, axes = plt.subplots(len(tasks), len(models), figsize=(5.2 * len(models), 4.0 * len(tasks)),
                             layout="constrained", squeeze=False)  # fmt: skip
    for i, (task, label_key) in enumerate(tasks):
        for j, (label, (_, gen_key)) in enumerate(models.items()):
            step = time.perf_counter()
            key = f"prio_{gen_key}_{task}"
            cfmd.tl.prioritize_assays(
                mdata, "meth", generated_key=gen_key, task=task, label_key=label_key, n_repeats=args.repeats,
                n_random=args.random_orders, seed=args.seed, key_added=key,
                cancer_type_key="cancer_type" if "cancer_type" in mdata.obs else None,
            )  # fmt: skip
            result = mdata.uns[key]
            test, settings = result["test"], result["settings"]
            summary = result["summary"]
            at = {s: summary[(summary["strategy"] == s)].set_index("fraction")["mean"] for s in ("informed", "random")}
            rows.append({
                "imputer": label, "task": task, "metric": settings["metric"], "test patients": settings["n_test"],
                "none observed": at["informed"].iloc[0], "all observed": at["informed"].iloc[-1],
                "informed @30%": at["informed"].iloc[int(round(0.3 * (len(at["informed"]) - 1)))],
                "random @30%": at["random"].iloc[int(round(0.3 * (len(at["random"]) - 1)))],
                "area informed - random": test["area_difference"],
                "95% CI": f"{test['area_difference_low']:+.4f} to {test['area_difference_high']:+.4f}",
                "Wilcoxon p": test["p_wilcoxon"], "t-test p": test["p_ttest"],
            })  # fmt: skip
            if is_synthetic and task == "survival":
                ranking.append({"imputer": label, **subgroup_ranking(mdata, key)})
            if task == "survival":
                per_type = result["per_cancer_type"].copy()
                per_type.insert(0, "imputer", label)
                figure_rows.append(per_type)
            cfmd.pl.acquisition_curve(mdata, key=key, ax=axes[i, j], title=f"{label}: {task}")
            timings[f"prioritize {label} {task}"] = time.perf_counter() - step

    stem = "prioritize_assays" if is_synthetic else f"prioritize_assays_{args.cohort}"
    curve_png = RESULTS / f"{stem}_acquisition.png"
    fig.savefig(curve_png, dpi=110)
    plt.close(fig)

    step = time.perf_counter()
    cfmd.tl.unconditional_check(
        mdata, {label: model for label, (model, _) in models.items()}, n_runs=args.runs, seed=args.seed,
        embeddings=("pca", "umap"),
    )  # fmt: skip
    privacy = mdata.uns["cfmd_unconditional"]["summary"]
    privacy_png = RESULTS / f"{stem}_unconditional.png"
    cfmd.pl.unconditional_check(mdata, save=privacy_png, dpi=110)
    plt.close("all")
    timings["unconditional check"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - start

    columns = ["model", "n_generated", "energy_distance_mean", "energy_distance_sd", "f1_mean", "f1_sd",
               "precision_mean", "recall_mean", "density_mean", "coverage_mean", "coverage_sd"]  # fmt: skip
    lines = [
        f"# Assay prioritisation and unconditional generation ({args.cohort})",
        "",
        f"Command: `OMP_NUM_THREADS={args.threads} PYTHONPATH=src .venv/bin/python benchmarks/prioritize_assays.py "
        f"--cohort {args.cohort} --threads {args.threads}` (defaults otherwise: {vars(args)}).",
        "",
        f"Target: the `meth` slice; conditions {conditions}; {n_samples} generations per patient "
        f"({args.repeats} repeats x {args.per_repeat}); networks {widths}, up to {args.epochs} epochs.",
        "",
        "## Informed vs random acquisition (seed 004, Figure 4)",
        "",
        "Area under the metric-vs-fraction-observed curve, informed minus random (random: mean of "
        f"{args.random_orders} orders per repeat); paired tests over {args.repeats} repeats. Unobserved patients get "
        "the mean of the repeat's generations.",
        "",
        markdown(pd.DataFrame(rows)),
        "",
        f"![acquisition curves]({curve_png.name})",
    ]
    if ranking:
        lines += ["", "## Is the planted subgroup ranked first? (survival scores)", "", markdown(pd.DataFrame(ranking))]
    if figure_rows:
        lines += ["", "## Per cancer type (survival; C-index on that type's test patients)", "",
                  markdown(pd.concat(figure_rows, ignore_index=True))]  # fmt: skip
    lines += [
        "",
        "## Unconditional generation (seed 004, Table 3)",
        "",
        "Samples drawn with every condition masked vs the training patients' `meth` latents (standardised); "
        f"mean and SD over {args.runs} runs; `held-out patients`: real validation + test latents, the reference.",
        "",
        markdown(privacy[[c for c in columns if c in privacy.columns]]),
        "",
        f"![unconditional]({privacy_png.name})",
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
        "",
    ]
    out = RESULTS / f"{stem}.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", default="synthetic")
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--patients", type=int, default=1200)
    parser.add_argument("--genes", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="diffusion timesteps T")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--vae-epochs", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--per-repeat", type=int, default=5)
    parser.add_argument("--random-orders", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
