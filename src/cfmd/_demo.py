"""The main job (``cfmd demo`` / ``make demo``): the whole pipeline on the embedded synthetic cohort."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ._constants import DEFAULT_SEED
from ._logging import logger


@dataclass(frozen=True)
class DemoProtocol:
    """Training settings of the demo: the quick default or the paper's protocol.

    Attributes
    ----------
    name
        ``"quick"`` or ``"paper"``.
    vae_epochs
        StructuredVAE epochs.
    cfmd_epochs, early_stopping_patience
        CFMD's maximum epochs and early-stopping patience (validation loss).
    learning_rate
        CFMD's AdamW learning rate.
    decoder
        Regional Methylation Decoder widths (empty: the paper's d_model 256, feed-forward 1024).
    n_boot
        Bootstrap resamples of the evaluation's intervals.
    """

    name: str
    vae_epochs: int
    cfmd_epochs: int
    early_stopping_patience: int
    learning_rate: float
    decoder: dict = field(default_factory=dict)
    n_boot: int = 1000

    def describe(self) -> str:
        """One line: what this protocol does."""
        width = self.decoder.get("d_model", 256), self.decoder.get("d_feedforward", 1024)
        return (
            f"StructuredVAE {self.vae_epochs} epochs; CFMD up to {self.cfmd_epochs} epochs (patience "
            f"{self.early_stopping_patience}, lr {self.learning_rate:g}), methylation decoder d_model {width[0]} / "
            f"feed-forward {width[1]}; {self.n_boot} bootstrap resamples"
        )


#: The demo's protocols. ``quick`` (the default, ~3 minutes on 2 CPU cores at 800 patients x 1,000 genes) cuts
#: epochs, early-stopping patience, the decoder's width and the bootstrap; ``paper`` is the paper's protocol
#: (CFMD: AdamW 3e-4, up to 200 epochs, patience 40, d_model 256 / FF 1024; 1,000 resamples).
DEMO_PROTOCOLS = {
    "quick": DemoProtocol(
        "quick",
        vae_epochs=40,
        cfmd_epochs=60,
        early_stopping_patience=10,
        learning_rate=1e-3,
        decoder={"d_model": 32, "d_feedforward": 128},
        n_boot=200,
    ),
    "paper": DemoProtocol("paper", vae_epochs=100, cfmd_epochs=200, early_stopping_patience=40, learning_rate=3e-4),
}


class DemoProgress:
    """One line per step on the cfmd logger, with the elapsed time since the demo started."""

    def __init__(self, n_steps: int) -> None:
        self.n_steps = n_steps
        self.restart()

    def restart(self) -> None:
        """Start counting steps and time from now."""
        self.step, self.start = 0, time.perf_counter()

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def __call__(self, message: str) -> None:
        self.step += 1
        logger.info("[%s] [%d/%d] %s", self.elapsed(), self.step, self.n_steps, message)


@contextlib.contextmanager
def _training_output() -> Iterator[io.StringIO]:
    """Hold back what the training stack prints (scvi-tools' early-stopping note) and Lightning's info lines."""
    captured = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "scvi")]
    levels = [other.level for other in loggers]
    for other in loggers:
        other.setLevel(max(other.getEffectiveLevel(), logging.WARNING))
    try:
        with contextlib.redirect_stdout(captured):
            yield captured
    finally:
        for other, level in zip(loggers, levels):
            other.setLevel(level)


#: The demo's steps: six here, the seventh (figures) in ``cfmd demo`` (:func:`cfmd._report.demo_figures`).
progress = DemoProgress(7)


def run_demo(
    out: str | Path = "cfmd_demo_output",
    *,
    n_patients: int = 800,
    n_genes: int = 1000,
    protocol: Literal["quick", "paper"] = "quick",
    seed: int = DEFAULT_SEED,
) -> int:
    """Run the demo pipeline and write its outputs to ``out``.

    1. generate the synthetic cohort (``cohort.h5mu``) and split patients 80/10/10 by cancer type;
    2. fit the StructuredVAE latent without the test patients;
    3. attach teacher outputs with tiny, randomly initialised **stand-in** Geneformer and ESM-2 checkpoints
       built on the fly in the real on-disk formats (they exercise the real loading and embedding code; their
       embeddings carry no biological information);
    4. train CFMD on the training patients and impute every patient (``X_cfmd``), once with the tiny stand-in
       teachers and once with the cohort's planted teacher signals (what informative teachers would provide);
    5. print per-slice :math:`R^2` on the held-out test patients next to zero-masking, and write the MuData with
       all results (``results.h5mu``) and the table (``slice_r2.tsv``).

    Parameters
    ----------
    out
        Output folder (created).
    n_patients, n_genes
        Size of the synthetic cohort.
    protocol
        ``"quick"`` (default: short training, a narrow methylation decoder, 200 bootstrap resamples; about 3
        minutes on 2 CPU cores) or ``"paper"`` (the paper's training protocol; tens of minutes), see
        :data:`DEMO_PROTOCOLS`.
    seed
        Seed of the cohort, the split and the StructuredVAE.

    Returns
    -------
    Process exit code (0 on success).
    """
    from . import datasets, pp, tl
    from ._layout import LatentLayout
    from .metrics import slice_metrics

    settings = DEMO_PROTOCOLS[protocol]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress.restart()
    logger.info("protocol %r: %s", settings.name, settings.describe())
    if settings.name == "quick":
        logger.info(
            "(cut from the paper's protocol to run in minutes; the full run: cfmd demo --protocol paper "
            "--patients 1200 --genes 2000)"
        )
    progress(f"synthetic cohort: {n_patients} patients x {n_genes} genes (seed {seed})")
    mdata = datasets.synthetic_cohort(n_patients=n_patients, n_genes=n_genes, seed=seed)
    mdata.write(out / "cohort.h5mu")
    print(_cohort_summary(mdata))
    tl.split_patients(mdata, seed=seed)

    progress(f"StructuredVAE latent ({settings.vae_epochs} epochs, test patients held out)")
    with _training_output():
        tl.fit_latent(mdata, max_epochs=settings.vae_epochs, seed=seed, train_kwargs={"enable_progress_bar": False})

    progress("teachers: tiny STAND-IN Geneformer and ESM-2 checkpoints (random weights, no biology)")
    rna = mdata["rna"]
    with tempfile.TemporaryDirectory() as tmp:
        geneformer = datasets.tiny_geneformer_checkpoint(Path(tmp) / "tiny_geneformer", seed=seed)
        esm2 = datasets.tiny_esm2_checkpoint(Path(tmp) / "esm2_tiny", seed=seed)
        pp.tokenize(rna)
        pp.geneformer(rna, geneformer, progress=False)
        pp.esm_gene_embeddings(rna, checkpoint=esm2, sequence_key="protein_sequence", progress=False)

    results = {}
    runs = [
        ("tiny stand-in teachers", "X_cfmd_tiny", {"geneformer_key": "X_geneformer", "gene_embedding_key": "X_esm2"}),
        (
            "planted teacher signals",
            "X_cfmd",
            {"geneformer_key": "transcriptomic_context", "gene_embedding_key": "structural_features"},
        ),
    ]
    for label, key, teachers in runs:
        progress(f"CFMD with {label} (up to {settings.cfmd_epochs} epochs, early stopping)")
        with _training_output():
            model = tl.impute(
                mdata,
                **teachers,
                key_added=key,
                fill="all",
                seed=42,
                max_epochs=settings.cfmd_epochs,
                model_kwargs={"rmd_kwargs": settings.decoder} if settings.decoder else None,
                train_kwargs={
                    "enable_progress_bar": False,
                    "lr": settings.learning_rate,
                    "early_stopping_patience": settings.early_stopping_patience,
                },
            )
        results[label] = mdata.obsm[key]

    progress("per-slice R^2 on the held-out test patients")

    test = model.split_indices(mdata)["test"]
    layout = LatentLayout.from_mudata(mdata, "X_structured")
    truth = np.asarray(mdata.obsm["X_structured"])[test]
    table = None
    for label, prediction in [*results.items(), ("zero-mask", np.zeros_like(truth))]:
        pred = prediction[test] if prediction.shape[0] != truth.shape[0] else prediction
        scores = slice_metrics(truth, pred, layout).set_index("slice")
        column = np.where(scores["dims"] == 1, scores["pearson_r"], scores["r2"])
        if table is None:
            table = scores[["kind", "dims"]].copy()
            table.insert(1, "strategy", [layout[s].strategy if s in layout else "" for s in scores.index])
        table[label] = column
    table.to_csv(out / "slice_r2.tsv", sep="\t")
    mdata.write(out / "results.h5mu")
    print(f"\nHeld-out test patients (n={len(test)}): R^2 per slice (Pearson r for the 1-d prolif slice)")
    print(table.drop(columns="kind").to_string(float_format=lambda v: f"{v:7.3f}"))
    print(
        "\nThe tiny stand-in teachers are random networks: their slices (pathway, residual) are not recoverable "
        "from them.\nThe planted teacher signals show what CFMD distils from informative teachers; real "
        "Geneformer / ESM-2 weights are needed for real cohorts (see docs/teachers.md)."
    )
    logger.info("[%s] results in %s/", progress.elapsed(), out)
    return 0


def _cohort_summary(mdata) -> str:
    lines = ["modality   patients  features  scale"]
    for name, mod in mdata.mod.items():
        lines.append(f"{name:<10} {mod.n_obs:>8}  {mod.n_vars:>8}  {mod.uns.get('scale', '?')}")
    obs = mdata.obs
    lines.append(
        f"cancer types: {', '.join(f'{k} ({v})' for k, v in obs['cancer_type'].value_counts().items())}; "
        f"events: {int(obs['os_event'].sum())}/{len(obs)}; median follow-up {obs['os_time'].median():.0f} days"
    )
    return "\n".join(lines)
