"""Seed 004's Table 1 on a cfmd cohort: R^2 (mean +- SD over generations) and output variance per target x
conditioning set x method, plus whether the uncertainty tracks the error.

Run from the project root (one command; prints Markdown)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/generative_table.py                 # small settings
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/generative_table.py --cohort tcga_lihc_360

Cohorts: ``synthetic`` (``cfmd.datasets.synthetic_cohort`` with the planted unpredictable subgroup; its latent is
the planted truth: pathway (4 of the 50 pathway factors), meth (the 6-d methylation state the methylation was
generated from), cnv (4 CNV factors); RNA-only patients have none) or a real cohort folder under
``--shared/cohorts`` read with :func:`cfmd.datasets.read_xena` (LIHC: RNA, methylation, CNV), with the latent
fitted by :func:`cfmd.tl.fit_latent` on the training patients.

For every target slice: one multi-condition :class:`~cfmd.models.LatentDiffusion` (trained with random condition
masks) and one :class:`~cfmd.models.CoherentDenoising` ensemble (one single-condition member per condition) are
trained on the training split (patient-disjoint 80/10/10 from :func:`cfmd.tl.split_patients`); conditions: RNA,
cancer type (synthetic only; LIHC is one type) and the other slices. Methods, as the seed's columns:
*single-condition* = the ensemble restricted to that condition's member (that member alone is the seed's
single-condition model), *multi-condition* = the LatentDiffusion with the other conditions masked, *Coherent
Denoising* = the ensemble on the set (sets of >= 2 conditions). Scores on the test patients only:

- R^2: multivariate (variance-weighted) R^2 of each of ``--generations`` generated test sets (one sample per
  patient per generation) against the true target; mean +- SD over generations (the seed's protocol; a sampler
  of the true conditional scores about ``2 R^2_opt - 1`` here, negative when the conditions explain less than
  half of the variance); and the R^2 of the mean of the generations (what ``cfmd.tl.generate`` writes);
- variance: the per-patient variance across generations summed over the slice, divided by the training patients'
  variance summed over it, averaged over test patients, in % (the seed's parenthesised numbers);
- rho: Spearman correlation between that per-patient variance and the squared error of the mean of the
  generations (does the uncertainty mean something?); and, for the synthetic cohort, the ratio of the mean
  variance in the planted unpredictable subgroup to the rest.

Reference row per target x conditioning set: **ridge** from the same conditions, as the networks see them
(training-split standardised; masked conditions left out), to the target, fitted on the training patients only
(penalty by scikit-learn's efficient leave-one-out over the training patients), scored on the same test patients.
It says how much the conditions can explain linearly: a calibrated sampler of the true conditional carrying the
ridge's information scores about ``2 R^2 - 1`` per generation and ``R^2 - (1 - R^2) / n`` for the mean of ``n``
generations (printed as "calibrated sampler" next to it).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

import cfmd
from cfmd.metrics import multivariate_r2
from cfmd.models import CoherentDenoising, LatentDiffusion


def attach_truth_latent(mdata) -> None:
    """The synthetic cohort's planted truth as its latent: pathway (4 factors), meth (the 6-d methylation state as
    measured), cnv (4 factors); patients without methylation get none (all-NaN rows)."""
    has = mdata.obs_names.isin(mdata["meth"].obs_names)
    latent = np.concatenate(
        [mdata.obsm["truth_pathway"][:, :4], mdata.obsm["truth_meth_observed"], mdata.obsm["truth_cnv"][:, :4]], 1
    ).astype(np.float32)
    latent[~has] = np.nan
    mdata.obsm["X_structured"] = latent
    cfmd.LatentLayout.from_sizes({"pathway": (4, "geneformer"), "meth": (6, "zero"), "cnv": (4, "zero")}).write(
        mdata, "X_structured"
    )


def synthetic(args):
    mdata = cfmd.datasets.synthetic_cohort(
        n_patients=args.patients, n_genes=args.genes, seed=args.seed, unpredictable_noise=2.0, protein_sequences=False
    )
    attach_truth_latent(mdata)
    cfmd.tl.split_patients(mdata, seed=args.seed)
    return mdata, ["pathway", "meth", "cnv"], ("counts", None)


def real(args):
    """A real cohort read as ``benchmarks/real_cohorts.py`` does; the latent fitted on the training patients."""
    from real_cohorts import load_with_small_latent

    mdata, rna_args, modalities = load_with_small_latent(
        args.cohort, Path(args.shared) / "cohorts", fractions=None, seed=args.seed, vae_epochs=args.vae_epochs
    )
    layout = cfmd.LatentLayout.from_mudata(mdata, "X_structured")
    return mdata, [s for s in modalities if s in layout], (rna_args["rna_scale"], rna_args["rna_layer"])


def ridge_reference(model, mdata, subset, train_rows, test_rows, latent) -> float:
    """Test R^2 of a ridge from ``subset`` (standardised as the network sees it) to the target, fit on train only."""

    def design(rows):
        data = model._inputs_for(mdata, rows, subset)
        return np.hstack([data["conditions"][c].numpy() for c in subset])

    index = model.module.target_index
    ridge = RidgeCV(alphas=np.logspace(-3, 5, 33)).fit(design(train_rows), latent[train_rows][:, index])
    return multivariate_r2(latent[test_rows][:, index], ridge.predict(design(test_rows)))


def run(args) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    mdata, targets, (scale, layer) = synthetic(args) if args.cohort == "synthetic" else real(args)
    layout = cfmd.LatentLayout.from_mudata(mdata, "X_structured")
    has_type = "cancer_type" in mdata.obs and mdata.obs["cancer_type"].nunique() > 1
    widths = {"n_hidden": args.hidden, "n_layers": args.layers, "num_train_timesteps": args.steps}
    train = {
        "max_epochs": args.epochs,
        "validate_every": 10,
        "batch_size": args.batch_size,
        "early_stopping_patience": args.patience,
    }
    latent = np.asarray(mdata.obsm["X_structured"])
    rows_out, rho_out = [], []
    if args.targets:
        unknown = sorted(set(args.targets) - set(targets))
        if unknown:
            raise SystemExit(f"--targets {unknown} not among the cohort's slices {targets}")
        targets = [t for t in targets if t in args.targets]
    for target in targets:
        others = [s.name for s in layout if s.name != target]
        conditions = ["rna"] + (["cancer_type"] if has_type else []) + others
        common = {"target": target, "conditions": conditions, "split_key": "cfmd_split", "seed": args.seed,
                  "rna_components": args.rna_components}  # fmt: skip
        LatentDiffusion.setup_mudata(mdata, rna_scale=scale, rna_layer=layer)
        multi = LatentDiffusion(mdata, **common, **widths)
        multi.train(**train)
        CoherentDenoising.setup_mudata(mdata, rna_scale=scale, rna_layer=layer)
        ensemble = CoherentDenoising(mdata, **common, **widths)
        ensemble.train(**train)
        test = np.sort(mdata.obs_names.get_indexer(multi.split_["test"]))
        train_rows = np.sort(mdata.obs_names.get_indexer(multi.split_["train"]))
        index = multi.module.target_index
        truth = latent[test][:, index]
        train_var = multi.training_variance().sum()
        sets = [[c] for c in conditions] + [conditions]
        for subset in sets:
            label = "+".join(subset) if subset != conditions else "all"
            methods = [("single-condition", ensemble)] if len(subset) == 1 else [("Coherent Denoising", ensemble)]
            methods.insert(0, ("multi-condition", multi))
            r2_ridge = ridge_reference(multi, mdata, subset, train_rows, test, latent)
            n_gen = args.generations
            rows_out.append((target, label, "ridge (reference)", r2_ridge, float("nan"), r2_ridge, 0.0, float("nan")))
            rows_out.append((target, label, f"calibrated sampler (expected from ridge; mean of {n_gen})",
                             2 * r2_ridge - 1, float("nan"), r2_ridge - (1 - r2_ridge) / n_gen, float("nan"),
                             float("nan")))  # fmt: skip
            for name, model in methods:
                samples, stats = model._generate(mdata, args.generations, test, subset, args.seed, None)
                r2 = [multivariate_r2(truth, g) for g in samples]
                var = samples.var(0, ddof=1).sum(1) / train_var
                err = ((samples.mean(0) - truth) ** 2).sum(1)
                rho = spearmanr(var, err).statistic
                rej = f" (rej. {stats['rejection_rate']:.2f})" if stats else ""
                r2_mean = multivariate_r2(truth, samples.mean(0))
                rows_out.append((target, label, name + rej, np.mean(r2), np.std(r2), r2_mean, 100 * var.mean(), rho))
                if subset == conditions and "truth_unpredictable" in mdata.obs:
                    flag = mdata.obs["truth_unpredictable"].to_numpy()[test]
                    ratio = var[flag].mean() / var[~flag].mean() if flag.any() and (~flag).any() else float("nan")
                    rho_out.append((target, name, rho, ratio))
    print(
        f"\n## Seed 004 Table 1 on `{args.cohort}` ({mdata.n_obs} patients; test {len(test)}; T = {args.steps}; "
        f"MLP {args.layers} x {args.hidden}; <= {args.epochs} epochs, batch {args.batch_size}; "
        f"{args.generations} generations; "
        f"{time.perf_counter() - start:.0f} s)\n"
    )
    print(
        "| target | conditions | method | R^2 per generation (mean +- SD) | R^2 of the mean | variance (% of data) "
        "| Spearman(var, sq. error) |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for target, label, name, mean, sd, r2_mean, var, rho in rows_out:
        spread = f"{mean:.3f} +- {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"
        var_text = f"{var:.1f}%" if np.isfinite(var) else "-"
        rho_text = f"{rho:.2f}" if np.isfinite(rho) else "-"
        print(f"| {target} | {label} | {name} | {spread} | {r2_mean:.3f} | {var_text} | {rho_text} |")
    if rho_out:
        print("\nPlanted unpredictable subgroup (all conditions; mean variance subgroup / rest):\n")
        print("| target | method | Spearman(var, sq. error) | subgroup / rest variance |")
        print("|---|---|---:|---:|")
        for target, name, rho, ratio in rho_out:
            print(f"| {target} | {name} | {rho:.2f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", default="synthetic", help="'synthetic' or a folder name under --shared/cohorts")
    parser.add_argument("--shared", default=os.environ.get("CFMD_SHARED_DIR", "../shared"))
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--genes", type=int, default=300)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3000, help="maximum epochs (early stopping decides)")
    parser.add_argument("--patience", type=int, default=10, help="validation checks (every 10 epochs)")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size (the seed's grid: 64, 128)")
    parser.add_argument("--vae-epochs", type=int, default=50)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--rna-components", type=int, default=None, help="width of the 'rna' condition (None: genes)")
    parser.add_argument("--targets", nargs="+", default=None, help="target slices (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    run(parser.parse_args())


if __name__ == "__main__":
    main()
