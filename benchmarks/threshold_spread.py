"""Spread of the StructuredVAE quality figures that ``tests/models/test_structured_vae.py`` asserts, over training seeds.

The test's thresholds are set from this table (see the comment above the test): each figure's minimum over the
seeds, less a margin, so that a new dependency release (which moves the numbers like a new seed does) does not
break the test while a real regression (a slice that stops meaning what it says) still does.

    python benchmarks/threshold_spread.py --seeds 0 1 2 3 4

Prints one Markdown table (a row per figure, a column per seed, min / median / max) and writes it to
``--out`` (default ``threshold_spread.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, Ridge

import cfmd
from cfmd import LatentLayout


def held_out_r2(Z, Y, train, test):
    pred = Ridge(alpha=1e-2).fit(Z[train], Y[train]).predict(Z[test])
    return 1 - ((Y[test] - pred) ** 2).sum() / ((Y[test] - Y[test].mean(0)) ** 2).sum()


def figures(seed: int) -> dict[str, float]:
    """The figures the test asserts, for one training seed (the test's cohort and split)."""
    mdata = cfmd.datasets.synthetic_cohort(n_patients=800, n_genes=1000, n_cancer_types=3, seed=7)
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.fit_latent(mdata, max_epochs=100, seed=seed, train_kwargs={"enable_progress_bar": False})
    split = mdata.obs["cfmd_split"].astype(str).to_numpy()
    train = np.flatnonzero(np.isin(split, ["train", "validation"]))
    test = np.flatnonzero(split == "test")
    layout = LatentLayout.cfmd328()
    full, rna_only = mdata.obsm["X_structured"], mdata.obsm["X_structured_rna_only"]
    truth = {k: np.asarray(mdata.obsm[f"truth_{k}"]) for k in ("meth_state", "cnv", "ctx", "pathway")}

    def r2(latent, slice_name, target):
        return held_out_r2(layout.take(latent, slice_name), truth[target], train, test)

    out = {
        "r2 meth slice -> meth state": r2(full, "meth", "meth_state"),
        "r2 pathway slice -> meth state": r2(full, "pathway", "meth_state"),
        "r2 cnv slice -> meth state": r2(full, "cnv", "meth_state"),
        "r2 cnv slice -> cnv": r2(full, "cnv", "cnv"),
        "max r2 other slice -> cnv": max(r2(full, s, "cnv") for s in ("meth", "pathway", "residual")),
        "r2 ctx slice -> ctx": r2(full, "ctx", "ctx"),
        "r2 rna-only meth slice -> meth state": r2(rna_only, "meth", "meth_state"),
        "r2 rna-only cnv slice -> cnv": r2(rna_only, "cnv", "cnv"),
    }
    pathway = layout["pathway"]
    own, other = [], []
    for k in range(50):
        block = full[:, pathway.group_slice(k)]
        pred = LinearRegression().fit(block[train], truth["pathway"][train, k]).predict(block[test])
        own.append(np.corrcoef(pred, truth["pathway"][test, k])[0, 1])
        j = (k + 17) % 50
        pred = LinearRegression().fit(block[train], truth["pathway"][train, j]).predict(block[test])
        other.append(np.corrcoef(pred, truth["pathway"][test, j])[0, 1])
    out["median r own pathway block"] = float(np.median(own))
    out["median r other pathway block"] = float(np.median(other))
    # the differences the test asserts (computed from the rows above)
    out["r2 meth - pathway slice -> meth state"] = (
        out["r2 meth slice -> meth state"] - out["r2 pathway slice -> meth state"]
    )
    out["r2 meth - cnv slice -> meth state"] = out["r2 meth slice -> meth state"] - out["r2 cnv slice -> meth state"]
    out["r2 cnv slice - max other -> cnv"] = out["r2 cnv slice -> cnv"] - out["max r2 other slice -> cnv"]
    out["median r own - other pathway block"] = out["median r own pathway block"] - out["median r other pathway block"]
    out["full - rna-only, meth slice -> meth state"] = (
        out["r2 meth slice -> meth state"] - out["r2 rna-only meth slice -> meth state"]
    )
    out["full - rna-only, cnv slice -> cnv"] = out["r2 cnv slice -> cnv"] - out["r2 rna-only cnv slice -> cnv"]
    out["|r| prolif"] = abs(np.corrcoef(full[test, 0], mdata.obs["truth_prolif"].to_numpy()[test])[0, 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path("threshold_spread.md"))
    args = parser.parse_args()
    columns = {}
    for seed in args.seeds:
        start = time.perf_counter()
        columns[f"seed {seed}"] = figures(seed)
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(columns)
    table["min"], table["median"], table["max"] = table.min(axis=1), table.median(axis=1), table.max(axis=1)
    text = table.to_markdown(floatfmt=".3f")
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
