"""The paper's Tables 1-3 and the leave-one-chromosome-out audit on a synthetic cohort, on CPU.

Run from the project root::

    .venv/bin/python benchmarks/paper_tables.py                       # 3,000 patients, 3 seeds, strict LOCO
    .venv/bin/python benchmarks/paper_tables.py --patients 600 --seeds 42 --max-epochs 20 --loco fast   # quick

Pipeline: ``synthetic_cohort`` -> ``split_patients`` (80/10/10 by cancer type) -> ``fit_latent`` (StructuredVAE
trained without the test patients) -> ``benchmark`` (every method of Tables 1-3, each seed) -> ``loco_audit``.

Teachers: the cohort's planted teacher signals (``rna.obsm['transcriptomic_context']`` for Geneformer,
``rna.varm['structural_features']`` for ESM-2; see ``cfmd.datasets.synthetic_cohort``). Tiny random checkpoints
carry no information, so this measures whether CFMD distils what informative teachers know, not what real
Geneformer / ESM-2 weights would give.

CPU budget: the Regional Methylation Decoder runs with d_model 64 and feed-forward 256 (the paper: 256 / 1024;
4 heads, 2 layers and the 64-wide gene MLP kept) so that 3 seeds x 10 methods and 47 LOCO models fit in a few
hours on 2 cores; ``--paper-size-decoder`` restores the paper's widths. Everything else follows the paper's
protocol (AdamW 3e-4, weight decay 1e-4, 10 warm-up epochs + cosine, batch 64, early stopping patience 40,
``--max-epochs`` cap). The numbers come from the code; nothing is tuned towards the paper's ordering.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cfmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--cancer-types", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 123, 456])
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--vae-epochs", type=int, default=150)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--loco", choices=["strict", "fast", "none"], default="strict")
    parser.add_argument("--loco-epochs", type=int, default=60, help="epoch cap of each of the 47 LOCO models")
    parser.add_argument(
        "--lr", type=float, default=None, help="learning rate of every trained method (default: the paper's 3e-4)"
    )
    parser.add_argument("--paper-size-decoder", action="store_true")
    parser.add_argument("--skip-benchmark", action="store_true", help="only the LOCO audit (e.g. in a second process)")
    parser.add_argument("--out", default="paper_tables_output")
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", level=logging.WARNING)
    logging.getLogger("cfmd").setLevel(logging.INFO)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rmd = {} if args.paper_size_decoder else {"d_model": 64, "d_feedforward": 256}
    train_kwargs = {} if args.lr is None else {"lr": args.lr}
    timings = {}
    start = time.perf_counter()
    mdata = cfmd.datasets.synthetic_cohort(
        n_patients=args.patients, n_genes=args.genes, n_cancer_types=args.cancer_types, seed=0
    )
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.fit_latent(mdata, max_epochs=args.vae_epochs, seed=0, train_kwargs={"enable_progress_bar": False})
    timings["cohort_and_vae_s"] = time.perf_counter() - start

    if not args.skip_benchmark:
        start = time.perf_counter()
        result = cfmd.tl.benchmark(
            mdata,
            seeds=args.seeds,
            geneformer_key="transcriptomic_context",
            gene_embedding_key="structural_features",
            max_epochs=args.max_epochs,
            cfmd_kwargs={"rmd_kwargs": rmd},
            train_kwargs=train_kwargs,
            n_boot=args.n_boot,
        )
        timings["benchmark_s"] = time.perf_counter() - start
        cfmd.tl.write_benchmark(result, out, overwrite=True)
        for name in ("table1", "table2", "table3"):
            print(f"\n{name}\n{cfmd.tl.format_markdown(result[name])}", flush=True)

    if args.loco != "none":
        start = time.perf_counter()
        cfmd.tl.loco_audit(
            mdata,
            mode=args.loco,
            max_epochs=args.loco_epochs,
            cfmd_kwargs={"rmd_kwargs": rmd},
            train_kwargs=train_kwargs,
        )
        timings["loco_s"] = time.perf_counter() - start
        loco = mdata.uns["cfmd_loco"]
        loco["per_chromosome"].to_csv(out / "loco_per_chromosome.csv", index=False)
        (out / "loco_summary.json").write_text(json.dumps(loco["summary"], indent=2, default=float))
        print("\nLOCO per chromosome\n" + cfmd.tl.format_markdown(loco["per_chromosome"]))
        print("LOCO summary " + json.dumps(loco["summary"], indent=2, default=float))
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    print("\nwall time (s): " + json.dumps({k: round(v, 1) for k, v in timings.items()}))
    mdata.write(out / "cohort_with_results.h5mu")


if __name__ == "__main__":
    main()
