"""Run every speed / memory benchmark in turn (``make bench``).

Run from the project root::

    .venv/bin/python benchmarks/run.py            # the full sizes (about 30-40 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/run.py --quick    # small sizes, a few minutes: checks that every benchmark runs
    .venv/bin/python benchmarks/run.py --only cfmd geneformer

Each benchmark runs in its own process (so peak-memory numbers do not mix) and prints its own table with the
ratios against the baseline it measures in the same run:

``geneformer``  ``cfmd.pp.geneformer`` vs Geneformer's ``EmbExtractor`` recipe (cells / s)
``esm``         ``cfmd.pp.esm_gene_embeddings`` vs fair-esm's ``extract.py`` recipe (residues / s)
``vae``         ``StructuredVAE`` vs ``scvi.model.SCVI`` (s / epoch, peak RSS)
``cfmd``        CFMD vs the PESD StudentEncoder (s / epoch, imputation patients / s)
``diffusion``   Coherent Denoising sampling vs the authors' per-member loop, and CFMD imputation (patients / s)

The Tables 1-3 reproduction (``paper_tables.py``) is a result, not a speed benchmark, and is run on its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: benchmark name -> (script, arguments at full size, arguments for --quick)
BENCHMARKS = {
    "geneformer": ("bench_geneformer.py", [], ["--cells", "8", "--repeats", "2"]),
    "esm": ("bench_esm.py", [], ["--proteins", "20", "--repeats", "2"]),
    "vae": ("bench_structured_vae.py", [], ["--patients", "1000", "--genes", "1000", "--epochs", "2"]),
    "cfmd": ("bench_cfmd.py", [], ["--patients", "1000", "--genes", "500", "--epochs", "2", "--repeats", "2"]),
    "diffusion": (
        "bench_diffusion.py",
        ["--patients", "20", "50", "200", "--hidden", "256", "64", "--repeats", "5"],
        ["--patients", "10", "--hidden", "64", "--repeats", "1", "--cohort", "120", "--genes", "300", "--epochs", "1"],
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; the exit status is the number of benchmarks that failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: check that every benchmark runs")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)

    failed = []
    for name in args.only or list(BENCHMARKS):
        script, full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, env=os.environ.copy(), check=False).returncode
        print(f"=== {name}: exit {status}, {time.perf_counter() - start:.0f} s", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
