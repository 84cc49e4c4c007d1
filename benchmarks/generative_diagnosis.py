"""Why the generative imputers score low on the synthetic cohort: how much the conditions can explain, and what the
diffusion learns from them, against the number of patients.

Run from the project root (prints Markdown)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/generative_diagnosis.py --patients 600 1500

Data: :func:`benchmarks.generative_table.synthetic` (``synthetic_cohort`` with the planted unpredictable subgroup,
``unpredictable_noise=2``; latent = planted truth, target ``meth`` = the observed 6-d methylation state). For each
cohort size, on the same patient split (training patients only for every fit):

- **ridge**: ridge (penalty by efficient leave-one-out on the training patients) from each condition, standardised
  exactly as the network sees it, to the target: how much the conditions explain linearly (test R^2);
- **calibrated sampler**: what a sampler of the true conditional with the ridge's information would score:
  ``2 R^2 - 1`` per generation, ``R^2 - (1 - R^2) / 10`` for the mean of 10 generations, ``1 - R^2`` variance;
- **LatentDiffusion**: one single-condition model per condition (the table script's widths: MLP 2 x 64, T = 50,
  <= 300 epochs, early stopping every 10 with patience 10, batch 32), R^2 per generation (mean over 10), R^2 of
  the mean of 10 generations and the output variance (% of the training variance), on the training AND the test
  patients (does it learn the condition at all, or overfit?);
- **copy control**: the same model conditioned on a slice that is a noisy copy (noise SD 0.3) of 4 of the 6 target
  dimensions: the machinery (alignment, normalisation, schedule, un-normalisation) recovers a strong signal.
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import numpy as np
import torch
from generative_table import synthetic
from sklearn.linear_model import RidgeCV

from cfmd.metrics import multivariate_r2
from cfmd.models import LatentDiffusion

WIDTHS = {"n_hidden": 64, "n_layers": 2, "num_train_timesteps": 50}
TRAIN = {"max_epochs": 300, "validate_every": 10, "batch_size": 32, "early_stopping_patience": 10}


def scores(model, mdata, rows, latent, generations: int, seed: int) -> tuple[float, float, float]:
    truth = latent[rows][:, model.module.target_index]
    samples, _ = model._generate(mdata, generations, rows, None, seed, None)
    per_generation = float(np.mean([multivariate_r2(truth, g) for g in samples]))
    variance = samples.var(0, ddof=1).sum(1) / model.training_variance().sum()
    return per_generation, multivariate_r2(truth, samples.mean(0)), 100 * float(variance.mean())


def run(args) -> None:
    torch.set_num_threads(args.threads)
    print("| patients (train / test) | condition | ridge test R^2 | calibrated sampler: per generation / mean of 10 / "
          "variance | diffusion train: per generation / mean of 10 / variance | diffusion test: per generation / "
          "mean of 10 / variance | training s |")  # fmt: skip
    print("|---|---|---:|---|---|---|---:|")
    for n_patients in args.patients:
        mdata, _, (scale, layer) = synthetic(SimpleNamespace(patients=n_patients, genes=args.genes, seed=args.seed))
        latent = np.asarray(mdata.obsm["X_structured"]).copy()
        # the copy control: the 'pathway' slice replaced by a noisy copy of 4 of the 6 target dimensions
        rng = np.random.default_rng(args.seed)
        control = latent.copy()
        control[:, :4] = latent[:, 4:8] + 0.3 * rng.standard_normal((latent.shape[0], 4))
        runs = [(c, latent) for c in args.conditions] + (
            [] if args.no_control else [("copy of 4 target dims", control)]
        )
        for condition, values in runs:
            mdata.obsm["X_structured"] = values.astype(np.float32)
            name = "pathway" if condition.startswith("copy") else condition
            LatentDiffusion.setup_mudata(mdata, rna_scale=scale, rna_layer=layer)
            model = LatentDiffusion(mdata, target="meth", conditions=[name], split_key="cfmd_split", seed=args.seed,
                                    rna_components=args.rna_components, **WIDTHS)  # fmt: skip
            split = model.split_indices()
            train_rows, test_rows = split["train"], split["test"]
            start = time.perf_counter()
            model.train(**TRAIN)
            seconds = time.perf_counter() - start
            model.module.eval()

            def design(rows, model=model, name=name, mdata=mdata):
                return model._inputs_for(mdata, rows, [name])["conditions"][name].numpy()

            index = model.module.target_index
            ridge = RidgeCV(alphas=np.logspace(-3, 5, 33)).fit(design(train_rows), values[train_rows][:, index])
            r2 = multivariate_r2(values[test_rows][:, index], ridge.predict(design(test_rows)))
            ideal = f"{2 * r2 - 1:.2f} / {r2 - (1 - r2) / 10:.2f} / {100 * (1 - r2):.0f}%"
            on_train = scores(model, mdata, train_rows, values, args.generations, args.seed)
            on_test = scores(model, mdata, test_rows, values, args.generations, args.seed)
            print(
                f"| {n_patients} ({len(train_rows)} / {len(test_rows)}) | {condition} | {r2:.3f} | {ideal} | "
                f"{on_train[0]:.2f} / {on_train[1]:.2f} / {on_train[2]:.0f}% | "
                f"{on_test[0]:.2f} / {on_test[1]:.2f} / {on_test[2]:.0f}% | {seconds:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[600, 1500])
    parser.add_argument("--conditions", nargs="+", default=["rna", "cancer_type"])
    parser.add_argument("--genes", type=int, default=300)
    parser.add_argument("--rna-components", type=int, default=None, help="width of the 'rna' condition (None: genes)")
    parser.add_argument("--no-control", action="store_true", help="skip the copy control")
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    run(parser.parse_args())


if __name__ == "__main__":
    main()
