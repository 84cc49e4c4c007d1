"""The README's figure, drawn from the tables ``paper_tables.py`` wrote.

Run from the project root after ``paper_tables.py``::

    .venv/bin/python benchmarks/readme_figure.py /tmp/paper/out --save docs/_static/readme_figure.png

Left: per-slice R^2 on held-out patients of CFMD and the baselines, for the slices CFMD imputes and the summaries
(``cfmd.pl.slice_r2`` on ``slices.csv``; the zero-masked ``ctx`` and ``cnv`` are in the tables). Right: the
reconstruction-utility plane (``cfmd.pl.reconstruction_utility`` on Table 3). Only plotting happens here; every
number comes from the CSV tables of the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

import cfmd


def main() -> None:
    """Draw the two panels side by side and save them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", type=Path, help="the --out directory of paper_tables.py (slices.csv, table3.csv)")
    parser.add_argument("--save", type=Path, default=Path("docs/_static/readme_figure.png"))
    args = parser.parse_args()

    slices = pd.read_csv(args.tables / "slices.csv")
    # the point-wise methylation MLP only predicts the meth slice: show it there only
    slices = slices[(slices["method"] != "pointwise_meth_mlp") | (slices["slice"] == "meth")]
    table3 = pd.read_csv(args.tables / "table3.csv")
    fig, (left, right) = plt.subplots(1, 2, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.3, 1]})
    methods = [m for m in ("cfmd", "pointwise_meth_mlp", "pesd", "ridge", "poe_rna_only") if m in set(slices["method"])]
    cfmd.pl.slice_r2(
        slices,
        methods=methods,
        slices=["prolif", "pathway", "residual", "meth", "macro", "full"],
        ax=left,
        title="Per-slice R\u00b2 on held-out patients",
    )
    cfmd.pl.reconstruction_utility(table3, ax=right)
    fig.text(0.01, 0.01, "synthetic cohort (benchmarks/paper_tables.py); bars: 95% bootstrap intervals", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    args.save.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.save, dpi=110)
    print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
