"""``cfmd impute``: train CFMD (or apply a saved model) and write the imputed latent."""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

from .._logging import logger
from .._validation import InvalidInputError
from ._console import EXIT_INPUT, EXIT_OK, CommandError, one_line
from ._io import about, check_input_file, check_output_dir, check_output_file, read_input, write_h5mu
from ._parser import optional_key

#: Options of ``cfmd impute`` that only matter when training; their defaults are those of :func:`cfmd.tl.impute`.
TRAINING_OPTIONS = ("geneformer_key", "gene_embedding_key", "rna_scale", "max_epochs", "seed")


def training_defaults() -> dict:
    """``{option: default}`` of :data:`TRAINING_OPTIONS`, read from the signature of :func:`cfmd.tl.impute`."""
    from .._constants import CFMD_MAX_EPOCHS
    from ..tl._impute import impute  # the function itself (cfmd.tl.impute may be replaced, e.g. in tests)

    parameters = inspect.signature(impute).parameters
    defaults = {name: parameters[name].default for name in TRAINING_OPTIONS}
    if defaults["max_epochs"] is None:  # tl.impute: None means the model's own default; this command trains CFMD
        defaults["max_epochs"] = CFMD_MAX_EPOCHS
    return defaults


def cmd_impute(args: argparse.Namespace) -> int:
    from .._transaction import unchanged_on_error

    input_path, out = Path(args.input), Path(args.out)
    if out.suffix != ".h5mu":
        args.parser.error(f"--out must name a .h5mu file; got {str(out)!r}")
    defaults = training_defaults()
    given = [name for name in defaults if getattr(args, name) is not None]
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_input_file(input_path)
    model_dir = Path(args.model) if args.model is not None else None
    if model_dir is not None:
        from ..models._io import check_model_folder

        try:
            check_model_folder(model_dir)
        except InvalidInputError as error:
            raise CommandError(
                f"--model {model_dir} is not a folder with a saved CFMD model: {one_line(error)}", EXIT_INPUT
            ) from None
        if given:
            options = ", ".join("--" + name.replace("_", "-") for name in given)
            logger.warning("%s only apply to training and are ignored with --model.", options)
    check_output_file(out, overwrite=args.overwrite)
    if args.save_model is not None:
        check_output_dir(Path(args.save_model), overwrite=args.overwrite, what="--save-model folder")

    mdata = read_input(input_path)
    geneformer_key, gene_embedding_key = optional_key(args.geneformer_key), optional_key(args.gene_embedding_key)
    with about(input_path):
        from .._validation import check_modality

        check_modality(mdata, "rna")
        if model_dir is None:
            from ..models._latent_imputer import validate_imputer_setup

            validate_imputer_setup(
                mdata, latent_key=args.latent_key, rna_key="rna", rna_layer=None, rna_scale=args.rna_scale,
                geneformer_key=geneformer_key, gene_embedding_key=gene_embedding_key,
            )  # fmt: skip

    args.console.training_stack()
    start = time.perf_counter()
    options = {"latent_key": args.latent_key, "key_added": args.key_added, "fill": args.fill}
    with unchanged_on_error(mdata):  # tl.impute restores on error too; this covers the CLI's own steps
        _run_impute(args, mdata, model_dir, input_path, options, geneformer_key, gene_embedding_key)
    write_h5mu(mdata, out)
    logger.info("done in %.0f s", time.perf_counter() - start)
    print(out)
    return EXIT_OK


def _run_impute(args, mdata, model_dir, input_path, options, geneformer_key, gene_embedding_key) -> None:
    from .. import tl

    if model_dir is not None:
        logger.info("imputing with the saved model %s", model_dir)
        try:
            with args.console.library_output():
                tl.impute(mdata, model=model_dir, **options)
        except InvalidInputError:
            raise
        except (ValueError, KeyError) as error:
            raise CommandError(
                f"the saved model {model_dir} does not fit {input_path}: {one_line(error)}", EXIT_INPUT
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
