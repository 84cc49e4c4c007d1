"""``cfmd rescue``: does imputation help the clinic? (:func:`cfmd.tl.downstream_rescue`: tables and Figure 3)."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from .._logging import logger
from ._console import EXIT_OK
from ._io import about, check_input_file, check_output_dir, read_input, use_file_backend
from ._parser import _exit_codes_text, _HelpFormatter, _positive_int, _seed, optional_key


def add_rescue_parser(commands, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``rescue`` sub-command; its defaults are read from :func:`cfmd.tl.downstream_rescue`'s signature."""
    from ..tl import METHODS, downstream_rescue
    from ..tl._downstream_rescue import RESCUE_CLASSIFIERS, RESCUE_SURVIVAL_MODELS

    defaults = {name: p.default for name, p in inspect.signature(downstream_rescue).parameters.items()}
    rescue = commands.add_parser(
        "rescue",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="does imputation help the clinic? a frozen downstream model with modalities missing (seed 004, Table 2)",
        description=(
            "Run cfmd.tl.downstream_rescue on INPUT: downstream models (classification of --label-key; survival)\n"
            "are trained once on the complete training patients and frozen, then scored on the test patients\n"
            "under each missing-modality pattern in four conditions: full data, the modality removed (its\n"
            "slices set to the training mean), imputed by each imputer (trained on the training split), and\n"
            "cancer type only; bootstrap intervals over the test patients, paired differences.\n\n"
            "INPUT must hold what cfmd.tl.split_patients and cfmd.tl.fit_latent write (the split, the observed\n"
            "latent with its layout and slice ownership, the RNA-only posterior for 'poe_rna_only'), survival\n"
            "and cancer type in .obs, and what each imputer needs (teacher embeddings for CFMD).\n\n"
            "Writes into OUT: table.csv (the Table-2 shape: drop from ablation, gain from imputation, with\n"
            "intervals), results.csv, comparisons.csv (p-values), per_cancer_type.csv, table.md and\n"
            "downstream_rescue.png (Figure 3). The table is printed on stdout (Markdown)."
        ),
        epilog=(
            f"{_exit_codes_text()}\n\n"
            "examples:\n"
            "  cfmd rescue cohort.h5mu --out rescue\n"
            "  cfmd rescue cohort.h5mu --out quick --imputers ridge poe_rna_only --patterns meth cnv meth+cnv \\\n"
            "      --n-boot 200 --survival-models cox_head"
        ),
    )
    rescue.add_argument("input", metavar="INPUT", help="input MuData file (.h5mu) with the latent and the split")
    rescue.add_argument("--out", metavar="DIR", required=True, help="output folder (required)")
    rescue.add_argument(
        "--imputers",
        metavar="METHOD",
        nargs="+",
        choices=list(METHODS),
        default=list(defaults["imputers"]),
        help=f"imputers (names of cfmd.tl.METHODS) (default: {' '.join(defaults['imputers'])})",
    )
    rescue.add_argument(
        "--patterns",
        metavar="PATTERN",
        nargs="+",
        help="missing-modality patterns, modalities joined by '+', e.g. meth cnv meth+cnv (default: each modality "
        "owning latent slices, then all of them)",
    )
    rescue.add_argument(
        "--label-key",
        metavar="COLUMN",
        default=defaults["label_key"],
        help=".obs column to classify (e.g. a stage column); 'none' for survival only (default: %(default)s)",
    )
    rescue.add_argument(
        "--classifiers", nargs="+", choices=RESCUE_CLASSIFIERS, default=list(defaults["classifiers"]),
        help="classifiers (default: %(default)s)",
    )  # fmt: skip
    rescue.add_argument(
        "--survival-models", nargs="*", choices=RESCUE_SURVIVAL_MODELS, default=list(defaults["survival_models"]),
        help="survival models; none given: no survival task (default: %(default)s)",
    )  # fmt: skip
    for option, metavar, help_text in (
        ("latent_key", "KEY", ".obsm key of the observed latent"),
        ("split_key", "COLUMN", ".obs column of the patient split"),
        ("time_key", "COLUMN", ".obs column of the survival time"),
        ("event_key", "COLUMN", ".obs column of the event indicator"),
        ("cancer_type_key", "COLUMN", ".obs column of the cancer type"),
        ("geneformer_key", "KEY", "mdata['rna'].obsm key of the Geneformer embedding, 'none' if unused"),
        ("gene_embedding_key", "KEY", "mdata['rna'].varm key of the gene (ESM-2) embedding, 'none' if unused"),
    ):
        rescue.add_argument(
            f"--{option.replace('_', '-')}", metavar=metavar, default=defaults[option],
            help=f"{help_text} (default: %(default)s)",
        )  # fmt: skip
    rescue.add_argument(
        "--rna-scale", choices=("counts", "log2", "zscore"), default=defaults["rna_scale"],
        help="scale of mdata['rna'].X (default: %(default)s)",
    )  # fmt: skip
    rescue.add_argument(
        "--max-epochs", metavar="N", type=_positive_int, default=defaults["max_epochs"],
        help="maximum training epochs of every neural imputer, with early stopping (default: each imputer's own, "
        "200; 2000 for the diffusion models)",
    )  # fmt: skip
    rescue.add_argument(
        "--n-estimators", metavar="N", type=_positive_int, default=defaults["n_estimators"],
        help="trees of the random (survival) forests (default: %(default)s)",
    )  # fmt: skip
    rescue.add_argument(
        "--n-boot", metavar="N", type=_positive_int, default=defaults["n_boot"],
        help="bootstrap resamples of the test patients (default: %(default)s)",
    )  # fmt: skip
    rescue.add_argument(
        "--seed", metavar="N", type=_seed, default=defaults["seed"],
        help="seed of the imputers, the forests and the resamples (default: %(default)s)",
    )  # fmt: skip
    rescue.add_argument(
        "--overwrite",
        action="store_true",
        help="write into OUT even if it exists and is not empty, replacing the command's files (default: off)",
    )
    rescue.set_defaults(run=cmd_rescue, parser=rescue)
    return rescue


def cmd_rescue(args: argparse.Namespace) -> int:
    from .. import pl, tl

    input_path, out = Path(args.input), Path(args.out)
    check_input_file(input_path)
    check_output_dir(out, overwrite=args.overwrite)
    mdata = read_input(input_path)
    patterns = None if args.patterns is None else [p.split("+") for p in args.patterns]
    use_file_backend()
    if set(args.imputers) - {"zero_mask", "poe_rna_only"}:  # imputers that train
        args.console.training_stack()
    with about(input_path), args.console.library_output():
        tl.downstream_rescue(
            mdata, imputers=args.imputers, patterns=patterns, label_key=optional_key(args.label_key),
            classifiers=args.classifiers, survival_models=args.survival_models, latent_key=args.latent_key,
            split_key=args.split_key, time_key=args.time_key, event_key=args.event_key,
            cancer_type_key=args.cancer_type_key, rna_scale=args.rna_scale,
            geneformer_key=optional_key(args.geneformer_key), gene_embedding_key=optional_key(args.gene_embedding_key),
            max_epochs=args.max_epochs, n_estimators=args.n_estimators, n_boot=args.n_boot, seed=args.seed,
        )  # fmt: skip
    result = mdata.uns["cfmd_downstream_rescue"]
    out.mkdir(parents=True, exist_ok=True)
    # the folder check above refused a non-empty OUT without --overwrite, so replacing files here is intended
    for name in ("table", "results", "comparisons", "per_cancer_type"):
        result[name].to_csv(out / f"{name}.csv", index=False)
    markdown = tl.format_markdown(result["table"])
    (out / "table.md").write_text(markdown)
    import matplotlib.pyplot as plt

    fig = pl.downstream_rescue(result["results"], save=out / "downstream_rescue.png", return_fig=True)
    plt.close(fig)
    logger.info("wrote the tables and downstream_rescue.png to %s", out)
    print(markdown, end="")
    return EXIT_OK
