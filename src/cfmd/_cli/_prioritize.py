"""``cfmd prioritize``: counterfactual assay prioritisation and the acquisition curve (cfmd.tl.prioritize_assays)."""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

from .._logging import logger
from .._validation import InvalidInputError
from ._console import EXIT_OK
from ._io import about, check_input_file, check_output_file, read_input, use_file_backend, write_h5mu

#: Options of ``cfmd prioritize`` passed to :func:`cfmd.tl.prioritize_assays`; their defaults are read from it.
PRIORITIZE_OPTIONS = (
    "modality", "generated_key", "task", "label_key", "time_key", "event_key", "score", "unobserved", "n_repeats",
    "n_random", "n_steps", "seed", "key_added",
)  # fmt: skip
#: Generations per repeat drawn by ``--model`` when ``--n-samples`` is not given.
SAMPLES_PER_REPEAT = 5


def prioritize_defaults() -> dict:
    """``{option: default}`` of :data:`PRIORITIZE_OPTIONS` and ``max_epochs``, read from the tl signatures.

    :func:`cfmd.tl.prioritize_assays` gives the former, :func:`cfmd.tl.generate` the latter.
    """
    from ..tl._generate import generate
    from ..tl._prioritize_assays import prioritize_assays

    parameters = inspect.signature(prioritize_assays).parameters
    defaults = {name: parameters[name].default for name in PRIORITIZE_OPTIONS}
    defaults["max_epochs"] = inspect.signature(generate).parameters["max_epochs"].default
    return defaults


def cmd_prioritize(args: argparse.Namespace) -> int:
    from .. import pl, tl
    from .._transaction import unchanged_on_error
    from ..tl._generate import GENERATIVE_MODELS

    input_path, out = Path(args.input), Path(args.out)
    if out.suffix != ".h5mu":
        args.parser.error(f"--out must name a .h5mu file; got {str(out)!r}")
    if args.figure is not None and Path(args.figure).suffix.lower() not in (".png", ".pdf", ".svg"):
        args.parser.error(f"--figure must name a .png, .pdf or .svg file; got {args.figure!r}")
    if args.task == "classification" and args.label_key is None:
        args.parser.error("--task classification needs --label-key (the .obs column of the class labels)")
    check_input_file(input_path)
    if args.model is not None and args.model not in GENERATIVE_MODELS and not Path(args.model).is_dir():
        args.parser.error(f"--model must be one of {', '.join(GENERATIVE_MODELS)} or a saved model folder")
    check_output_file(out, overwrite=args.overwrite)
    if args.figure is not None:
        check_output_file(Path(args.figure), overwrite=args.overwrite, what="--figure")
    mdata = read_input(input_path)
    samples_key = f"{args.generated_key}_samples"
    with about(input_path):
        if args.model is None and samples_key not in mdata.obsm:
            raise InvalidInputError(
                f"no generations mdata.obsm[{samples_key!r}]; pass --model to generate them, or run "
                f"cfmd.tl.generate(mdata, key_added={args.generated_key!r}, return_samples=True) first."
            )
    args.console.training_stack()
    start = time.perf_counter()
    with unchanged_on_error(mdata):
        if args.model is not None:
            n_samples = args.n_samples or SAMPLES_PER_REPEAT * args.n_repeats
            logger.info("generating %d versions of %r per patient with %s", n_samples, args.modality, args.model)
            with args.console.library_output():
                tl.generate(
                    mdata, model=args.model, target=args.modality, conditions=args.conditions,
                    key_added=args.generated_key, n_samples=n_samples, return_samples=True, seed=args.seed,
                    max_epochs=args.max_epochs,
                )  # fmt: skip
        with args.console.library_output(), about(input_path):
            tl.prioritize_assays(
                mdata, args.modality, generated_key=args.generated_key, task=args.task, label_key=args.label_key,
                time_key=args.time_key, event_key=args.event_key, score=args.score, unobserved=args.unobserved,
                n_repeats=args.n_repeats, n_random=args.n_random, n_steps=args.n_steps, seed=args.seed,
                key_added=args.key_added,
            )  # fmt: skip
    write_h5mu(mdata, out)
    if args.figure is not None:
        use_file_backend()
        import matplotlib.pyplot as plt

        pl.acquisition_curve(mdata, key=args.key_added, save=args.figure)
        plt.close("all")
        logger.info("wrote %s", args.figure)
    logger.info("done in %.0f s", time.perf_counter() - start)
    test = mdata.uns[args.key_added]["test"]
    settings = mdata.uns[args.key_added]["settings"]
    print("| modality | metric | test patients | area informed - random (95% CI) | Wilcoxon p | t-test p | repeats |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.modality} | {settings['metric']} | {settings['n_test']} | {test['area_difference']:+.4f} "
        f"({test['area_difference_low']:+.4f} to {test['area_difference_high']:+.4f}) | {test['p_wilcoxon']:.3g} | "
        f"{test['p_ttest']:.3g} | {test['n_repeats']} |"
    )
    print(out)
    return EXIT_OK


def add_prioritize_parser(commands, common, formatter, exit_codes_text: str, int_at_least) -> None:
    """The ``cfmd prioritize`` sub-command (defaults read from :func:`cfmd.tl.prioritize_assays`)."""
    from ..tl._generate import GENERATIVE_MODELS
    from ..tl._prioritize_assays import PRIORITIZE_SCORES, PRIORITIZE_TASKS

    defaults = prioritize_defaults()
    positive_int, seed_type = int_at_least(1), int_at_least(0)
    parser = commands.add_parser(
        "prioritize",
        parents=[common],
        formatter_class=formatter,
        help="rank test patients by how much observing a modality would change a frozen model's prediction "
        "(counterfactual score) and compare informed vs random acquisition (seed 004's Figure 4)",
        description=(
            "Run cfmd.tl.prioritize_assays on INPUT: a downstream model (survival head or logistic classifier)\n"
            "is trained once on the training patients' observed latents and frozen; each test patient's\n"
            "counterfactual score is how much its prediction changes across generated versions of MODALITY;\n"
            "then the modality is observed for a growing fraction of test patients, by descending score or at\n"
            "random, with repeats, and the areas under the two curves are compared with paired tests.\n\n"
            "INPUT must hold the generations of cfmd.tl.generate(..., return_samples=True) under\n"
            "--generated-key, or pass --model to train (or load) a generative model and generate them here.\n"
            "Either way the split recorded by cfmd.tl.generate decides train / validation / test patients.\n\n"
            "Writes OUTPUT.h5mu: INPUT plus .obs[KEY_ADDED_score], .obs[KEY_ADDED_rank] and .uns[KEY_ADDED]\n"
            "(curves, summary, areas, scores, per_cancer_type, test, settings); with --figure, the acquisition\n"
            "curve. A one-row Markdown table (area between the curves and p-values) is printed on stdout."
        ),
        epilog=(
            f"{exit_codes_text}\n\n"
            "examples:\n"
            "  cfmd prioritize generated.h5mu --out prioritized.h5mu --modality meth --figure acquisition.png\n"
            "  cfmd prioritize cohort.h5mu --out prioritized.h5mu --model diffusion --conditions rna cancer_type\n"
            "  cfmd prioritize cohort.h5mu --out cls.h5mu --model meth_cd --task classification --label-key stage"
        ),
    )
    parser.add_argument("input", metavar="INPUT", help="input MuData file (.h5mu)")
    parser.add_argument("--out", metavar="OUTPUT", required=True, help="output MuData file (.h5mu; required)")
    parser.add_argument(
        "--modality", default=defaults["modality"], help="slice or modality to prioritise (default: %(default)s)"
    )
    parser.add_argument(
        "--generated-key",
        metavar="KEY",
        default=defaults["generated_key"],
        help="key_added of cfmd.tl.generate whose generations are read (or written with --model) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help=f"generate first: {' or '.join(GENERATIVE_MODELS)} (trained on INPUT's split) or a saved model "
        "folder (default: use the generations already in INPUT)",
    )
    parser.add_argument(
        "--conditions",
        metavar="CONDITION",
        nargs="+",
        help="conditions of a model trained with --model (default: the model's default, RNA plus cancer type "
        "and the Geneformer embedding when registered)",
    )
    parser.add_argument(
        "--n-samples",
        metavar="N",
        type=positive_int,
        help=f"generations per patient with --model (default: {SAMPLES_PER_REPEAT} x --n-repeats)",
    )
    parser.add_argument(
        "--max-epochs",
        metavar="N",
        type=positive_int,
        default=defaults["max_epochs"],
        help="maximum training epochs of a model trained with --model (default: %(default)s)",
    )
    parser.add_argument(
        "--task",
        choices=tuple(PRIORITIZE_TASKS),
        default=defaults["task"],
        help="downstream task (default: %(default)s)",
    )
    parser.add_argument(
        "--label-key",
        metavar="COLUMN",
        help="'.obs' column of the class labels, required with --task classification (default: none)",
    )
    parser.add_argument(
        "--time-key", metavar="COLUMN", default=defaults["time_key"], help="survival time column (default: %(default)s)"
    )
    parser.add_argument(
        "--event-key", metavar="COLUMN", default=defaults["event_key"], help="event column (default: %(default)s)"
    )
    parser.add_argument(
        "--score",
        choices=PRIORITIZE_SCORES,
        default=defaults["score"],
        help="'variance': spread of the predictions across generations; 'ablation': distance from the prediction "
        "with the modality ablated (default: %(default)s)",
    )
    parser.add_argument(
        "--unobserved",
        choices=("imputed", "ablated"),
        default=defaults["unobserved"],
        help="what the model sees for patients not yet observed (default: %(default)s)",
    )
    parser.add_argument(
        "--n-repeats",
        metavar="N",
        type=int_at_least(2),
        default=defaults["n_repeats"],
        help="repeats of the experiment (>= 2; default: %(default)s)",
    )
    parser.add_argument(
        "--n-random",
        metavar="N",
        type=positive_int,
        default=defaults["n_random"],
        help="random orders per repeat (default: %(default)s)",
    )
    parser.add_argument(
        "--n-steps",
        metavar="N",
        type=positive_int,
        default=defaults["n_steps"],
        help="observed fractions from 0 to 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=seed_type,
        default=defaults["seed"],
        help="seed of everything (default: %(default)s)",
    )
    parser.add_argument(
        "--key-added",
        metavar="KEY",
        default=defaults["key_added"],
        help="'.uns' key of the results (default: %(default)s)",
    )
    parser.add_argument("--figure", metavar="PATH", help="also draw the acquisition curve to this file (default: none)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT and --figure if they exist (default: off)"
    )
    parser.set_defaults(run=cmd_prioritize, parser=parser)
