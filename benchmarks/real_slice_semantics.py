"""Do the StructuredVAE's owned slices mean their modality on real TCGA cohorts? (issue 13)

The default path, one command::

    python benchmarks/real_slice_semantics.py                       # LIHC and BRCA, owned slices (default)
    python benchmarks/real_slice_semantics.py --compare             # also the model without ownership
    python benchmarks/real_slice_semantics.py --cohorts tcga_lihc_360 --epochs 100

For each cohort: ``cfmd.datasets.read_xena`` (RNA, methylation, CNV) -> ``cfmd.tl.split_patients`` (80/10/10,
patient-disjoint) -> ``cfmd.tl.fit_latent`` with its default layout (adapted to the data: pathway blocks without
genes, a proliferation slice without signature genes and the ``ctx`` slice without a ``mut`` modality are
dropped) -> ``cfmd.tl.slice_semantics`` on the test patients. Prints one Markdown table and writes it to ``--out``.

Criteria (the check of ``docs/concepts.md``): the owned slice predicts its modality at least 80% as well as a PCA
of the same width (``fraction_of_ceiling >= 0.8``); ridge on RNA predicts the slice no better than it predicts
the modality (+0.1 R^2); the RNA-only posterior matches the full posterior no better than that (+0.15).

The cohorts are read from ``$CFMD_SHARED_COHORTS`` or ``../shared/cohorts`` (relative to the repository).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cfmd
from cfmd.tl._slice_semantics import SEMANTICS_COLUMNS

#: The table's columns: cohort and model, then those of cfmd.tl.slice_semantics (less the modality, which the slice
#: names, and the training-side diagnostics).
COLUMNS = [
    "cohort",
    "model",
    *(
        c
        for c in SEMANTICS_COLUMNS
        if c not in ("modality", "n_train", "train_r2_slice_to_modality", "train_r2_rna_to_modality")
    ),
]


def cohort_dir() -> Path:
    if os.environ.get("CFMD_SHARED_COHORTS"):
        return Path(os.environ["CFMD_SHARED_COHORTS"])
    here = Path(__file__).resolve().parent.parent
    for parent in [here, *here.parents]:
        if (parent / "shared" / "cohorts").is_dir():
            return parent / "shared" / "cohorts"
    raise SystemExit("No shared/cohorts folder found; set CFMD_SHARED_COHORTS.")


def read(name: str, root: Path):
    """RNA (+ its fit_latent arguments), methylation and CNV of one cohort, patients with RNA only."""
    folder = root / name
    if name == "tcga_lihc_360":
        mdata = cfmd.datasets.read_xena(
            {
                "rna": folder / "rna_rsem_norm.tsv.gz",
                "meth": folder / "methylation_gene_beta.tsv.gz",
                "cnv": folder / "cnv_log2ratio_gene.tsv.gz",
            },
            survival=None,
            cancer_type="LIHC",
            scales={"rna": "normalized", "meth": "beta", "cnv": "log2_ratio"},
            patients_without_rna="drop",
        )
        mdata["rna"].layers["log2"] = np.log2(np.asarray(mdata["rna"].X, dtype=np.float64) + 1)
        return mdata, {"rna_layer": "log2", "rna_scale": "log2"}
    if name == "tcga_brca_348":
        mdata = cfmd.datasets.read_xena(
            {
                "rna": folder / "rna_agilent_log2ratio_unnamed.tsv.gz",
                "meth": folder / "methylation_probe_beta.tsv.gz",
                "cnv": folder / "cnv_log2ratio_gene.tsv.gz",
            },
            survival=None,
            cancer_type="BRCA",
            gene_level={"rna": False},
            scales={"rna": "log2_ratio", "meth": "beta", "cnv": "log2_ratio"},
            probe_aggregation={"meth": "bin"},
            patients_without_rna="drop",
        )
        return mdata, {"rna_scale": "zscore"}
    raise SystemExit(f"unknown cohort {name!r}")


def run(name: str, root: Path, *, ownership: bool, epochs: int, seed: int) -> tuple[pd.DataFrame, str]:
    mdata, rna_args = read(name, root)
    cfmd.tl.split_patients(mdata, seed=seed)
    vae = cfmd.tl.fit_latent(
        mdata,
        max_epochs=epochs,
        seed=seed,
        model_kwargs={"slice_ownership": ownership},
        train_kwargs={"enable_progress_bar": False},
        **rna_args,
    )
    cfmd.tl.slice_semantics(mdata)
    table = mdata.uns["cfmd_slice_semantics"]["table"].copy()
    table.insert(0, "model", "owned" if ownership else "no ownership")
    table.insert(0, "cohort", name)
    layout = cfmd.LatentLayout.from_mudata(mdata, "X_structured")
    info = (
        f"{name}: {mdata.n_obs} patients, features { ({m: mdata[m].n_vars for m in mdata.mod}) }, layout "
        f"{layout.n_dims} dims ({', '.join(f'{s.name} {s.dim}' for s in layout)}), "
        f"{mdata.uns['X_structured']['epochs_trained']} epochs, likelihoods {vae.likelihoods}"
    )
    return table, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohorts", nargs="+", default=["tcga_lihc_360", "tcga_brca_348"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="also fit with slice_ownership=False")
    parser.add_argument("--out", type=Path, default=Path("real_slice_semantics.md"))
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    root = cohort_dir()
    tables, notes = [], []
    start = time.perf_counter()
    for name in args.cohorts:
        for ownership in [True, False] if args.compare else [True]:
            t0 = time.perf_counter()
            table, info = run(name, root, ownership=ownership, epochs=args.epochs, seed=args.seed)
            tables.append(table)
            notes.append(f"- {info}; {'owned' if ownership else 'no ownership'}: {time.perf_counter() - t0:.0f} s")
            print(notes[-1], flush=True)
            print(table[COLUMNS].to_markdown(index=False, floatfmt=".3f"), flush=True)  # each fit as it ends
    result = pd.concat(tables, ignore_index=True)[COLUMNS]
    text = (
        result.to_markdown(index=False, floatfmt=".3f")
        + "\n\n"
        + "\n".join(notes)
        + f"\n\nTotal wall time {time.perf_counter() - start:.0f} s (seed {args.seed}).\n"
    )
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
