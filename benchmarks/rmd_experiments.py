"""Why does the Regional Methylation Decoder learn so little? Small ablations of its optimisation and design.

Run from the project root (CPU, about ten minutes for the defaults)::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/rmd_experiments.py
    ... benchmarks/rmd_experiments.py --cohort lihc --seeds 0 1    # the real TCGA-LIHC cohort (360 patients)
    ... benchmarks/rmd_experiments.py --arms rmd_paper rmd_gene_weights --epochs 20   # a subset, quicker

Data. ``synthetic``: ``cfmd.datasets.synthetic_cohort(n_patients=800, n_genes=1000, seed=0)``, split with
``cfmd.tl.split_patients(seed=0)`` and its structured latent fitted once with ``cfmd.tl.fit_latent`` (40 epochs);
the fitted MuData is cached as ``.h5mu`` (``--cache``) so every arm and seed reuses the same latent. ``lihc``:
the real ``tcga_lihc_360`` files (``rna_rsem_norm``, ``methylation_gene_beta``, ``cnv_log2ratio_gene``) read with
``cfmd.datasets.read_xena``, log2(x + 1) RNA, a hand-built layout of the paper's ``meth`` and ``cnv`` slices
(like ``tutorials/tcga_xena.md``; the other roles of the StructuredVAE off), latent fitted the same way. The target is the ``meth`` slice (48 dims).

Arms (each CFMD imputes only the ``meth`` slice, with the same split, AdamW, 10 warm-up epochs then cosine,
batch 64, ``--epochs`` epochs, early stopping on the validation loss with the best state restored):

- ``rmd_paper``: the Regional Methylation Decoder as in the paper and the package default (post-norm, lr 3e-4);
- ``rmd_lr1e-3`` / ``rmd_lr3e-3``: the same with a higher lr;  ``rmd_prenorm``: pre-norm (``norm_first=True``);
- ``rmd_no_positions``: without chromosome positional embeddings;
- ``rmd_gene_weights``: gene-specific expression weights (``gene_weights=True``), and with ``+lr1e-3``,
  ``+lr3e-3``, ``+prenorm``;
- ``pointwise``: the point-wise MLP on the same TME genes.

References (closed form, scikit-learn ridge with the penalty chosen by cross-validation on the training split):
``ridge_rna`` on all standardised log-RNA genes; ``ridge_tme`` on the TME genes the decoders see;
``ridge_chrom_means`` on the 23 per-chromosome *means* of the standardised TME genes (what a count-normalised
mean can see when every gene enters with the same weight); ``ridge_truth_regional`` (synthetic only) on the
planted per-chromosome regional programs (an upper bound for any per-chromosome summary).

``--direct``: the decoder alone in plain torch (Adam, batch 64, no dropout, weight decay or warm-up) for
``--direct-steps`` steps at each ``--direct-lr``, arms ``paper`` / ``prenorm`` / ``gene_weights`` (widths 64 / 256 /
64), which separates the decoder's function class from CFMD's training protocol.

Reported: multivariate R^2 of the meth slice on the held-out test split and on the training split (to separate
under-fitting from over-fitting), the median over ``--seeds`` (training seeds; the split and latent are fixed),
and training seconds per run.

Results (2 CPU cores shared with other jobs, load 4-7, so seconds are rough; ``cpu`` width; 40 CFMD epochs).
Synthetic, test R^2 (per seed) / train R^2: rmd_paper -0.010, -0.007 / 0.002; rmd_lr1e-3 -0.012, -0.003 / 0.003;
rmd_lr3e-3 0.186, 0.179 / 0.216; rmd_prenorm -0.011 / 0.000; rmd_no_positions -0.010 / 0.001; rmd_gene_weights
0.009 / 0.022; rmd_gene_weights+lr1e-3 0.427, 0.448 / 0.428; rmd_gene_weights+lr3e-3 0.667, 0.686 / 0.708;
pointwise 0.794, 0.793 / 0.900; ridge_rna 0.827; ridge_tme 0.825; ridge_chrom_means 0.191;
ridge_truth_regional 0.696. TCGA-LIHC (288 / 36 / 36 patients, 130 TME genes): rmd_paper 0.045, 0.061;
rmd_lr3e-3 0.552, 0.452; rmd_gene_weights+lr1e-3 0.483, 0.512; rmd_gene_weights+lr3e-3 0.712, 0.696; pointwise
0.692, 0.689; ridge_rna 0.816; ridge_tme 0.738; ridge_chrom_means 0.494. The paper's decoder, once its learning
rate lets it move, stops at the R^2 of a ridge on equal-weight chromosome means; gene-specific expression
weights (``gene_weights=True``) lift it to the point-wise MLP's level. ``--direct --direct-steps 200 800
--direct-lr 3e-3`` (synthetic; test / train): paper 0.061 / 0.058 after 200 steps, 0.409 / 0.947 after 800;
prenorm -0.016 / -0.003, 0.299 / 0.917; gene_weights 0.603 / 0.640, 0.725 / 0.971. At initialisation the regional
embeddings vary across patients by SD 0.007 around a constant part of 0.079.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import mudata as md
import numpy as np
import scvi

import cfmd
from cfmd import LatentLayout, Slice
from cfmd.metrics import multivariate_r2
from cfmd.models import CFMD

ARMS = {
    "rmd_paper": {"decoder": "regional", "rmd": {}, "lr": 3e-4},
    "rmd_lr1e-3": {"decoder": "regional", "rmd": {}, "lr": 1e-3},
    "rmd_lr3e-3": {"decoder": "regional", "rmd": {}, "lr": 3e-3},
    "rmd_prenorm": {"decoder": "regional", "rmd": {"norm_first": True}, "lr": 3e-4},
    "rmd_no_positions": {"decoder": "regional", "rmd": {"positional_embeddings": False}, "lr": 3e-4},
    "rmd_gene_weights": {"decoder": "regional", "rmd": {"gene_weights": True}, "lr": 3e-4},
    "rmd_gene_weights+lr1e-3": {"decoder": "regional", "rmd": {"gene_weights": True}, "lr": 1e-3},
    "rmd_gene_weights+lr3e-3": {"decoder": "regional", "rmd": {"gene_weights": True}, "lr": 3e-3},
    "rmd_gene_weights+prenorm": {"decoder": "regional", "rmd": {"gene_weights": True, "norm_first": True}, "lr": 3e-4},
    "pointwise": {"decoder": "pointwise", "rmd": {}, "lr": 3e-4},
}
LIHC = Path("/work/wt/shared/cohorts/tcga_lihc_360")


# --------------------------------------------------------------------------- cohorts
def synthetic(cache: Path, n_patients: int, n_genes: int, epochs: int) -> tuple[md.MuData, dict]:
    path = cache / f"synthetic_p{n_patients}_g{n_genes}_e{epochs}.h5mu"
    setup = {"rna_layer": None, "rna_scale": "counts"}
    if path.exists():
        return md.read_h5mu(path), setup
    mdata = cfmd.datasets.synthetic_cohort(n_patients=n_patients, n_genes=n_genes, seed=0, protein_sequences=False)
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.fit_latent(mdata, max_epochs=epochs, seed=0, train_kwargs={"enable_progress_bar": False})
    mdata.write(path)
    return md.read_h5mu(path), setup


def lihc(cache: Path, epochs: int) -> tuple[md.MuData, dict]:
    path = cache / f"lihc_e{epochs}.h5mu"
    setup = {"rna_layer": "log2", "rna_scale": "log2"}
    if path.exists():
        return md.read_h5mu(path), setup
    files = {
        "rna": LIHC / "rna_rsem_norm.tsv.gz",
        "meth": LIHC / "methylation_gene_beta.tsv.gz",
        "cnv": LIHC / "cnv_log2ratio_gene.tsv.gz",
    }
    mdata = cfmd.datasets.read_xena(files, survival=LIHC / "survival_cdr.tsv", on_missing_survival="keep_nan")
    mdata = mdata[mdata.obs_names.isin(mdata["rna"].obs_names)].copy()
    mdata["rna"].layers["log2"] = np.log2(np.asarray(mdata["rna"].X, dtype=np.float64) + 1.0).astype(np.float32)
    paper = LatentLayout.cfmd328()
    slices, start = [], 0
    for name in ("meth", "cnv"):  # the 353 alphabetical genes miss whole Hallmark sets: no pathway slice
        s = paper[name]
        slices.append(Slice(name, start, start + s.dim, s.strategy, groups=s.groups))
        start += s.dim
    layout = LatentLayout(slices)
    cfmd.tl.split_patients(mdata, stratify=None, require_modalities=["meth", "cnv"], seed=0)
    cfmd.tl.fit_latent(
        mdata, layout=layout, rna_layer="log2", rna_scale="log2", modalities={"meth": "meth", "cnv": "cnv"},
        max_epochs=epochs, seed=0, train_kwargs={"enable_progress_bar": False},
        model_kwargs={"pathway_slice": None, "prolif_slice": None, "residual_slice": None},
    )  # fmt: skip
    mdata.write(path)
    return md.read_h5mu(path), setup


# --------------------------------------------------------------------------- arms
def meth_only_layout(mdata) -> LatentLayout:
    layout = LatentLayout.from_mudata(mdata, "X_structured")
    return layout.replace_strategies(**{s.name: "zero" for s in layout if s.name != "meth"})


def split_indices(mdata) -> dict[str, np.ndarray]:
    split = mdata.obs["cfmd_split"].astype(str).to_numpy()
    return {name: np.flatnonzero(split == name) for name in ("train", "validation", "test")}


WIDTHS = {"paper": {}, "cpu": {"d_model": 64, "d_feedforward": 256}}


def run_cfmd(mdata, setup: dict, arm: dict, seed: int, epochs: int, width: str) -> tuple[float, float, float]:
    scvi.settings.seed = seed
    CFMD.setup_mudata(mdata, geneformer_key=None, gene_embedding_key=None, **setup)
    layout = meth_only_layout(mdata)
    model = CFMD(
        mdata, layout=layout, methylation_decoder=arm["decoder"], seed=seed,
        rmd_kwargs=({**WIDTHS[width], **arm["rmd"]} if arm["decoder"] == "regional" else None),
        use_geneformer=False, use_esm=False,
    )  # fmt: skip
    start = time.perf_counter()
    model.train(max_epochs=epochs, lr=arm["lr"], enable_progress_bar=False)
    seconds = time.perf_counter() - start
    truth = layout.take(np.asarray(mdata.obsm["X_structured"]), "meth")
    pred = layout.take(model.get_imputed_latent(mdata), "meth")
    idx = split_indices(mdata)
    return (
        multivariate_r2(truth[idx["test"]], pred[idx["test"]]),
        multivariate_r2(truth[idx["train"]], pred[idx["train"]]),
        seconds,
    )


def standardised_rna(mdata, setup: dict, train: np.ndarray) -> np.ndarray:
    rna = mdata["rna"][mdata.obs_names]  # every patient has RNA; align to mdata.obs
    x = rna.layers[setup["rna_layer"]] if setup["rna_layer"] else rna.X
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    if setup["rna_scale"] == "counts":
        x = np.log1p(x / np.clip(x.sum(1, keepdims=True), 1.0, None) * 1e4)
    mean, std = x[train].mean(0), np.clip(x[train].std(0), 1e-3, None)
    return (x - mean) / std


def references(mdata, setup: dict) -> dict[str, tuple[float, float]]:
    from sklearn.linear_model import RidgeCV

    layout = meth_only_layout(mdata)
    idx = split_indices(mdata)
    truth = layout.take(np.asarray(mdata.obsm["X_structured"]), "meth")
    x = standardised_rna(mdata, setup, idx["train"])
    rna_names = mdata["rna"].var_names
    symbols = mdata["rna"].var["gene_symbol"].astype(str).to_numpy() if "gene_symbol" in mdata["rna"].var else rna_names
    tme = np.flatnonzero(np.isin(symbols, cfmd.datasets.tme_genes()))
    chrom = cfmd.models.nn.chromosome_indices(mdata["rna"].var["chromosome"].to_numpy()[tme])
    tme, chrom = tme[chrom >= 0], chrom[chrom >= 0]
    means = np.stack([x[:, tme[chrom == c]].mean(1) if (chrom == c).any() else np.zeros(len(x)) for c in range(23)], 1)
    features = {"ridge_rna": x, "ridge_tme": x[:, tme], "ridge_chrom_means": means}
    if "truth_regional" in mdata.obsm:
        features["ridge_truth_regional"] = np.asarray(mdata.obsm["truth_regional"])
    out = {}
    for name, feats in features.items():
        model = RidgeCV(alphas=np.logspace(-2, 5, 15)).fit(feats[idx["train"]], truth[idx["train"]])
        out[name] = (
            multivariate_r2(truth[idx["test"]], model.predict(feats[idx["test"]])),
            multivariate_r2(truth[idx["train"]], model.predict(feats[idx["train"]])),
        )
    out["_n_tme_genes"] = (float(tme.size), float(np.unique(chrom).size))
    return out


DIRECT_ARMS = {
    "paper": {},
    "prenorm": {"norm_first": True},
    "gene_weights": {"gene_weights": True},
}


def direct(mdata, setup: dict, arms: list[str], lrs: list[float], steps: list[int]) -> None:
    """The decoder alone in plain torch (Adam, batch 64, no dropout / weight decay / warm-up): TME genes -> meth.

    Separates the decoder's function class from CFMD's training protocol; also prints the size of the regional
    embeddings' patient-to-patient variation at initialisation relative to their constant part.
    """
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(1)
    layout = meth_only_layout(mdata)
    idx = split_indices(mdata)
    x = standardised_rna(mdata, setup, idx["train"])
    rna = mdata["rna"]
    symbols = rna.var["gene_symbol"].astype(str).to_numpy() if "gene_symbol" in rna.var else rna.var_names.to_numpy()
    tme = np.flatnonzero(np.isin(symbols, cfmd.datasets.tme_genes()))
    chrom = cfmd.models.nn.chromosome_indices(rna.var["chromosome"].to_numpy()[tme])
    tme, chrom = tme[chrom >= 0], chrom[chrom >= 0]
    y = layout.take(np.asarray(mdata.obsm["X_structured"]), "meth")
    y = (y - y[idx["train"]].mean(0)) / y[idx["train"]].std(0)
    xt, yt = torch.tensor(x[:, tme], dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    train, test = torch.as_tensor(idx["train"]), torch.as_tensor(idx["test"])
    print("\n| decoder (direct) | lr | steps | test R^2 | train R^2 | s |\n|---|---|---|---|---|---|")
    for name in arms:
        for lr in lrs:
            for n_steps in steps:
                torch.manual_seed(0)
                decoder = cfmd.models.nn.RegionalMethylationDecoder(
                    chrom, d_model=64, d_feedforward=256, d_gene_hidden=64, dropout=0.0, **DIRECT_ARMS[name]
                )
                if name == arms[0] and lr == lrs[0] and n_steps == steps[0]:
                    with torch.no_grad():
                        regions = decoder.regional_embeddings(xt[train])
                    print(
                        f"(init: regional embeddings vary across patients by SD {regions.std(0).mean():.4f}, "
                        f"their constant part is {regions.mean(0).abs().mean():.4f})"
                    )
                optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
                rng = np.random.default_rng(0)
                start = time.perf_counter()
                for _ in range(n_steps):
                    batch = torch.as_tensor(rng.choice(idx["train"], 64, replace=False))
                    optimizer.zero_grad()
                    F.mse_loss(decoder(xt[batch]), yt[batch]).backward()
                    optimizer.step()
                with torch.no_grad():
                    decoder.eval()
                    r2_test = multivariate_r2(yt[test].numpy(), decoder(xt[test]).numpy())
                    r2_train = multivariate_r2(yt[train].numpy(), decoder(xt[train]).numpy())
                seconds = time.perf_counter() - start
                print(f"| {name} | {lr:g} | {n_steps} | {r2_test:.3f} | {r2_train:.3f} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", choices=("synthetic", "lihc"), default="synthetic")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=40, help="CFMD training epochs per arm")
    parser.add_argument("--latent-epochs", type=int, default=40, help="fit_latent epochs (cached)")
    parser.add_argument(
        "--width", choices=tuple(WIDTHS), default="cpu",
        help="decoder width: 'paper' (d_model 256, feed-forward 1024) or 'cpu' (64 / 256, the demo's)",
    )  # fmt: skip
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cfmd_rmd_experiments")
    parser.add_argument(
        "--direct", action="store_true", help="train the decoder alone in plain torch instead of the CFMD arms"
    )
    parser.add_argument("--direct-arms", nargs="+", default=list(DIRECT_ARMS), choices=list(DIRECT_ARMS))
    parser.add_argument("--direct-lr", nargs="+", type=float, default=[3e-4, 3e-3])
    parser.add_argument("--direct-steps", nargs="+", type=int, default=[200])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    scvi.settings.verbosity = 40
    args.cache.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    if args.cohort == "synthetic":
        mdata, setup = synthetic(args.cache, args.patients, args.genes, args.latent_epochs)
    else:
        mdata, setup = lihc(args.cache, args.latent_epochs)
    if args.direct:
        direct(mdata, setup, args.direct_arms, args.direct_lr, args.direct_steps)
        print(f"\nwall time {time.perf_counter() - wall:.0f} s")
        return
    sizes = {k: len(v) for k, v in split_indices(mdata).items()}
    refs = references(mdata, setup)
    n_tme, n_chrom = refs.pop("_n_tme_genes")
    print(f"cohort {args.cohort}: split {sizes}; {int(n_tme)} TME genes on {int(n_chrom)} chromosomes", flush=True)
    rows = []
    for name in args.arms:
        results = []
        for seed in args.seeds:
            results.append(run_cfmd(mdata, setup, ARMS[name], seed, args.epochs, args.width))
            print(f"  {name} seed {seed}: test {results[-1][0]:.3f} train {results[-1][1]:.3f} "
                  f"({results[-1][2]:.0f} s)", flush=True)  # fmt: skip
        test, train, secs = (statistics.median(r[i] for r in results) for i in range(3))
        spread = ", ".join(f"{r[0]:.3f}" for r in results)
        rows.append(f"| {name} | {test:.3f} | {spread} | {train:.3f} | {secs:.0f} |")
    print(
        f"\n{args.cohort}: meth-slice R^2 (median over seeds {args.seeds}, {args.epochs} epochs, {args.width} width)\n"
    )
    print("| arm | test R^2 | test R^2 per seed | train R^2 | train s |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    for name, (test, train) in refs.items():
        print(f"| {name} | {test:.3f} | - | {train:.3f} | - |")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
