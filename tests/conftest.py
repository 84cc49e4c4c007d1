"""Shared fixtures.

``shared_dir`` points at ``../shared`` (real TCGA cohorts and reference tables that only developer and
CI machines have); tests that need it skip cleanly where it is absent, as on a user's machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(os.environ.get("CFMD_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the checkout (override with ``CFMD_SHARED_DIR``); skips when absent."""
    if not (SHARED_DIR / "cohorts").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DIR} (only developer/CI machines have it)")
    return SHARED_DIR


@pytest.fixture
def small_cohort():
    """A fresh small synthetic cohort (300 patients x 400 genes, 3 cancer types); safe to modify."""
    from cfmd.datasets import synthetic_cohort

    return synthetic_cohort(n_patients=300, n_genes=400, n_cancer_types=3, frac_rna_only=0.2, seed=7)
