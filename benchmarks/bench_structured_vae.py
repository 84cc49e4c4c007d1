"""StructuredVAE training cost on CPU: seconds per epoch and peak memory, against scvi-tools' SCVI.

Run from the project root::

    .venv/bin/python benchmarks/bench_structured_vae.py                    # 10,000 patients x 5,000 genes
    .venv/bin/python benchmarks/bench_structured_vae.py --patients 2000 --genes 2000 --epochs 3

Data: ``cfmd.datasets.synthetic_cohort`` (80% of patients with methylation, CNV and mutations). Each method
runs in its own fresh process (so peak memory is not shared): set-up, model construction and ``--epochs``
training epochs with batch size 64 (cfmd's default) and no validation split. Seconds per epoch is the median
over the epochs after the first (which includes data-loader start-up). Peak memory is the process's maximum
resident set size (``ru_maxrss``), data generation included, and "model + training" subtracts the resident size
measured just before the model was set up.

Baseline, measured in the same run: ``scvi.model.SCVI`` (default 1-layer, 128-unit, 10-d VAE) on the same RNA
counts and batch size: the standard scvi-tools VAE on the largest modality, i.e. what a user already runs.
The StructuredVAE trains two posteriors (joint and RNA-only) and decodes four modalities into a 328-d latent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(method: str, patients: int, genes: int, epochs: int, threads: int) -> dict:
    import lightning.pytorch as pl
    import torch

    import cfmd

    torch.set_num_threads(threads)
    mdata = cfmd.datasets.synthetic_cohort(n_patients=patients, n_genes=genes, seed=0, protein_sequences=False)
    rss_before = _rss_mb()

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.times, self._start = [], None

        def on_train_epoch_start(self, trainer, module):
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self._start)

    timer = EpochTimer()
    train = {
        "max_epochs": epochs,
        "batch_size": 64,
        "train_size": 1.0,
        "enable_progress_bar": False,
        "callbacks": [timer],
    }
    if method == "cfmd.StructuredVAE":
        cfmd.models.StructuredVAE.setup_mudata(mdata)
        model = cfmd.models.StructuredVAE(mdata)
    else:
        import scvi

        rna = mdata["rna"]
        scvi.model.SCVI.setup_anndata(rna)
        model = scvi.model.SCVI(rna)
    n_params = sum(p.numel() for p in model.module.parameters())
    model.train(**train)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "epoch_s": statistics.median(timer.times[1:] if len(timer.times) > 1 else timer.times),
        "peak_mb": peak,
        "model_mb": peak - rss_before,
        "n_params": n_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.patients, args.genes, args.epochs, args.threads)))
        return

    results = []
    for method in ("scvi.model.SCVI (baseline)", "cfmd.StructuredVAE"):
        cmd = [
            sys.executable, __file__, "--worker", method, "--patients", str(args.patients), "--genes", str(args.genes),
            "--epochs", str(args.epochs), "--threads", str(args.threads),
        ]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    print(
        f"\nStructuredVAE training on CPU: {args.patients} patients x {args.genes} genes, batch 64, "
        f"{args.threads} thread(s); median s/epoch over epochs 2..{args.epochs}"
    )
    print(f"{'method':<30} {'s/epoch':>9} {'vs base':>8} {'peak RSS MB':>12} {'model+train MB':>15} {'params':>11}")
    for r in results:
        print(
            f"{r['method']:<30} {r['epoch_s']:>9.2f} {r['epoch_s'] / base['epoch_s']:>7.2f}x {r['peak_mb']:>12.0f} "
            f"{r['model_mb']:>15.0f} {r['n_params']:>11,}"
        )


if __name__ == "__main__":
    main()
