"""``cfmd benchmark``: the paper's comparison on a cohort, with tables, figures and a report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._logging import logger
from .._validation import InvalidInputError
from ._console import EXIT_OK
from ._io import about, check_input_file, check_output_dir, command_line, read_input, use_file_backend
from ._parser import optional_key

if TYPE_CHECKING:
    from mudata import MuData


def _check_benchmark_input(mdata: MuData, args: argparse.Namespace) -> None:
    """Everything the benchmark (and the LOCO audit) will need, before any training.

    The library's own checks (:func:`cfmd.tl._benchmark.check_benchmark_input`, :func:`cfmd.tl._loco.check_loco_input`),
    after the two inputs a command-line user most often lacks, named with the step that provides them.
    """
    from .._validation import check_modality
    from ..models._latent_imputer import validate_imputer_setup
    from ..tl._benchmark import check_benchmark_input
    from ..tl._loco import check_loco_input

    check_modality(mdata, "rna")
    if args.latent_key not in mdata.obsm:
        raise InvalidInputError(
            f"no observed latent mdata.obsm[{args.latent_key!r}] (available: {', '.join(mdata.obsm) or 'none'}); "
            "run cfmd.tl.split_patients and cfmd.tl.fit_latent first (see 'cfmd benchmark --help')."
        )
    if args.split_key not in mdata.obs:
        raise InvalidInputError(
            f"no patient split mdata.obs[{args.split_key!r}]; run cfmd.tl.split_patients before cfmd.tl.fit_latent "
            "(see 'cfmd benchmark --help')."
        )
    geneformer_key, gene_embedding_key = optional_key(args.geneformer_key), optional_key(args.gene_embedding_key)
    _, layout = check_benchmark_input(
        mdata, methods=args.methods, latent_key=args.latent_key, split_key=args.split_key,
        geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
    )  # fmt: skip
    if any(m.startswith("cfmd") for m in args.methods):  # the RNA's scale, checked as CFMD's setup will
        validate_imputer_setup(
            mdata, latent_key=args.latent_key, rna_key="rna", rna_layer=None, rna_scale=args.rna_scale,
            geneformer_key=geneformer_key if layout.with_strategy("geneformer") else None,
            gene_embedding_key=gene_embedding_key if layout.with_strategy("esm") else None,
        )  # fmt: skip
    if args.loco != "none":
        check_loco_input(mdata, latent_key=args.latent_key)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .. import tl
    from .._report import benchmark_figures, benchmark_report, describe_cohort

    input_path, out = Path(args.input), Path(args.out)
    check_input_file(input_path)
    check_output_dir(out, overwrite=args.overwrite)
    mdata = read_input(input_path)
    with about(input_path):
        _check_benchmark_input(mdata, args)
    cohort = describe_cohort(mdata, latent_key=args.latent_key, split_key=args.split_key)
    use_file_backend()
    args.console.training_stack()

    start = time.perf_counter()
    timings = {}
    geneformer_key, gene_embedding_key = optional_key(args.geneformer_key), optional_key(args.gene_embedding_key)
    logger.info("benchmark: %d method(s) x %d seed(s) on %s", len(args.methods), len(args.seeds), input_path)
    with args.console.library_output():
        result = tl.benchmark(
            mdata, methods=args.methods, seeds=args.seeds, latent_key=args.latent_key, split_key=args.split_key,
            rna_scale=args.rna_scale, geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
            max_epochs=args.max_epochs, n_boot=args.n_boot,
        )  # fmt: skip
    timings["benchmark"] = time.perf_counter() - start
    loco = None
    if args.loco != "none":
        step = time.perf_counter()
        logger.info("LOCO audit (%s mode, seed %d)", args.loco, args.seeds[0])
        with args.console.library_output():
            tl.loco_audit(
                mdata, latent_key=args.latent_key, split_key=args.split_key, mode=args.loco, seed=args.seeds[0],
                max_epochs=args.max_epochs, rna_scale=args.rna_scale,
            )  # fmt: skip
        loco = mdata.uns["cfmd_loco"]
        timings["LOCO audit"] = time.perf_counter() - step

    step = time.perf_counter()
    tables_dir = out / "tables"
    # the folder check above refused a non-empty OUT without --overwrite, so replacing files here is intended
    tables = tl.write_benchmark(result, tables_dir, overwrite=True)
    if loco is not None:
        import pandas as pd

        for name, table in (
            ("loco_per_chromosome", loco["per_chromosome"]),
            ("loco_summary", pd.DataFrame([loco["summary"]])),
        ):
            path = tables_dir / f"{name}.csv"
            table.to_csv(path, index=False)
            tables.append(path)
    logger.info("wrote %d tables to %s", len(tables), tables_dir)
    figures = benchmark_figures(result, out / "figures", loco=loco)
    timings["tables and figures"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - start
    settings = {
        "methods": ", ".join(args.methods),
        "seeds": ", ".join(str(s) for s in args.seeds),
        "max_epochs": args.max_epochs,
        "n_boot": args.n_boot,
        "LOCO audit": args.loco,
        "latent_key": args.latent_key,
        "split_key": args.split_key,
        "geneformer_key": str(geneformer_key),
        "gene_embedding_key": str(gene_embedding_key),
        "rna_scale": args.rna_scale,
    }
    report = benchmark_report(
        out / "report.md", command=command_line(args), input_path=input_path, cohort=cohort, settings=settings,
        result=result, figures=figures, tables=tables, timings=timings, loco=loco,
    )  # fmt: skip
    logger.info("wrote %s (%.0f s in all)", report, timings["total"])
    print(tl.format_markdown(result["table3"]), end="")
    return EXIT_OK
