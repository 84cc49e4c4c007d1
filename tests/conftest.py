"""Shared fixtures.

``shared_dir`` points at ``../shared`` (real TCGA cohorts and reference tables that only developer and
CI machines have); tests that need it skip cleanly where it is absent, as on a user's machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (``make test`` runs one worker per core), give each worker its share of the cores.

    Without it every worker's torch/BLAS would start one thread per core, and on 2 cores two workers would fight over
    four threads. Set before torch is imported (it reads the variables once); subprocesses a test starts inherit them.
    A variable the caller set is left alone.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = str(max(1, cores // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ.setdefault(name, threads)


_share_the_cores_between_workers()

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


@pytest.fixture(scope="session")
def latent_cohort_session():
    """Synthetic cohort (500 x 500) with a patient split and a fitted StructuredVAE latent. Do not modify: copy."""
    from cfmd.datasets import synthetic_cohort
    from cfmd.tl import fit_latent, split_patients

    mdata = synthetic_cohort(n_patients=500, n_genes=500, n_cancer_types=3, seed=3)
    split_patients(mdata, seed=0)
    fit_latent(mdata, max_epochs=60, seed=0, train_kwargs={"enable_progress_bar": False})
    return mdata


@pytest.fixture
def latent_cohort(latent_cohort_session):
    """A fresh copy of :func:`latent_cohort_session`, safe to modify."""
    return latent_cohort_session.copy()


#: Fixtures that take seconds to tens of seconds on 2 CPU cores (they train a model, or compile UMAP's numba kernels):
#: every test that uses one is marked ``slow`` (``make test-fast`` skips them; ``make test`` runs everything).
SLOW_FIXTURES = frozenset(
    {
        "latent_cohort_session",
        "fitted",
        "trained",
        "owned",
        "umap_mdata",
        "scanpy_umap_cohort",
        "oracle",
        "two_models",
        "cohort_file",  # tests/cli/test_cli.py: a StructuredVAE fitted and written as .h5mu, read by every test
        "saved",  # tests/models/test_deploy.py: a trained, saved CFMD
    }
)
#: Docstring examples that train a model (their doctests run in ``make test`` only).
SLOW_DOCTESTS = frozenset(
    {
        "cfmd.tl._impute.impute",
        "cfmd.tl._evaluate.evaluate",
        "cfmd.tl._fit_latent.fit_latent",
        "cfmd.tl._slice_semantics.slice_semantics",
    }
)


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` the tests that use a :data:`SLOW_FIXTURES` fixture and the :data:`SLOW_DOCTESTS`."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.name in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
