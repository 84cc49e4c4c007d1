"""CFMD cost on CPU with cached teacher embeddings: seconds per training epoch and imputation throughput.

Run from the project root::

    .venv/bin/python benchmarks/bench_cfmd.py                       # 10,000 patients x 2,000 genes
    .venv/bin/python benchmarks/bench_cfmd.py --patients 2000 --epochs 2 --repeats 3

Data: ``cfmd.datasets.synthetic_cohort`` with its planted teacher embeddings standing in for cached Geneformer
(256-d sample embeddings in ``rna.obsm``) and ESM-2 outputs (gene embeddings in ``rna.varm``), and a stand-in
latent (the cohort's ground-truth factors tiled to 328 dimensions; the cost does not depend on its values). The
patient split is 80/10/10, so an epoch covers 8,000 training patients at batch 64, followed by validation.

Baseline, measured in the same run: the PESD StudentEncoder (``cfmd.models.LatentRegressor``, a 2 x 1,024 MLP from
all genes to the full latent) trained with the same protocol and batch size. Rows for CFMD with the paper's
Regional Methylation Decoder widths (d_model 256, feed-forward 1,024) and with the CPU-sized one (64 / 256) used
by the demo. Seconds per epoch: median over the epochs after the first of each run, then median over
``--repeats`` runs. Imputation: patients per second of ``get_imputed_latent`` over all patients (median of
``--repeats``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lightning.pytorch as pl
import numpy as np
import torch

import cfmd


class EpochTimer(pl.Callback):
    """Wall time of every training epoch."""

    def __init__(self):
        self.times, self._start = [], None

    def on_train_epoch_start(self, trainer, module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.times.append(time.perf_counter() - self._start)


def cohort(patients: int, genes: int):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=patients, n_genes=genes, seed=0, protein_sequences=False)
    truth = np.hstack([np.asarray(mdata.obsm[k]) for k in ("truth_pathway", "truth_meth_state", "truth_cnv")])
    latent = np.resize(truth, (mdata.n_obs, 328)).astype(np.float32)
    latent[~mdata.obs_names.isin(mdata["meth"].obs_names)] = np.nan
    mdata.obsm["X_structured"] = latent
    cfmd.LatentLayout.cfmd328().write(mdata, "X_structured")
    return mdata


def measure(mdata, name: str, epochs: int) -> tuple[float, float, int]:
    timer = EpochTimer()
    if name.startswith("PESD"):
        cfmd.models.LatentRegressor.setup_mudata(mdata)
        model = cfmd.models.LatentRegressor(mdata, split_key=None)
    else:
        rmd = {} if "paper" in name else {"d_model": 64, "d_feedforward": 256}
        cfmd.models.CFMD.setup_mudata(
            mdata, geneformer_key="transcriptomic_context", gene_embedding_key="structural_features"
        )
        model = cfmd.models.CFMD(mdata, split_key=None, rmd_kwargs=rmd)
    model.train(max_epochs=epochs, early_stopping=False, enable_progress_bar=False, callbacks=[timer])
    epoch = statistics.median(timer.times[1:] if len(timer.times) > 1 else timer.times)
    start = time.perf_counter()
    model.get_imputed_latent(mdata, batch_size=512)
    throughput = mdata.n_obs / (time.perf_counter() - start)
    return epoch, throughput, int(sum(p.numel() for p in model.module.parameters() if p.requires_grad))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mdata = cohort(args.patients, args.genes)
    methods = ["PESD StudentEncoder (baseline)", "CFMD (CPU-sized decoder)", "CFMD (paper-size decoder)"]
    results = {m: [] for m in methods}
    for _ in range(args.repeats):
        for method in methods:  # interleaved so that load changes hit every method alike
            results[method].append(measure(mdata, method, args.epochs))
    base_epoch = statistics.median(r[0] for r in results[methods[0]])
    base_tp = statistics.median(r[1] for r in results[methods[0]])
    print(
        f"\nCFMD on CPU ({args.threads} thread(s)): {args.patients} patients x {args.genes} genes, batch 64, "
        f"{args.repeats} runs of {args.epochs} epochs; medians"
    )
    print(f"{'method':<34} {'s/epoch':>8} {'vs base':>8} {'impute pat/s':>13} {'vs base':>8} {'params':>11}")
    for method in methods:
        epoch = statistics.median(r[0] for r in results[method])
        tp = statistics.median(r[1] for r in results[method])
        print(
            f"{method:<34} {epoch:>8.2f} {epoch / base_epoch:>7.2f}x {tp:>13.0f} {tp / base_tp:>7.2f}x "
            f"{results[method][0][2]:>11,}"
        )


if __name__ == "__main__":
    main()
