"""Imputation methods behind one interface: CFMD, its ablations and the paper's baselines.

Every method gets the same :class:`MethodContext` (data, layout, the patient split, seed) and returns the
imputed latent of every patient in latent units from :meth:`ImputationMethod.fit_predict`; all are trained on
the training split only, monitored on the validation split and never see the test patients' latents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._constants import DEFAULT_GENE_EMBEDDING_KEY, DEFAULT_GENEFORMER_KEY, DEFAULT_RNA_KEY, DEFAULT_SEED
from .._layout import LatentLayout
from .._logging import logger
from .._validation import InvalidInputError, describe_examples

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["METHODS", "ImputationMethod", "MethodContext", "get_method"]


@dataclass
class MethodContext:
    """What every method is given.

    Parameters
    ----------
    mdata
        The MuData (RNA for every patient, teacher embeddings, the observed latent).
    latent_key
        ``.obsm`` key of the observed latent (NaN rows: not observed).
    layout
        The latent's layout.
    split_key
        ``.obs`` column with ``train`` / ``validation`` / ``test`` labels (see :func:`~cfmd.tl.split_patients`).
    seed
        Seed of this run.
    rna_key, rna_layer, rna_scale
        The RNA modality, layer and scale.
    geneformer_key, gene_embedding_key
        Teacher embeddings (``mdata[rna_key].obsm`` / ``.varm``).
    rna_only_key
        ``.obsm`` key of the StructuredVAE RNA-only posterior (PoE baseline).
    max_epochs
        Maximum training epochs of the neural methods.
    cfmd_kwargs
        Extra keyword arguments of every :class:`~cfmd.models.CFMD` (e.g. ``rmd_kwargs``).
    train_kwargs
        Extra keyword arguments of every ``train`` call.
    """

    mdata: MuData
    latent_key: str
    layout: LatentLayout
    split_key: str
    seed: int = DEFAULT_SEED
    rna_key: str = DEFAULT_RNA_KEY
    rna_layer: str | None = None
    rna_scale: str = "counts"
    geneformer_key: str | None = DEFAULT_GENEFORMER_KEY
    gene_embedding_key: str | None = DEFAULT_GENE_EMBEDDING_KEY
    rna_only_key: str | None = None
    max_epochs: int = 200
    cfmd_kwargs: Mapping = field(default_factory=dict)
    train_kwargs: Mapping = field(default_factory=dict)
    state: dict = field(default_factory=dict)  # shared between methods of one run (e.g. CFMD's parameter count)


@dataclass(frozen=True)
class ImputationMethod:
    """A named imputation method.

    Parameters
    ----------
    name
        Identifier (``"cfmd"``, ``"pesd"``, ...).
    label
        Display name (as in the paper's tables).
    description
        One line on what it is.
    run
        ``run(context) -> (n_patients, n_dims)`` imputed latent in latent units.
    imputes
        Whether the method produces a latent (``False`` for zero-masking, whose latent :math:`R^2` is N/A).
    check
        ``check(context)`` raising :class:`~cfmd.InvalidInputError` when the data lack what the method needs; run
        for every method before any of them trains.
    """

    name: str
    label: str
    description: str
    run: Callable[[MethodContext], np.ndarray]
    imputes: bool = True
    check: Callable[[MethodContext], None] | None = None

    def fit_predict(self, context: MethodContext) -> np.ndarray:
        """Train on the context's training split (if needed) and impute every patient."""
        logger.info("benchmark: running %s (seed %d).", self.name, context.seed)
        out = np.asarray(self.run(context), dtype=np.float32)
        context.layout.check_width(out.shape[1], field=f"the prediction of method {self.name!r}")
        return out


# ---------------------------------------------------------------------- runners
def _split(context: MethodContext) -> dict[str, np.ndarray]:
    from ._split import split_indices

    return split_indices(context.mdata, context.split_key)


def _train(model, context: MethodContext) -> None:
    import scvi

    scvi.settings.seed = int(context.seed)
    options = {"max_epochs": context.max_epochs, "enable_progress_bar": False, **dict(context.train_kwargs)}
    model.train(**options)


def _teacher_flags(variant: Mapping, cfmd_kwargs: Mapping) -> dict[str, bool]:
    """Whether CFMD uses each teacher: the method's own setting, else ``cfmd_kwargs``, else True."""
    return {
        teacher: bool(variant.get(teacher, dict(cfmd_kwargs or {}).get(teacher, True)))
        for teacher in ("use_geneformer", "use_esm")
    }


def _check_teachers(**variant) -> Callable[[MethodContext], None]:
    def check(context: MethodContext) -> None:
        rna = context.mdata.mod[context.rna_key]
        flags = _teacher_flags(variant, context.cfmd_kwargs)
        if flags["use_geneformer"] and context.layout.with_strategy("geneformer"):
            if context.geneformer_key is None or context.geneformer_key not in rna.obsm:
                raise InvalidInputError(
                    f"mdata[{context.rna_key!r}].obsm has no Geneformer embedding {context.geneformer_key!r}, needed by "
                    "the layout's 'geneformer' slices (see cfmd.pp.geneformer); or run CFMD without it "
                    "(cfmd_kwargs={'use_geneformer': False})."
                )
        if flags["use_esm"] and context.layout.with_strategy("esm"):
            if context.gene_embedding_key is None or context.gene_embedding_key not in rna.varm:
                raise InvalidInputError(
                    f"mdata[{context.rna_key!r}].varm has no gene embedding {context.gene_embedding_key!r}, needed by "
                    "the layout's 'esm' slices (see cfmd.pp.esm_gene_embeddings); or run CFMD without it "
                    "(cfmd_kwargs={'use_esm': False})."
                )

    return check


def _run_cfmd(**options) -> Callable[[MethodContext], np.ndarray]:
    def run(context: MethodContext) -> np.ndarray:
        import scvi

        from ..models import CFMD

        variant = dict(options)
        layout = context.layout
        flags = _teacher_flags(variant, context.cfmd_kwargs)
        for teacher, strategy, key in (
            ("use_geneformer", "geneformer", context.geneformer_key),
            ("use_esm", "esm", context.gene_embedding_key),
        ):
            if not flags[teacher]:
                continue
            if layout.with_strategy(strategy) and key is None:
                raise InvalidInputError(f"Method needs the {strategy} teacher embedding but its key is None.")
        use_gf = flags["use_geneformer"] and bool(layout.with_strategy("geneformer"))
        use_esm = flags["use_esm"] and bool(layout.with_strategy("esm"))
        geneformer_key = context.geneformer_key if use_gf else None
        embedding_key = context.gene_embedding_key if use_esm else None
        if variant.get("layout") == "methylation_only":
            variant.pop("layout")
            keep = {s.name for s in layout.with_strategy("regional_methylation")}
            layout = layout.replace_strategies(**{s.name: "zero" for s in layout if s.name not in keep})
            geneformer_key = embedding_key = None
        scvi.settings.seed = int(context.seed)
        CFMD.setup_mudata(
            context.mdata,
            latent_key=context.latent_key,
            rna_key=context.rna_key,
            rna_layer=context.rna_layer,
            rna_scale=context.rna_scale,
            geneformer_key=geneformer_key,
            gene_embedding_key=embedding_key,
        )
        kwargs = {**dict(context.cfmd_kwargs), **variant}
        if kwargs.get("methylation_decoder") == "pointwise":
            kwargs.pop("rmd_kwargs", None)
        model = CFMD(context.mdata, layout=layout, split_key=context.split_key, seed=context.seed, **kwargs)
        _train(model, context)
        prediction = model.get_imputed_latent(context.mdata)
        if not variant:
            context.state["cfmd_parameters"] = int(sum(p.numel() for p in model.module.parameters() if p.requires_grad))
            context.state["cfmd_slices"] = list(model.module.predicted_slices)
            context.state["cfmd_prediction"] = prediction  # reused by 'cfmd_auto' (same split, same seed)
        return prediction

    return run


def _run_latent_regressor(kind: str) -> Callable[[MethodContext], np.ndarray]:
    def run(context: MethodContext) -> np.ndarray:
        import scvi

        from ..models import LatentRegressor, mlp_width_for_parameters

        scvi.settings.seed = int(context.seed)
        LatentRegressor.setup_mudata(
            context.mdata,
            latent_key=context.latent_key,
            rna_key=context.rna_key,
            rna_layer=context.rna_layer,
            rna_scale=context.rna_scale,
        )
        n_genes = context.mdata.mod[context.rna_key].n_vars
        if kind == "pesd":
            slices, n_hidden = None, 1024
        else:
            slices = context.state.get("cfmd_slices") or [s.name for s in context.layout if s.strategy != "zero"]
            n_out = sum(context.layout[s].dim for s in slices)
            target = context.state.get("cfmd_parameters")
            if target is None:
                raise InvalidInputError(
                    "The matched-capacity MLP needs CFMD's parameter count: run method 'cfmd' before 'matched_mlp'."
                )
            n_hidden = mlp_width_for_parameters(target, n_genes, n_out, 2)
            logger.info("matched-capacity MLP: width %d for %d CFMD parameters.", n_hidden, target)
        model = LatentRegressor(
            context.mdata, layout=context.layout, slices=slices, n_hidden=n_hidden, split_key=context.split_key,
            seed=context.seed,
        )  # fmt: skip
        _train(model, context)
        return model.get_imputed_latent(context.mdata)

    return run


def _run_ridge(context: MethodContext) -> np.ndarray:
    """Ridge on standardised log-expression, one per slice, fitted on the training split only.

    Each slice gets its own penalty, chosen by efficient leave-one-out CV on the training patients
    (:class:`~sklearn.linear_model.RidgeCV`); normalisation statistics come from the training patients.
    """
    from ._students import fit_ridge, predict_ridge, ridge_log_expression

    parts = _split(context)
    log_expr = ridge_log_expression(context.mdata, context.rna_key, context.rna_layer, context.rna_scale)
    latent = np.asarray(context.mdata.obsm[context.latent_key], dtype=np.float64)
    state = fit_ridge(log_expr[parts["train"]], latent[parts["train"]], context.layout)
    logger.info("ridge: per-slice alpha %s.", {k: round(v["alpha"], 3) for k, v in state["slices"].items()})
    context.state["ridge_state"] = state
    return predict_ridge(state, log_expr, context.layout)


def _run_cfmd_auto(context: MethodContext) -> np.ndarray:
    """CFMD with students chosen per slice on the validation split (see :func:`cfmd.tl.impute`, ``students='auto'``)."""
    from ._students import choose_students, compose

    cfmd_prediction = context.state.get("cfmd_prediction")
    if cfmd_prediction is None:
        cfmd_prediction = _run_cfmd()(context)
    ridge_prediction = context.state.get("ridge_prediction")
    if ridge_prediction is None:
        ridge_prediction = _run_ridge(context)
    parts = _split(context)
    latent = np.asarray(context.mdata.obsm[context.latent_key], dtype=np.float64)
    val = parts["validation"]
    candidates = {"cfmd": cfmd_prediction, "ridge": ridge_prediction}
    choice = choose_students(
        latent[val], {k: v[val] for k, v in candidates.items()}, context.layout, slices=context.state.get("cfmd_slices")
    )
    context.state["students"] = choice
    return compose(candidates, choice["chosen"], context.layout)


def _run_ridge_method(context: MethodContext) -> np.ndarray:
    prediction = _run_ridge(context)
    context.state["ridge_prediction"] = prediction
    return prediction


def _check_poe_rna_only(context: MethodContext) -> None:
    mdata = context.mdata
    key = context.rna_only_key or f"{context.latent_key}_rna_only"
    if key not in mdata.obsm:
        raise InvalidInputError(
            f"mdata.obsm has no RNA-only posterior {key!r} for the PoE baseline; cfmd.tl.fit_latent writes it."
        )
    params = mdata.uns.get(context.latent_key, {})
    if isinstance(params, Mapping) and params.get("model") == "StructuredVAE" and not params.get("split_key"):
        raise InvalidInputError(
            f"The StructuredVAE behind .obsm[{context.latent_key!r}] was trained on every patient (no split), so its "
            "RNA-only posterior has seen the test patients' other modalities: an optimistic PoE baseline. Run "
            "cfmd.tl.split_patients before cfmd.tl.fit_latent, or leave 'poe_rna_only' out of `methods`."
        )


def _run_poe_rna_only(context: MethodContext) -> np.ndarray:
    _check_poe_rna_only(context)
    return np.asarray(context.mdata.obsm[context.rna_only_key or f"{context.latent_key}_rna_only"], dtype=np.float32)


def _run_zero_mask(context: MethodContext) -> np.ndarray:
    return np.zeros((context.mdata.n_obs, context.layout.n_dims), dtype=np.float32)


#: Every available method, in the order the benchmark runs them (``matched_mlp`` needs ``cfmd`` first).
METHODS: dict[str, ImputationMethod] = {
    m.name: m
    for m in [
        ImputationMethod("zero_mask", "Zero-mask", "every missing slice set to 0", _run_zero_mask, imputes=False),
        ImputationMethod(
            "cfmd", "CFMD (Full)", "complementary foundation model distillation", _run_cfmd(), check=_check_teachers()
        ),
        ImputationMethod(
            "pesd",
            "PESD StudentEncoder",
            "high-capacity MLP (2 x 1,024) from RNA to the full latent on the global MSE",
            _run_latent_regressor("pesd"),
        ),
        ImputationMethod(
            "ridge",
            "Ridge Regression (RNA-only)",
            "ridge from standardised RNA to each slice, alpha by leave-one-out CV on the training patients",
            _run_ridge_method,
        ),
        ImputationMethod(
            "poe_rna_only",
            "PoE VAE (RNA-only)",
            "StructuredVAE RNA-only posterior",
            _run_poe_rna_only,
            check=_check_poe_rna_only,
        ),
        ImputationMethod(
            "matched_mlp",
            "Matched-Capacity MLP",
            "MLP from RNA with CFMD's trainable parameter count, no foundation-model inputs",
            _run_latent_regressor("matched"),
        ),
        ImputationMethod(
            "cfmd_no_esm",
            "CFMD (no ESM-2)",
            "residual slice from RNA instead",
            _run_cfmd(use_esm=False),
            check=_check_teachers(use_esm=False),
        ),
        ImputationMethod(
            "cfmd_no_geneformer",
            "CFMD (no Geneformer)",
            "pathway slice from RNA instead",
            _run_cfmd(use_geneformer=False),
            check=_check_teachers(use_geneformer=False),
        ),
        ImputationMethod(
            "cfmd_no_ortho", "CFMD (no Ortho Loss)", "orthogonality weight 0", _run_cfmd(ortho_weight=0.0)
        ),
        ImputationMethod(
            "cfmd_shared_trunk",
            "CFMD (dense shared trunk)",
            "one dense trunk over all inputs, no scatter isolation",
            _run_cfmd(architecture="shared_trunk"),
            check=_check_teachers(),
        ),
        ImputationMethod(
            "pointwise_meth_mlp",
            "Point-wise MLP (meth)",
            "3-layer, 256-unit MLP from TME-gene expression to the meth slice",
            _run_cfmd(layout="methylation_only", methylation_decoder="pointwise"),
        ),
        ImputationMethod(
            "cfmd_auto",
            "CFMD (students='auto')",
            "per slice the student (CFMD's or the ridge) with the higher validation R^2",
            _run_cfmd_auto,
            check=_check_teachers(),
        ),
    ]
}


def get_method(name: str) -> ImputationMethod:
    """The method called ``name`` (see :data:`METHODS`)."""
    if name not in METHODS:
        raise InvalidInputError(f"Unknown method {name!r}; available: {describe_examples(list(METHODS), limit=20)}.")
    return METHODS[name]


# ---------------------------------------------------------------------- generative imputers (seed 004)
def _register_generative() -> None:
    from ._generate import run_generative_method

    for name, label, description in (
        ("diffusion", "Latent diffusion (multi-condition)", "masked multi-condition DDPM over the latent, mean of 10"),
        ("coherent_denoising", "Coherent Denoising", "ensemble of single-condition DDPMs with consensus noise"),
    ):
        METHODS[name] = ImputationMethod(name, label, description, run_generative_method(name))


_register_generative()
