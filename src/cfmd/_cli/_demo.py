"""``cfmd demo``: the synthetic end-to-end run and its figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._logging import logger
from ._console import EXIT_OK
from ._io import check_output_dir, read_input, use_file_backend


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import _demo
    from .._report import demo_figures

    out = Path(args.out)
    check_output_dir(out, overwrite=args.overwrite)
    use_file_backend()
    created = not out.exists()
    args.console.training_stack()
    try:
        code = _demo.run_demo(out=out, n_patients=args.patients, n_genes=args.genes, protocol=args.protocol)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty folder behind
        raise
    if code != EXIT_OK:
        return code
    n_boot = _demo.DEMO_PROTOCOLS[args.protocol].n_boot
    _demo.progress(f"figures: test patients scored against zero-masking ({n_boot} bootstrap resamples)")
    figures = demo_figures(read_input(out / "results.h5mu"), out, n_boot=n_boot)
    for name, reason in figures.skipped.items():
        logger.warning("%s not drawn: %s", name, reason)
    logger.info("[%s] done; outputs in %s/", _demo.progress.elapsed(), out)
    return EXIT_OK
