"""Cross-validated comparison of the imputers on every real TCGA cohort with RNA + another modality + survival.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/real_cohorts.py [--cohorts tcga_lihc_360 tcga_brca_348]
        [--cv 5] [--repeats 1] [--epochs 30] [--vae-epochs 100] [--out benchmarks/results/real_cohorts.md]

Default path per cohort: ``read_xena`` -> patients with survival -> ``split_patients`` (the VAE's split) ->
``fit_latent`` (layout from :func:`build_layout`) -> ``benchmark(cv=...)``. No teacher embeddings exist for these
cohorts: CFMD runs as its teacher ablation (``use_geneformer=False, use_esm=False``, ``ablation_fill="rna"``).
Prints one Markdown table (cohort x method x slice R^2 with CI, C-index with CI) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
COHORTS = HERE.parent.parent / "shared" / "cohorts"

#: name -> files (modality -> (stem, scale)), gene-level overrides, RNA scale for the models
SPECS = {
    "tcga_lihc_360": {
        "files": {
            "rna": ("rna_rsem_norm", "normalized"),
            "meth": ("methylation_gene_beta", "beta"),
            "cnv": ("cnv_log2ratio_gene", "log2_ratio"),
        },
        "gene_level": None,
        "log2_layer": True,
    },
    "tcga_brca_348": {
        "files": {
            "rna": ("rna_agilent_log2ratio_unnamed", "other"),
            "meth": ("methylation_probe_beta", "beta"),
            "cnv": ("cnv_log2ratio_gene", "log2_ratio"),
        },
        "gene_level": {"rna": False, "meth": False},
        "log2_layer": False,
    },
}
METHODS = ["zero_mask", "cfmd", "pointwise_meth_mlp", "ridge", "pesd", "matched_mlp", "cfmd_auto"]
NO_TEACHERS = {"use_geneformer": False, "use_esm": False, "ablation_fill": "rna"}


def load(name: str, root: Path = COHORTS):
    """Read cohort ``name`` (RNA, methylation, CNV, survival; patients with RNA and survival) and its RNA arguments."""
    import cfmd

    if name not in SPECS:
        raise SystemExit(f"unknown cohort {name!r}: expected one of {sorted(SPECS)}")
    spec, folder = SPECS[name], Path(root) / name
    mdata = cfmd.datasets.read_xena(
        {mod: folder / f"{stem}.tsv.gz" for mod, (stem, _) in spec["files"].items()},
        scales={mod: scale for mod, (_, scale) in spec["files"].items()},
        gene_level=spec["gene_level"],
        survival=folder / "survival_cdr.tsv",
        cancer_type=name.split("_")[1].upper(),
        on_missing_survival="keep_nan",
    )
    keep = mdata.obs["os_time"].notna().to_numpy() & mdata.obs_names.isin(mdata["rna"].obs_names)
    mdata = mdata[keep].copy()
    if spec["log2_layer"]:
        x = mdata["rna"].X
        mdata["rna"].layers["log2"] = np.log2(np.asarray(x.toarray() if hasattr(x, "toarray") else x) + 1)
        return mdata, {"rna_layer": "log2", "rna_scale": "log2"}
    return mdata, {"rna_layer": None, "rna_scale": "zscore"}  # array log2 ratios: centred, negative values


def load_with_small_latent(name: str, root: Path, *, fractions, seed: int, vae_epochs: int):
    """Cohort ``name`` split and given a small StructuredVAE latent (16-d ``rna_state``, ``meth``, ``cnv``).

    The latent of the generative benchmarks: the real cohorts' gene sets (LIHC's 353 alphabetical genes, BRCA's
    unnamed array genes) miss most Hallmark sets, so an unstructured RNA slice stands in for the pathways. The split
    is drawn first (``fractions`` or the default) and the latent is fitted on its training patients.
    """
    import cfmd

    mdata, rna_args = load(name, root)
    split = {} if fractions is None else {"fractions": fractions}
    cfmd.tl.split_patients(mdata, seed=seed, stratify=None, **split)  # one cancer type
    modalities = {m: m for m in ("meth", "cnv") if m in mdata.mod}
    cfmd.tl.fit_latent(
        mdata, max_epochs=vae_epochs, modalities=modalities, seed=seed,
        layout=cfmd.LatentLayout.from_sizes({"rna_state": (16, "rna"), "meth": (16, "zero"), "cnv": (16, "zero")}),
        model_kwargs={"pathway_slice": None, "prolif_slice": None, "residual_slice": None},
        train_kwargs={"enable_progress_bar": False}, **rna_args,
    )  # fmt: skip
    return mdata, rna_args, modalities


def build_layout(mdata):
    """The cohort's layout and the StructuredVAE roles it supports (the one place to swap for a layout helper).

    From the paper's layout: ``prolif`` needs proliferation-signature genes, ``pathway`` Hallmark genes (blocks
    without a gene are dropped, 4 dims each), ``ctx`` a mutation modality (absent: dropped); ``residual`` (16) is
    an RNA slice; ``meth`` (48) keeps the Regional Methylation Decoder when the RNA has chromosome positions and
    TME genes, else it is filled from RNA; ``cnv`` (32) is filled from RNA so that every method imputes it. "From
    RNA" is strategy ``"esm"`` run without the teacher: CFMD's projector on the standardised RNA.
    """
    import cfmd
    from cfmd.datasets import hallmark_gene_sets, proliferation_signature, tme_genes

    rna = mdata["rna"]
    symbols = rna.var["gene_symbol"].astype(str).to_numpy() if "gene_symbol" in rna.var else rna.var_names.to_numpy()
    has_chrom = "chromosome" in rna.var and rna.var["chromosome"].notna().any()
    blocks = [k for k, genes in hallmark_gene_sets().items() if np.isin(symbols, list(genes)).any()]
    plan = []
    if np.isin(symbols, proliferation_signature()).any():
        plan.append(("prolif", 1, "rna", ()))
    if blocks:
        plan.append(("pathway", 4 * len(blocks), "geneformer", tuple(blocks)))
    plan.append(("residual", 16, "esm", ()))
    regional = has_chrom and np.isin(symbols, tme_genes()).any()
    # without teachers an "esm" slice is CFMD's projector on the standardised RNA (ablation_fill="rna"); "rna"
    # would mean the proliferation head, which needs the signature's genes
    plan.append(("meth", 48, "regional_methylation" if regional else "esm", ()))
    plan.append(("cnv", 32, "esm", ()))
    slices, start = [], 0
    for name, dim, strategy, groups in plan:
        slices.append(cfmd.Slice(name, start, start + dim, strategy, groups=groups))
        start += dim
    names = [p[0] for p in plan]
    roles = {
        "prolif_slice": "prolif" if "prolif" in names else None,
        "pathway_slice": "pathway" if "pathway" in names else None,
        "regional_methylation_slice": "meth" if regional else None,
    }
    return cfmd.LatentLayout(slices), roles, regional


def run_cohort(name, *, cv, repeats, epochs, vae_epochs, n_boot):
    import cfmd

    t0 = time.perf_counter()
    mdata, rna_args = load(name)
    layout, roles, regional = build_layout(mdata)
    cfmd.tl.split_patients(mdata, require_modalities=["meth", "cnv"], seed=0)
    cfmd.tl.fit_latent(
        mdata, layout=layout, modalities={"meth": "meth", "cnv": "cnv"}, model_kwargs=roles, max_epochs=vae_epochs,
        seed=0, train_kwargs={"enable_progress_bar": False}, **rna_args,
    )  # fmt: skip
    methods = [m for m in METHODS if regional or m != "pointwise_meth_mlp"]
    result = cfmd.tl.benchmark(
        mdata, methods=methods, seeds=(42,), cv=cv, cv_repeats=repeats, max_epochs=epochs, n_boot=n_boot,
        geneformer_key=None, gene_embedding_key=None, cfmd_kwargs={**NO_TEACHERS, "d_hidden": 128},
        train_kwargs={"enable_progress_bar": False, "batch_size": 32}, **rna_args,
    )  # fmt: skip
    info = {
        "n": int(mdata.uns["cfmd_benchmark_cv"]["params"]["n_patients"]),
        "events": int(mdata.uns["cfmd_benchmark_cv"]["params"]["n_events"]),
        "layout": ", ".join(f"{s.name} {s.dim} ({s.strategy})" for s in layout),
        "seconds": time.perf_counter() - t0,
        "heads": mdata.uns["cfmd_benchmark_cv"]["survival_heads"],
    }
    return result, info


def _ci(v, lo, hi):
    if not np.isfinite(v):
        return "N/A"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) and np.isfinite(hi) else f"{v:.3f}"


def markdown(results, *, cv, repeats, epochs, vae_epochs) -> str:
    lines = [
        f"# Real TCGA cohorts: {cv}-fold CV x {repeats} repeat(s), pooled out-of-fold scores (95% bootstrap CI)",
        "",
        "CFMD without teachers (no Geneformer / ESM-2 for these cohorts): `use_geneformer=False, use_esm=False`, "
        "`ablation_fill='rna'`. The structured latent (target) is fitted once by `fit_latent` "
        f"({vae_epochs} epochs), not per fold; imputers ({epochs} epochs max, early stopping), normalisation, "
        "ridge penalties and survival heads are refitted in every fold. PoE RNA-only is not cross-validated (its "
        "VAE trained on every fold). Fold SD: spread of the per-fold R^2.",
        "",
    ]
    for name, (result, info) in results.items():
        lines.append(
            f"## {name}: {info['n']} patients, {info['events']} deaths; layout {info['layout']}; "
            f"{info['seconds'] / 60:.1f} min"
        )
        lines.append("")
        slices = result["slices"]
        table3 = result["table3"].set_index("method")
        folds = result["folds"]
        names = list(slices[slices["kind"] == "slice"]["slice"].unique())
        head = ["method", *[f"{s} R^2" for s in names], "full R^2", "C-index", "fold SD (slices)"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for method in slices["method"].unique():
            sub = slices[slices["method"] == method].set_index(["slice", "kind"])
            cells = [method]
            for s in names:
                row = sub.loc[(s, "slice")]
                cells.append(_ci(row["r2"], row["r2_low"], row["r2_high"]) if method != "zero_mask" else "N/A")
            if method == "pointwise_meth_mlp":
                cells += ["(meth only)", "—"]
            else:
                full = sub.loc[("full", "full")] if ("full", "full") in sub.index else None
                cells.append(_ci(full["r2"], full["r2_low"], full["r2_high"]) if method != "zero_mask" else "N/A")
                t = table3.loc[method]
                note = t.get("c_index_note", "")
                cells.append(f"N/A ({note})" if note else _ci(t["c_index"], t["c_index_low"], t["c_index_high"]))
            sd = folds[(folds["method"] == method) & (folds["kind"] == "slice")].groupby("slice")["r2"].std(ddof=1)
            cells.append(", ".join(f"{s} {sd.get(s, np.nan):.3f}" for s in names))
            lines.append("| " + " | ".join(cells) + " |")
        verdict = result["verdict"]
        if "verdict" in verdict:
            lines.append("")
            lines.append(
                "Per slice, CFMD minus ridge (paired bootstrap): "
                + "; ".join(
                    f"{r.slice}: {r.cfmd_minus_ridge:+.3f} [{r.cfmd_minus_ridge_low:+.3f}, {r.cfmd_minus_ridge_high:+.3f}] "
                    f"({r.verdict})"
                    for r in verdict.itertuples()
                )
            )
        students = result["students"]
        if len(students):
            lines.append("")
            picks = students.groupby("slice")["chosen"].agg(
                lambda x: ", ".join(f"{k} x{v}" for k, v in x.value_counts().items())
            )
            lines.append(
                "students='auto' choices per slice (folds): " + "; ".join(f"{k}: {v}" for k, v in picks.items())
            )
        heads = info["heads"]
        lines.append("")
        lines.append(
            "Survival heads per fold (penalty chosen by, non-zero coefficients): "
            + "; ".join(f"{r.penalty_by or r.note} {r.n_nonzero}" for r in heads.itertuples())
        )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohorts", nargs="+", default=list(SPECS))
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=30, help="max epochs of the imputers")
    parser.add_argument("--vae-epochs", type=int, default=100, help="epochs of the StructuredVAE (target)")
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "real_cohorts.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    import logging

    for logger_name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(logger_name).setLevel(logging.WARNING)
    missing = [c for c in args.cohorts if not (COHORTS / c).is_dir() or c not in SPECS]
    if missing:
        raise SystemExit(f"cohort(s) {missing} not found in {COHORTS} (known: {list(SPECS)})")
    results = {}
    for name in args.cohorts:
        results[name] = run_cohort(
            name, cv=args.cv, repeats=args.repeats, epochs=args.epochs, vae_epochs=args.vae_epochs, n_boot=args.n_boot
        )
        text = markdown(results, cv=args.cv, repeats=args.repeats, epochs=args.epochs, vae_epochs=args.vae_epochs)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)  # after every cohort, so a long run leaves what it finished
    print(text)
    pd.set_option("display.width", 200)


if __name__ == "__main__":
    main()
