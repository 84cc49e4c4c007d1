"""Do the StructuredVAE's slices mean what the layout says? Held-out recovery of the synthetic cohort's truth.

Run from the project root::

    .venv/bin/python benchmarks/vae_semantics.py                 # 800 patients x 1,000 genes, 100 epochs
    .venv/bin/python benchmarks/vae_semantics.py --patients 3000 --genes 2000 --epochs 150

The cohort is split 80/10/10 (``cfmd.tl.split_patients``); the VAE never sees the test patients. For each slice,
a ridge regression from the slice (fitted on train + validation patients) predicts a planted factor group of the
test patients; the table gives the held-out R^2. Pathway blocks: the median over the 50 Hallmark blocks of the
correlation between a block's 4 dimensions (linear fit) and its own planted pathway activity, next to the same
for a mismatched pathway. The last rows compare the RNA-only posterior with the full posterior.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge

import cfmd


def held_out_r2(Z, Y, train, test) -> float:
    pred = Ridge(alpha=1e-2).fit(Z[train], Y[train]).predict(Z[test])
    return float(1 - ((Y[test] - pred) ** 2).sum() / ((Y[test] - Y[test].mean(0)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    mdata = cfmd.datasets.synthetic_cohort(
        n_patients=args.patients, n_genes=args.genes, n_cancer_types=3, seed=args.seed
    )
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.fit_latent(mdata, max_epochs=args.epochs, seed=0, train_kwargs={"enable_progress_bar": False})
    split = mdata.obs["cfmd_split"].astype(str).to_numpy()
    train, test = np.flatnonzero(np.isin(split, ["train", "validation"])), np.flatnonzero(split == "test")
    layout = cfmd.LatentLayout.cfmd328()
    full, rna_only = mdata.obsm["X_structured"], mdata.obsm["X_structured_rna_only"]
    truths = {k: np.asarray(mdata.obsm[f"truth_{k}"]) for k in ("meth_state", "cnv", "pathway", "ctx", "residual")}
    print(f"\nHeld-out R^2 of planted factors from each slice ({len(test)} test patients, {args.epochs} epochs)")
    print(f"{'slice':<10}" + "".join(f"{k:>12}" for k in truths))
    for s in layout.names:
        print(
            f"{s:<10}" + "".join(f"{held_out_r2(layout.take(full, s), y, train, test):>12.3f}" for y in truths.values())
        )
    own, other = [], []
    pathway = layout["pathway"]
    for k in range(50):
        block = full[:, pathway.group_slice(k)]
        for target, store in ((k, own), ((k + 17) % 50, other)):
            y = truths["pathway"][:, target]
            pred = LinearRegression().fit(block[train], y[train]).predict(block[test])
            store.append(np.corrcoef(pred, y[test])[0, 1])
    print(
        f"\npathway blocks: median correlation with own pathway {np.median(own):.3f} (min {np.min(own):.3f}); "
        f"with a mismatched pathway {np.median(other):.3f}"
    )
    r = np.corrcoef(full[test, 0], mdata.obs["truth_prolif"].to_numpy()[test])[0, 1]
    print(f"prolif dimension vs planted proliferation: r = {r:.3f}")
    print("\nRNA-only vs full posterior (held-out R^2 of the planted factors from the slice)")
    for s, key in (("meth", "meth_state"), ("cnv", "cnv"), ("pathway", "pathway")):
        a = held_out_r2(layout.take(full, s), truths[key], train, test)
        b = held_out_r2(layout.take(rna_only, s), truths[key], train, test)
        print(f"{s:<8} full {a:.3f}   RNA-only {b:.3f}   gap {a - b:.3f}")


if __name__ == "__main__":
    main()
