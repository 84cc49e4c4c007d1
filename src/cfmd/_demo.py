"""The main job (``cfmd demo`` / ``make demo``): the whole pipeline on the embedded synthetic cohort."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(
    out: str | Path = "cfmd_demo_output", *, n_patients: int = 1200, n_genes: int = 2000, seed: int = 0
) -> int:
    """Run the demo pipeline and write its outputs to ``out``.

    Steps: generate the synthetic cohort and write it as ``cohort.h5mu``; print a summary.

    Returns
    -------
    Process exit code (0 on success).
    """
    from .datasets import synthetic_cohort

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _say(f"[1] synthetic cohort: {n_patients} patients x {n_genes} genes (seed {seed})")
    mdata = synthetic_cohort(n_patients=n_patients, n_genes=n_genes, seed=seed)
    path = out / "cohort.h5mu"
    mdata.write(path)
    _say(f"    written to {path}")
    print(_cohort_summary(mdata))
    _say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def _cohort_summary(mdata) -> str:
    lines = ["modality   patients  features  note"]
    for name, mod in mdata.mod.items():
        lines.append(f"{name:<10} {mod.n_obs:>8}  {mod.n_vars:>8}  scale={mod.uns.get('scale', '?')}")
    obs = mdata.obs
    lines.append(
        f"cancer types: {', '.join(f'{k} ({v})' for k, v in obs['cancer_type'].value_counts().items())}; "
        f"events: {int(obs['os_event'].sum())}/{len(obs)}; median follow-up {obs['os_time'].median():.0f} days"
    )
    return "\n".join(lines)
