"""The ``cfmd`` command line: ``cfmd demo``, ``cfmd impute`` and ``cfmd benchmark``.

Made for pipelines: results go to files (and a short summary to stdout), progress and warnings to stderr, and every
failure ends with one line ``cfmd: error: <message>`` on stderr and a documented exit code (:data:`EXIT_CODES`);
a traceback is printed only with ``--debug``. Output paths are checked before any work is done.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import logging
import os
import re
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._logging import logger
from ._validation import InvalidInputError

if TYPE_CHECKING:
    from mudata import MuData

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_EXISTS",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT_EXISTS = 4
EXIT_INTERRUPTED = 130

#: Every exit code of the ``cfmd`` command and its meaning.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "unexpected failure (a bug or an environment problem; rerun with --debug for the traceback)",
    EXIT_USAGE: "usage error: unknown option or invalid option value (argparse)",
    EXIT_INPUT: "input or data error: missing or unreadable input, a missing modality, key or column, invalid "
    "data (cfmd.InvalidInputError)",
    EXIT_OUTPUT_EXISTS: "an output path exists (pass --overwrite to replace it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Loggers of the training stack that are set to WARNING unless ``--verbose`` (banners such as "GPU available").
NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi")
#: Libraries whose FutureWarning / DeprecationWarning (developer-facing) are hidden unless ``--verbose``.
NOISY_WARNING_MODULES = r"(lightning|pytorch_lightning|scvi|anndata|mudata|torch)(\.|$)"

_TEACHER_HELP = "'none' when no slice of the latent uses this teacher"


class CommandError(Exception):
    """A failure the command line reports as one line with a given exit code.

    Parameters
    ----------
    message
        What went wrong and, where possible, what to do.
    exit_code
        The process exit code (see :data:`EXIT_CODES`).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------- argument types
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


def _optional_key(value: str | None) -> str | None:
    """``'none'`` (any case) means no key."""
    return None if value is None or value.lower() == "none" else value


# ---------------------------------------------------------------------------------------------- the parser
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
    """The ``cfmd`` argument parser with its sub-commands ``demo``, ``impute`` and ``benchmark``."""
    from . import __version__
    from ._demo import run_demo
    from .tl import DEFAULT_METHODS, METHODS

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
            "  cfmd benchmark cohort.h5mu --out benchmark --seeds 42 --loco fast\n\n"
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
            "stdout. Takes about 10-20 minutes on 2 CPU cores at the default size."
        ),
        epilog=(
            f"{_exit_codes_text()}\n\n"
            "examples:\n"
            "  cfmd demo\n"
            "  cfmd demo --out /tmp/demo --patients 600 --genes 1000 --overwrite"
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
        "--overwrite",
        action="store_true",
        help="write into OUT even if it exists and is not empty, replacing the demo's files (default: off)",
    )
    demo.set_defaults(run=_cmd_demo, parser=demo)

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
        default="X_structured",
        help=".obsm key of the observed latent to train on (default: %(default)s)",
    )
    impute.add_argument(
        "--key-added", metavar="KEY", default="X_cfmd", help=".obsm key of the imputed latent (default: %(default)s)"
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
        "(default: X_geneformer)",
    )
    impute.add_argument(
        "--gene-embedding-key",
        metavar="KEY",
        help=f"mdata['rna'].varm key of the gene (ESM-2) embedding, {_TEACHER_HELP}; training only (default: X_esm2)",
    )
    impute.add_argument(
        "--rna-scale",
        choices=("counts", "log2", "zscore"),
        help="scale of mdata['rna'].X; training only (default: counts)",
    )
    impute.add_argument(
        "--max-epochs",
        metavar="N",
        type=_positive_int,
        help="maximum training epochs, with early stopping; training only (default: 200)",
    )
    impute.add_argument(
        "--seed", metavar="N", type=_seed, help="seed of the split and of training; training only (default: 42)"
    )
    impute.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT and the --save-model folder's model if they exist (default: off)",
    )
    impute.set_defaults(run=_cmd_impute, parser=impute)

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
        default="X_structured",
        help=".obsm key of the observed latent (default: %(default)s)",
    )
    bench.add_argument(
        "--split-key",
        metavar="COLUMN",
        default="cfmd_split",
        help=".obs column of the patient split (default: %(default)s)",
    )
    bench.add_argument(
        "--geneformer-key",
        metavar="KEY",
        default="X_geneformer",
        help=f"mdata['rna'].obsm key of the Geneformer embedding, {_TEACHER_HELP} (default: %(default)s)",
    )
    bench.add_argument(
        "--gene-embedding-key",
        metavar="KEY",
        default="X_esm2",
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
    bench.set_defaults(run=_cmd_benchmark, parser=bench)
    return parser


# ---------------------------------------------------------------------------------------------- console
class _ConsoleFormatter(logging.Formatter):
    """``[cfmd 14:03:12] message``; warnings and errors carry their level."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f" {record.levelname.lower()}:" if record.levelno >= logging.WARNING else ""
        text = f"[cfmd {stamp}]{level} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Console:
    """Routes the ``cfmd`` logger to stderr and quietens the training stack while a command runs.

    Parameters
    ----------
    verbosity
        ``"quiet"`` (warnings and errors), ``"normal"`` (progress) or ``"verbose"`` (debug messages, and the
        training stack's own messages and warnings).
    """

    def __init__(self, verbosity: str) -> None:
        self.verbosity = verbosity
        self._saved: list[tuple[logging.Logger, int, bool]] = []
        self._warnings = warnings.catch_warnings()
        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.setFormatter(_ConsoleFormatter())

    def __enter__(self) -> _Console:
        level = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}[self.verbosity]
        self._saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(self._handler)
        logger.setLevel(level)
        logger.propagate = False
        self._warnings.__enter__()
        if self.verbosity != "verbose":
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=NOISY_WARNING_MODULES)
        return self

    def training_stack(self) -> None:
        """Import the training stack (scvi-tools, Lightning) and, unless verbose, quieten its banners.

        Called right before training: Lightning sets its loggers' levels when it is imported, so they can only be
        changed afterwards, and importing it takes seconds that a failing input check should not wait for.
        """
        import scvi  # noqa: F401 - imports Lightning, which configures its loggers on import

        if self.verbosity == "verbose" or len(self._saved) > 1:
            return
        for name in NOISY_LOGGERS:
            other = logging.getLogger(name)
            self._saved.append((other, other.level, other.propagate))
            other.setLevel(max(other.getEffectiveLevel(), logging.WARNING))
        try:
            from lightning.fabric.utilities.warnings import PossibleUserWarning
        except ImportError:  # pragma: no cover - Lightning always comes with scvi-tools
            return
        warnings.filterwarnings("ignore", category=PossibleUserWarning)

    @contextlib.contextmanager
    def library_output(self) -> Iterator[None]:
        """Send what the training stack prints on stdout (scvi-tools' early-stopping notes) to stderr.

        stdout stays for results; with ``--quiet`` the printed notes are dropped.
        """
        with contextlib.redirect_stdout(io.StringIO() if self.verbosity == "quiet" else sys.stderr):
            yield

    def __exit__(self, *exc_info) -> None:
        self._warnings.__exit__(*exc_info)
        logger.removeHandler(self._handler)
        for other, level, propagate in reversed(self._saved):
            other.setLevel(level)
            other.propagate = propagate
        self._saved.clear()


def _one_line(text: object) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def _fail(message: object, exit_code: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"cfmd: error: {_one_line(message)}", file=sys.stderr, flush=True)
    return exit_code


def _exit_status(code: object) -> int:
    """The integer status of a ``SystemExit`` code (``None`` is success, a message is a usage error)."""
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cfmd`` console script.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    The exit code (:data:`EXIT_CODES`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            args.parser.error("--quiet and --verbose exclude each other")
    except SystemExit as stop:  # --help, --version and usage errors
        return _exit_status(stop.code)
    args.argv = argv
    verbosity = "verbose" if args.verbose else "quiet" if args.quiet else "normal"
    with _Console(verbosity) as console:
        args.console = console
        try:
            return args.run(args)
        except SystemExit as stop:  # usage errors found by a command
            return _exit_status(stop.code)
        except CommandError as error:
            return _fail(error, error.exit_code, debug=args.debug)
        except InvalidInputError as error:
            return _fail(error, EXIT_INPUT, debug=args.debug)
        except KeyboardInterrupt:
            return _fail("interrupted", EXIT_INTERRUPTED, debug=args.debug)
        except Exception as error:  # noqa: BLE001 - the one place that turns any failure into an exit code
            hint = "" if args.debug else " (rerun with --debug for the traceback)"
            return _fail(f"unexpected failure: {type(error).__name__}: {error}{hint}", EXIT_FAILURE, debug=args.debug)


# ---------------------------------------------------------------------------------------------- shared checks
def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise CommandError(f"input {path} does not exist", EXIT_INPUT)
    if not path.is_file():
        raise CommandError(f"input {path} is not a file", EXIT_INPUT)


def _check_output_file(path: Path, *, overwrite: bool, what: str = "output") -> None:
    if path.is_dir():
        raise CommandError(f"{what} {path} is a folder; give the path of a .h5mu file", EXIT_OUTPUT_EXISTS)
    if path.exists() and not overwrite:
        raise CommandError(f"{what} {path} exists; pass --overwrite to replace it", EXIT_OUTPUT_EXISTS)


def _check_output_dir(path: Path, *, overwrite: bool, what: str = "output folder") -> None:
    if path.exists() and not path.is_dir():
        raise CommandError(f"{what} {path} exists and is not a folder", EXIT_OUTPUT_EXISTS)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise CommandError(
            f"{what} {path} exists and is not empty; pass --overwrite to write into it", EXIT_OUTPUT_EXISTS
        )


def _read_input(path: Path) -> MuData:
    import mudata

    logger.info("reading %s", path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mdata = mudata.read_h5mu(path)
    except Exception as error:  # any reader failure means the file is not a readable MuData (re-raised below)
        raise CommandError(
            f"cannot read {path} as a MuData .h5mu file ({type(error).__name__}: {_one_line(error)})", EXIT_INPUT
        ) from error
    for warning in caught:  # the reader's warnings matter only for a file that could be read
        if not issubclass(warning.category, FutureWarning | DeprecationWarning):
            logger.warning("%s: %s", path, warning.message)
    return mdata


@contextlib.contextmanager
def _about(path: Path) -> Iterator[None]:
    """Name the input file in the message of an input check that fails."""
    try:
        yield
    except InvalidInputError as error:
        raise CommandError(f"{path}: {error}", EXIT_INPUT) from error


def _write_h5mu(mdata: MuData, path: Path) -> None:
    """Write atomically: to a temporary file next to ``path``, then rename (a failed write leaves no partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}.h5mu")
    try:
        mdata.write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("wrote %s", path)


def _use_file_backend() -> None:
    """Draw figures without a display."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


def _command_line(args: argparse.Namespace) -> str:
    return shlex.join(["cfmd", *args.argv])


# ---------------------------------------------------------------------------------------------- cfmd demo
def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo
    from ._report import demo_figures

    out = Path(args.out)
    _check_output_dir(out, overwrite=args.overwrite)
    _use_file_backend()
    created = not out.exists()
    args.console.training_stack()
    try:
        code = run_demo(out=out, n_patients=args.patients, n_genes=args.genes)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing was written: leave no empty folder behind
        raise
    if code != EXIT_OK:
        return code
    logger.info("figures: scoring the test patients against zero-masking")
    figures = demo_figures(_read_input(out / "results.h5mu"), out)
    for name, reason in figures.skipped.items():
        logger.warning("%s not drawn: %s", name, reason)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- cfmd impute
#: Options of ``cfmd impute`` that only matter when training, with their defaults.
_TRAINING_DEFAULTS = {
    "geneformer_key": "X_geneformer",
    "gene_embedding_key": "X_esm2",
    "rna_scale": "counts",
    "max_epochs": 200,
    "seed": 42,
}


def _cmd_impute(args: argparse.Namespace) -> int:
    from . import tl

    input_path, out = Path(args.input), Path(args.out)
    if out.suffix != ".h5mu":
        args.parser.error(f"--out must name a .h5mu file; got {str(out)!r}")
    given = [name for name in _TRAINING_DEFAULTS if getattr(args, name) is not None]
    for name, default in _TRAINING_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    _check_input_file(input_path)
    model_dir = Path(args.model) if args.model is not None else None
    if model_dir is not None:
        if not (model_dir / "model.pt").is_file():
            raise CommandError(f"--model {model_dir} is not a folder with a saved CFMD model (model.pt)", EXIT_INPUT)
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            logger.warning("%s only apply to training and are ignored with --model.", options)
    _check_output_file(out, overwrite=args.overwrite)
    if args.save_model is not None:
        _check_output_dir(Path(args.save_model), overwrite=args.overwrite, what="--save-model folder")

    mdata = _read_input(input_path)
    geneformer_key, gene_embedding_key = _optional_key(args.geneformer_key), _optional_key(args.gene_embedding_key)
    with _about(input_path):
        from ._validation import check_modality

        check_modality(mdata, "rna")
        if model_dir is None:
            from .models._latent_imputer import validate_imputer_setup

            validate_imputer_setup(
                mdata, latent_key=args.latent_key, rna_key="rna", rna_layer=None, rna_scale=args.rna_scale,
                geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
            )  # fmt: skip

    args.console.training_stack()
    start = time.perf_counter()
    options = {"latent_key": args.latent_key, "key_added": args.key_added, "fill": args.fill}
    if model_dir is not None:
        logger.info("imputing with the saved model %s", model_dir)
        try:
            with args.console.library_output():
                tl.impute(mdata, model=model_dir, **options)
        except InvalidInputError:
            raise
        except (ValueError, KeyError) as error:
            raise CommandError(
                f"the saved model {model_dir} does not fit {input_path}: {_one_line(error)}", EXIT_INPUT
            ) from error
    else:
        logger.info("training CFMD on %s (up to %d epochs, seed %d)", input_path, args.max_epochs, args.seed)
        with args.console.library_output():
            tl.impute(
                mdata, geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
                rna_scale=args.rna_scale, max_epochs=args.max_epochs, seed=args.seed,
                train_kwargs={"enable_progress_bar": False}, save_model=args.save_model, **options,
            )  # fmt: skip
        if args.save_model is not None:
            logger.info("saved the model to %s", args.save_model)
    _write_h5mu(mdata, out)
    logger.info("done in %.0f s", time.perf_counter() - start)
    print(out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- cfmd benchmark
def _check_benchmark_input(mdata: MuData, args: argparse.Namespace) -> None:
    """Everything the benchmark (and the LOCO audit) will need, before any training."""
    from ._layout import LatentLayout
    from ._validation import check_modality
    from .models._latent_imputer import validate_imputer_setup
    from .tl._split import split_indices

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
    split_indices(mdata, args.split_key)
    layout = LatentLayout.from_mudata(mdata, args.latent_key)
    cfmd_methods = [m for m in args.methods if m.startswith("cfmd")]
    teachers = {}
    for strategy, option, key, without in (
        ("geneformer", "--geneformer-key", _optional_key(args.geneformer_key), "cfmd_no_geneformer"),
        ("esm", "--gene-embedding-key", _optional_key(args.gene_embedding_key), "cfmd_no_esm"),
    ):
        needed = bool(layout.with_strategy(strategy)) and any(m != without for m in cfmd_methods)
        if needed and key is None:
            raise InvalidInputError(f"the CFMD methods need the {strategy} teacher embedding but {option} is 'none'.")
        teachers[strategy] = key if needed else None
    validate_imputer_setup(
        mdata, latent_key=args.latent_key, rna_key="rna", rna_layer=None, rna_scale=args.rna_scale,
        geneformer_key=teachers["geneformer"], gene_embedding_key=teachers["esm"],
    )  # fmt: skip
    rna_only_key = f"{args.latent_key}_rna_only"
    if "poe_rna_only" in args.methods and rna_only_key not in mdata.obsm:
        raise InvalidInputError(
            f"method 'poe_rna_only' needs the RNA-only posterior mdata.obsm[{rna_only_key!r}] (cfmd.tl.fit_latent "
            "writes it); leave the method out otherwise."
        )
    if args.loco != "none":
        if not layout.with_strategy("regional_methylation"):
            raise InvalidInputError("the LOCO audit needs a 'regional_methylation' slice in the latent's layout.")
        if "chromosome" not in mdata.mod["rna"].var:
            raise InvalidInputError("the LOCO audit needs mdata['rna'].var['chromosome'].")


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from . import tl
    from ._report import benchmark_figures, benchmark_report, describe_cohort

    input_path, out = Path(args.input), Path(args.out)
    _check_input_file(input_path)
    _check_output_dir(out, overwrite=args.overwrite)
    mdata = _read_input(input_path)
    with _about(input_path):
        _check_benchmark_input(mdata, args)
    cohort = describe_cohort(mdata, latent_key=args.latent_key, split_key=args.split_key)
    _use_file_backend()
    args.console.training_stack()

    start = time.perf_counter()
    timings = {}
    geneformer_key, gene_embedding_key = _optional_key(args.geneformer_key), _optional_key(args.gene_embedding_key)
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
        out / "report.md", command=_command_line(args), input_path=input_path, cohort=cohort, settings=settings,
        result=result, figures=figures, tables=tables, timings=timings, loco=loco,
    )  # fmt: skip
    logger.info("wrote %s (%.0f s in all)", report, timings["total"])
    print(tl.format_markdown(result["table3"]), end="")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
