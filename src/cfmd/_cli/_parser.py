"""The ``cfmd`` argument parser: the sub-commands (demo, impute, benchmark, prioritize, rescue) and their option types."""

from __future__ import annotations

import argparse
import inspect
import os

from .._constants import (
    DEFAULT_GENE_EMBEDDING_KEY,
    DEFAULT_GENEFORMER_KEY,
    DEFAULT_IMPUTED_KEY,
    DEFAULT_LATENT_KEY,
    DEFAULT_SPLIT_KEY,
)
from ._console import EXIT_CODES

_TEACHER_HELP = "'none' when no slice of the latent uses this teacher"


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def optional_key(value: str | None) -> str | None:
    """``'none'`` (any case) means no key."""
    return None if value is None or value.lower() == "none" else value


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' and epilogs' line breaks; a wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=min(110, max(80, _terminal_width())))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def _exit_codes_text() -> str:
    import textwrap

    lines = ["exit codes:"]
    for code, text in EXIT_CODES.items():
        lines += textwrap.wrap(text, width=100, initial_indent=f"  {code:<4d}", subsequent_indent=" " * 6)
    return "\n".join(lines)


def _add_console_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``--quiet``, ``--verbose``, ``--debug``; on sub-commands without defaults, so that both places work."""
    group = parser.add_argument_group("console")
    default = argparse.SUPPRESS if suppress else False
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print only warnings and errors on stderr (default: off)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="print debug messages and the training stack's own messages and warnings (Lightning, scvi-tools) "
        "(default: off)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="print the full traceback of a failure (default: off)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``cfmd`` argument parser with its sub-commands ``demo``, ``impute``, ``benchmark``, ``prioritize`` and ``rescue``."""
    from .. import __version__
    from .._demo import DEMO_PROTOCOLS, run_demo
    from ..tl import DEFAULT_METHODS, METHODS
    from ._benchmark import cmd_benchmark
    from ._demo import cmd_demo
    from ._impute import cmd_impute, training_defaults

    trained = training_defaults()  # cfmd.tl.impute's defaults of the training-only options

    parser = argparse.ArgumentParser(
        prog="cfmd",
        formatter_class=_HelpFormatter,
        description=(
            "cfmd: Complementary Foundation Model Distillation.\n\n"
            "Imputes the missing slices (methylation, pathway, residual, ...) of a structured multi-omics latent\n"
            "for patients who only have bulk RNA-seq, and benchmarks the imputation like the paper. Data go in\n"
            "and out as MuData (.h5mu) files."
        ),
        epilog=(
            "Progress and warnings go to stderr; results go to files, with a short summary on stdout. A failure\n"
            "prints one line 'cfmd: error: <message>' on stderr (a traceback only with --debug).\n\n"
            f"{_exit_codes_text()}\n\n"
            "cfmd does not set thread counts: on small machines, limit them yourself (e.g. OMP_NUM_THREADS=1).\n\n"
            "examples:\n"
            "  cfmd demo --out cfmd_demo_output\n"
            "  cfmd impute cohort.h5mu --out imputed.h5mu --save-model cfmd_model\n"
            "  cfmd impute new_patients.h5mu --model cfmd_model --out new_patients_imputed.h5mu\n"
            "  cfmd benchmark cohort.h5mu --out benchmark --seeds 42 --loco fast\n"
            "  cfmd prioritize generated.h5mu --out prioritized.h5mu --modality meth\n"
            "  cfmd rescue cohort.h5mu --out rescue --imputers ridge poe_rna_only cfmd\n\n"
            "Run 'cfmd COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cfmd {__version__}")
    _add_console_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_console_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    # ------------------------------------------------------------------ demo
    defaults = inspect.signature(run_demo).parameters
    demo = commands.add_parser(
        "demo",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="run the whole pipeline on the embedded synthetic cohort (the README's main job)",
        description=(
            "Run the main job on the embedded synthetic cohort: generate the cohort, split patients 80/10/10,\n"
            "fit the StructuredVAE latent, attach teacher outputs (tiny stand-in Geneformer / ESM-2 checkpoints\n"
            "and the cohort's planted teacher signals), train CFMD and impute every patient, then score the\n"
            "held-out test patients against zero-masking.\n\n"
            "Writes into OUT: cohort.h5mu, results.h5mu, slice_r2.tsv, evaluation_slices.csv,\n"
            "evaluation_summary.csv and the figures latent_umap.png (observed vs imputed latent of the test\n"
            "patients), slice_r2.png (per-slice R^2 of the CFMD runs vs zero-mask) and\n"
            "reconstruction_utility.png (latent R^2 vs survival C-index). The per-slice table is printed on\n"
            "stdout. Takes about 3 minutes on 2 CPU cores with the default quick protocol (--protocol paper:\n"
            "the paper's training protocol)."
        ),
        epilog=(
            f"{_exit_codes_text()}\n\n"
            "examples:\n"
            "  cfmd demo\n"
            "  cfmd demo --out /tmp/demo --patients 600 --genes 1000 --overwrite\n"
            "  cfmd demo --protocol paper --patients 1200 --genes 2000"
        ),
    )
    demo.add_argument("--out", metavar="DIR", default="cfmd_demo_output", help="output folder (default: %(default)s)")
    demo.add_argument(
        "--patients",
        metavar="N",
        type=_int_at_least(10),
        default=defaults["n_patients"].default,
        help="patients of the synthetic cohort (>= 10; default: %(default)s)",
    )
    demo.add_argument(
        "--genes",
        metavar="N",
        type=_int_at_least(220),
        default=defaults["n_genes"].default,
        help="genes of the synthetic cohort (>= 220; default: %(default)s)",
    )
    demo.add_argument(
        "--protocol",
        choices=tuple(DEMO_PROTOCOLS),
        default=defaults["protocol"].default,
        help="'quick': short training, about 3 minutes on 2 CPU cores; 'paper': the paper's training protocol "
        "(tens of minutes; use with --patients 1200 --genes 2000) (default: %(default)s)",
    )
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="write into OUT even if it exists and is not empty, replacing the demo's files (default: off)",
    )
    demo.set_defaults(run=cmd_demo, parser=demo)

    # ------------------------------------------------------------------ impute
    impute = commands.add_parser(
        "impute",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="impute the structured latent of every patient from RNA (train CFMD or apply a saved model)",
        description=(
            "Impute the structured latent of every patient of INPUT from RNA with CFMD and write the result\n"
            "to OUTPUT.h5mu.\n\n"
            "With --model, the saved CFMD model is applied and nothing is trained (the model uses the data keys\n"
            "it was trained with; INPUT must hold the same genes and teacher embeddings). Otherwise CFMD is\n"
            "trained on the patients whose latent is observed (the .obs['cfmd_split'] split when present, else\n"
            "a seeded patient-disjoint 80/10/10 split), then every patient is imputed; training needs\n"
            "mdata['rna'], the observed latent in .obsm[LATENT_KEY] (NaN rows for RNA-only patients) with its\n"
            "layout in .uns, the Geneformer embedding in mdata['rna'].obsm and the gene embedding in\n"
            "mdata['rna'].varm.\n\n"
            "Writes OUTPUT.h5mu: INPUT plus .obsm[KEY_ADDED] (the imputed latent), .obsm[KEY_ADDED_provenance]\n"
            "(observed / imputed / zero-masked per slice), .uns[KEY_ADDED_layout] and .uns[KEY_ADDED] (model\n"
            "settings). The output file is written atomically; its path is printed on stdout."
        ),
        epilog=(
            f"{_exit_codes_text()}\n\n"
            "examples:\n"
            "  cfmd impute cohort.h5mu --out imputed.h5mu --save-model cfmd_model\n"
            "  cfmd impute cohort.h5mu --out imputed.h5mu --geneformer-key transcriptomic_context \\\n"
            "      --gene-embedding-key structural_features --fill all --max-epochs 100\n"
            "  cfmd impute new_patients.h5mu --model cfmd_model --out new_patients_imputed.h5mu"
        ),
    )
    impute.add_argument("input", metavar="INPUT", help="input MuData file (.h5mu) with mdata['rna']")
    impute.add_argument("--out", metavar="OUTPUT", required=True, help="output MuData file (.h5mu; required)")
    source = impute.add_mutually_exclusive_group()
    source.add_argument(
        "--model",
        metavar="DIR",
        help="folder of a saved CFMD model (from --save-model) to apply instead of training (default: train)",
    )
    source.add_argument(
        "--save-model", metavar="DIR", help="save the trained model to this folder (default: not saved)"
    )
    impute.add_argument(
        "--latent-key",
        metavar="KEY",
        default=DEFAULT_LATENT_KEY,
        help=".obsm key of the observed latent to train on (default: %(default)s)",
    )
    impute.add_argument(
        "--key-added",
        metavar="KEY",
        default=DEFAULT_IMPUTED_KEY,
        help=".obsm key of the imputed latent (default: %(default)s)",
    )
    impute.add_argument(
        "--fill",
        choices=("missing", "all"),
        default="missing",
        help="'missing': keep observed latents and impute the other patients; 'all': CFMD's prediction for "
        "every patient, as evaluation on held-out patients needs (default: %(default)s)",
    )
    impute.add_argument(
        "--geneformer-key",
        metavar="KEY",
        help=f"mdata['rna'].obsm key of the Geneformer embedding, {_TEACHER_HELP}; training only "
        f"(default: {trained['geneformer_key']})",
    )
    impute.add_argument(
        "--gene-embedding-key",
        metavar="KEY",
        help=f"mdata['rna'].varm key of the gene (ESM-2) embedding, {_TEACHER_HELP}; training only (default: "
        f"{trained['gene_embedding_key']})",
    )
    impute.add_argument(
        "--rna-scale",
        choices=("counts", "log2", "zscore"),
        help=f"scale of mdata['rna'].X; training only (default: {trained['rna_scale']})",
    )
    impute.add_argument(
        "--max-epochs",
        metavar="N",
        type=_positive_int,
        help=f"maximum training epochs, with early stopping; training only (default: {trained['max_epochs']})",
    )
    impute.add_argument(
        "--seed",
        metavar="N",
        type=_seed,
        help=f"seed of the split and of training; training only (default: {trained['seed']})",
    )
    impute.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT and the --save-model folder's model if they exist (default: off)",
    )
    impute.set_defaults(run=cmd_impute, parser=impute)

    # ------------------------------------------------------------------ benchmark
    method_list = "\n".join(f"  {name:<20}{method.label}" for name, method in METHODS.items())
    bench = commands.add_parser(
        "benchmark",
        parents=[common],
        formatter_class=_HelpFormatter,
        help="score CFMD, its ablations and the baselines on held-out patients (the paper's Tables 1-3)",
        description=(
            "Run cfmd.tl.benchmark on INPUT: every method is trained on the 'train' patients of the split\n"
            "(monitored on 'validation') once per seed and imputes the held-out 'test' patients from RNA alone;\n"
            "all are scored on the same test patients and bootstrap resamples (per-slice R^2, survival C-index\n"
            "of a frozen Cox head, paired differences with Bonferroni-adjusted p). Optionally also runs the\n"
            "leave-one-chromosome-out audit of the methylation decoders (cfmd.tl.loco_audit).\n\n"
            "INPUT must already hold what cfmd.tl.split_patients and cfmd.tl.fit_latent write:\n"
            "  .obs['cfmd_split'] (train / validation / test / rna_only), the observed latent\n"
            "  .obsm['X_structured'] with its layout (.uns['X_structured_layout']) and, for 'poe_rna_only',\n"
            "  .obsm['X_structured_rna_only']; survival in .obs['os_time'], .obs['os_event'] and\n"
            "  .obs['cancer_type']; the teacher embeddings for the CFMD methods; for the LOCO audit\n"
            "  mdata['rna'].var['chromosome'] and a 'regional_methylation' slice.\n\n"
            "Writes into OUT: tables/ (table1..3, slices, per_cancer_type, timing as CSV, tables.md, and the\n"
            "LOCO tables), figures/ (slice_r2.png, reconstruction_utility.png, loco.png) and report.md (what\n"
            "was run on what, tables, figures, timings). Table 3 is printed on stdout (Markdown).\n\n"
            f"methods (in the paper's run order):\n{method_list}"
        ),
        epilog=(
            f"{_exit_codes_text()}\n\n"
            "examples:\n"
            "  cfmd benchmark cohort.h5mu --out benchmark\n"
            "  cfmd benchmark cohort.h5mu --out quick --methods zero_mask ridge cfmd --seeds 42 \\\n"
            "      --max-epochs 50 --n-boot 200 --geneformer-key transcriptomic_context \\\n"
            "      --gene-embedding-key structural_features --loco fast"
        ),
    )
    bench.add_argument("input", metavar="INPUT", help="input MuData file (.h5mu) with the latent and the split")
    bench.add_argument("--out", metavar="DIR", required=True, help="output folder (required)")
    bench.add_argument(
        "--methods",
        metavar="METHOD",
        nargs="+",
        choices=list(METHODS),
        default=list(DEFAULT_METHODS),
        help="methods to run, in order ('matched_mlp' needs 'cfmd' before it; see the list above) "
        f"(default: all {len(DEFAULT_METHODS)} methods in the listed order)",
    )
    bench.add_argument(
        "--seeds",
        metavar="N",
        nargs="+",
        type=_seed,
        default=[42, 123, 456],
        help="training seeds; scores are averaged over them (default: 42 123 456)",
    )
    bench.add_argument(
        "--max-epochs",
        metavar="N",
        type=_positive_int,
        default=200,
        help="maximum epochs of the neural methods and of the LOCO models, with early stopping (default: %(default)s)",
    )
    bench.add_argument(
        "--n-boot",
        metavar="N",
        type=_positive_int,
        default=1000,
        help="bootstrap resamples of the confidence intervals (default: %(default)s)",
    )
    bench.add_argument(
        "--latent-key",
        metavar="KEY",
        default=DEFAULT_LATENT_KEY,
        help=".obsm key of the observed latent (default: %(default)s)",
    )
    bench.add_argument(
        "--split-key",
        metavar="COLUMN",
        default=DEFAULT_SPLIT_KEY,
        help=".obs column of the patient split (default: %(default)s)",
    )
    bench.add_argument(
        "--geneformer-key",
        metavar="KEY",
        default=DEFAULT_GENEFORMER_KEY,
        help=f"mdata['rna'].obsm key of the Geneformer embedding, {_TEACHER_HELP} (default: %(default)s)",
    )
    bench.add_argument(
        "--gene-embedding-key",
        metavar="KEY",
        default=DEFAULT_GENE_EMBEDDING_KEY,
        help=f"mdata['rna'].varm key of the gene (ESM-2) embedding, {_TEACHER_HELP} (default: %(default)s)",
    )
    bench.add_argument(
        "--rna-scale",
        choices=("counts", "log2", "zscore"),
        default="counts",
        help="scale of mdata['rna'].X (default: %(default)s)",
    )
    bench.add_argument(
        "--loco",
        choices=("strict", "fast", "none"),
        default="none",
        help="leave-one-chromosome-out audit: 'strict' retrains both decoders for each of 23 chromosomes (the "
        "paper's audit; hours on CPU), 'fast' masks at inference only, 'none' skips it; seeded with the first "
        "seed (default: %(default)s)",
    )
    bench.add_argument(
        "--overwrite",
        action="store_true",
        help="write into OUT even if it exists and is not empty, replacing the benchmark's files (default: off)",
    )
    bench.set_defaults(run=cmd_benchmark, parser=bench)

    # ------------------------------------------------------------------ prioritize
    from ._prioritize import add_prioritize_parser

    add_prioritize_parser(commands, common, _HelpFormatter, _exit_codes_text(), _int_at_least)

    # ------------------------------------------------------------------ rescue
    from ._rescue import add_rescue_parser

    add_rescue_parser(commands, common)
    return parser
