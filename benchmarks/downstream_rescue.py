"""Does imputation help the clinic? Seed 004's Table 2 (``cfmd.tl.downstream_rescue``) on the synthetic cohort and
the real TCGA cohorts that have the modalities.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/downstream_rescue.py
        [--cohorts synthetic tcga_lihc_360] [--patients 500] [--genes 300] [--epochs 60] [--generative-epochs 300]
        [--vae-epochs 40] [--n-boot 2000] [--out benchmarks/results/downstream_rescue.md]

Per cohort: ``split_patients`` (70/10/20, so that the test split has enough events) -> ``fit_latent`` ->
``downstream_rescue`` with every imputer (zero-mask, ridge, PoE RNA-only, CFMD, multi-condition latent diffusion,
Coherent Denoising), each trained once on the training split. The downstream models (random forest + logistic
regression on cancer type; frozen Cox head + random survival forest on overall survival) are trained once on the
complete training patients and frozen. Missing-modality patterns: meth, cnv, both.

- ``synthetic``: :func:`cfmd.datasets.synthetic_cohort` (its planted Geneformer / ESM-2 stand-ins as teachers).
- ``tcga_lihc_360`` (``--shared/cohorts``): RNA + methylation + CNV + survival, one cancer type, so classification
  is not scored (survival only); CFMD without teachers, loaded and laid out as ``benchmarks/real_cohorts.py`` does.

Writes one Markdown file (and, next to it, ``downstream_rescue_<cohort>.png``: seed 004's Figure 3 drawn by
:func:`cfmd.pl.downstream_rescue`) with the Table-2-shaped tables (95% bootstrap CIs over test patients) and per-cancer-type
C-indices, as found.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
IMPUTERS = ["zero_mask", "ridge", "poe_rna_only", "cfmd", "diffusion", "coherent_denoising"]
GENERATIVE = {"n_hidden": 64, "n_layers": 2, "num_train_timesteps": 50}
QUIET = {"enable_progress_bar": False}


def synthetic(args):
    import cfmd

    mdata = cfmd.datasets.synthetic_cohort(
        n_patients=args.patients, n_genes=args.genes, seed=args.seed, protein_sequences=False
    )
    cfmd.tl.split_patients(mdata, fractions=(0.7, 0.1, 0.2), seed=args.seed)
    cfmd.tl.fit_latent(mdata, max_epochs=args.vae_epochs, seed=args.seed, train_kwargs=QUIET)
    return mdata, {
        "label_key": "cancer_type",
        "geneformer_key": "transcriptomic_context",
        "gene_embedding_key": "structural_features",
        "cfmd_kwargs": {"d_hidden": 128, "rmd_kwargs": {"d_model": 32, "d_feedforward": 64}},
        "patterns": ["meth", "cnv", ["meth", "cnv"]],
    }


def real(name, args):
    import cfmd

    sys.path.insert(0, str(HERE))
    from real_cohorts import NO_TEACHERS, build_layout, load

    mdata, rna_args = load(name)
    layout, roles, _ = build_layout(mdata)
    cfmd.tl.split_patients(mdata, fractions=(0.7, 0.1, 0.2), require_modalities=["meth", "cnv"], seed=args.seed)
    cfmd.tl.fit_latent(
        mdata, layout=layout, modalities={"meth": "meth", "cnv": "cnv"}, model_kwargs=roles,
        max_epochs=args.vae_epochs, seed=args.seed, train_kwargs=QUIET, **rna_args,
    )  # fmt: skip
    several = mdata.obs["cancer_type"].nunique() > 1
    return mdata, {
        "label_key": "cancer_type" if several else None,
        "geneformer_key": None,
        "gene_embedding_key": None,
        "cfmd_kwargs": {**NO_TEACHERS, "d_hidden": 128},
        "patterns": ["meth", "cnv", ["meth", "cnv"]],
        **rna_args,
    }


def run_cohort(name, args):
    import cfmd

    start = time.perf_counter()
    mdata, options = synthetic(args) if name == "synthetic" else real(name, args)
    fitted = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cfmd.tl.downstream_rescue(
            mdata, imputers=IMPUTERS, train_kwargs=QUIET,
            generative_kwargs={**GENERATIVE, "n_hidden": args.generative_hidden, "n_layers": args.generative_layers},
            max_epochs={"cfmd": args.epochs, "diffusion": args.generative_epochs,
                        "coherent_denoising": args.generative_epochs},
            n_boot=args.n_boot, seed=args.seed, **options,
        )  # fmt: skip
    result = mdata.uns["cfmd_downstream_rescue"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = Path(args.out).with_name(f"downstream_rescue_{name}.png")
    plt.close(cfmd.pl.downstream_rescue(mdata, save=figure, return_fig=True))
    events = int(mdata.obs["os_event"].to_numpy()[(mdata.obs["cfmd_split"] == "test").to_numpy()].sum())
    info = {
        "patients": mdata.n_obs,
        "test": result["settings"]["n_test"],
        "test_events": events,
        "layout": ", ".join(f"{s.name} {s.dim}" for s in cfmd.LatentLayout.from_mudata(mdata, "X_structured")),
        "latent_minutes": fitted / 60,
        "minutes": (time.perf_counter() - start) / 60,
    }
    return result, info


def _cell(value, low, high) -> str:
    if not np.isfinite(value):
        return "N/A"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]"


def _value(value, low, high) -> str:
    if not np.isfinite(value):
        return "N/A"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def markdown(results, args) -> str:
    lines = [
        "# Does imputation help the clinic? Downstream rescue (seed 004, Table 2)",
        "",
        f"`benchmarks/downstream_rescue.py --cohorts {' '.join(args.cohorts)} --patients {args.patients} --genes "
        f"{args.genes} --epochs {args.epochs} --generative-epochs {args.generative_epochs} "
        f"--generative-hidden {args.generative_hidden} --generative-layers {args.generative_layers} --vae-epochs {args.vae_epochs} --n-boot {args.n_boot} --seed "
        f"{args.seed}`. Downstream models trained once on the complete training patients (70% split) and frozen; "
        "scored on the test patients (20%) with 95% percentile intervals over "
        f"{args.n_boot} bootstrap resamples of them (paired: every condition on the same resamples). Drop = "
        "ablation - full (missing slices set to the training mean); gain = imputed - ablation. Imputers trained once "
        "on the training split, imputing from RNA (+ teachers, cancer type), never from the other observed modality.",
        "",
    ]
    for name, (result, info) in results.items():
        lines += [
            f"## {name}: {info['patients']} patients, {info['test']} test patients ({info['test_events']} deaths); "
            f"layout {info['layout']}; {info['minutes']:.1f} min ({info['latent_minutes']:.1f} for the latent)",
            "",
        ]
        table = result["table"]
        imputers = result["settings"]["imputers"]
        head = ["task", "model", "metric", "missing", "full", "cancer type only", "ablation", "drop from ablation"]
        head += [f"gain {m}" for m in imputers]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table.itertuples(index=False):
            r = row._asdict()
            cells = [r["task"], r["model"], r["metric"], r["pattern"]]
            cells += [_value(r[c], r[f"{c}_low"], r[f"{c}_high"]) for c in ("full", "cancer_type_only", "ablation")]
            cells.append(_cell(r["drop_from_ablation"], r["drop_from_ablation_low"], r["drop_from_ablation_high"]))
            cells += [_cell(r[f"gain_{m}"], r[f"gain_{m}_low"], r[f"gain_{m}_high"]) for m in imputers]
            lines.append("| " + " | ".join(cells) + " |")
        comparisons = result["comparisons"]
        gains = comparisons[comparisons["comparison"] != "drop_from_ablation"]
        above, below = gains[gains["delta_low"] > 0], gains[gains["delta_high"] < 0]
        significant = gains[gains["p_adjusted"] < 0.05]
        floor = 2 / (args.n_boot + 1)
        listed = "; ".join(
            f"{r.model} {r.metric} no {r.pattern} {r.comparison[5:]} {r.delta:+.3f} (p_adj {r.p_adjusted:.3f})"
            for r in above.itertuples()
        )
        lines += [
            "",
            f"Of {len(gains)} gains, {len(above)} have a 95% interval above 0 and {len(below)} below 0; "
            f"{len(significant)} have a Bonferroni-adjusted p < 0.05 (adjusted within each task x model x metric; "
            f"smallest raw bootstrap p with {args.n_boot} resamples: {floor:.4f}).",
            "",
            f"Gains with an interval above 0: {listed or 'none'}.",
            "",
        ]
        r2 = result["imputation_r2"].pivot(index="imputer", columns="pattern", values="r2")
        lines += [
            "Reconstruction of the missing slices on the test patients (multivariate R^2), next to the gains above:",
            "",
            "| imputer | " + " | ".join(f"no {p}" for p in r2.columns) + " |",
            "|" + "---|" * (1 + len(r2.columns)),
            *[f"| {m} | " + " | ".join(f"{v:.3f}" for v in r2.loc[m]) + " |" for m in imputers if m in r2.index],
            "",
        ]
        diverged = [m for m in imputers if m in r2.index and r2.loc[m].min() < -1]
        if diverged:
            lines += [
                f"Warning: {', '.join(diverged)} reconstruct the missing slices with R^2 < -1 (predictions far outside "
                "the data's range): their gains measure that failure, not what imputation can do.",
                "",
            ]
        per_type = result["per_cancer_type"]
        surv = per_type[(per_type["task"] == "survival") & (per_type["model"] == "cox_head")]
        if len(surv):
            pivot = surv.pivot_table(index=["pattern", "cancer_type"], columns="condition", values="value")
            counts = surv.groupby(["pattern", "cancer_type"])[["n_patients", "n_events"]].first()
            columns = ["full", "ablation", "cancer_type_only", *[f"imputed:{m}" for m in imputers]]
            lines += [
                "Per cancer type, frozen Cox head C-index (NaN below 5 events):",
                "",
                "| missing | cancer type | n (events) | " + " | ".join(columns) + " |",
                "|" + "---|" * (3 + len(columns)),
            ]
            for (pattern, cancer), values in pivot.iterrows():
                n, ev = counts.loc[(pattern, cancer)]
                cells = [
                    f"{values.get(c, np.nan):.3f}" if np.isfinite(values.get(c, np.nan)) else "N/A" for c in columns
                ]
                lines.append(f"| {pattern} | {cancer} | {int(n)} ({int(ev)}) | " + " | ".join(cells) + " |")
            lines.append("")
        for note in result["settings"]["notes"]:
            lines.append(f"Note: {note}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohorts", nargs="+", default=["synthetic", "tcga_lihc_360"])
    parser.add_argument("--patients", type=int, default=500, help="synthetic cohort size")
    parser.add_argument("--genes", type=int, default=300, help="synthetic cohort genes")
    parser.add_argument("--epochs", type=int, default=60, help="maximum epochs of CFMD (early stopping)")
    parser.add_argument(
        "--generative-epochs", type=int, default=300, help="maximum epochs of the diffusion models (early stopping)"
    )
    parser.add_argument("--generative-hidden", type=int, default=GENERATIVE["n_hidden"], help="noise-network width")
    parser.add_argument("--generative-layers", type=int, default=GENERATIVE["n_layers"], help="noise-network depth")
    parser.add_argument("--vae-epochs", type=int, default=40)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "downstream_rescue.md"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pd.set_option("display.width", 200)
    results = {}
    for name in args.cohorts:
        results[name] = run_cohort(name, args)
        print(f"{name}: {results[name][1]['minutes']:.1f} min", file=sys.stderr)
    text = markdown(results, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
