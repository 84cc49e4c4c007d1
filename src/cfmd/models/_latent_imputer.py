"""What every supervised latent imputer shares (:class:`LatentImputerMixin`).

The patient split, training-split normalisation, the paper's training protocol and prediction in latent units.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from mudata import MuData
from scipy import sparse
from scvi import REGISTRY_KEYS
from scvi.data import fields
from scvi.train import TrainingPlan

from .._constants import DEFAULT_SPLIT_KEY, DEFAULT_STRATIFY_KEY, FITTED_SPLIT_LABELS
from .._expression import RNA_SCALES, check_expression_scale
from .._layout import LatentLayout, layout_uns_key
from .._logging import logger
from .._patient_split import stratified_split_labels
from .._utils import quiet_scvi_logging
from .._validation import (
    InvalidInputError,
    check_choice,
    check_modality,
    check_obsm,
    check_unique,
    describe_examples,
    get_matrix,
)
from ._scvi_private import SETUP_ARGS_KEY, setup_args, unpaired_validation
from ._unpaired import MuDataOptionalObsmField, UnpairedMuDataManager, align_to_global

GENEFORMER_KEY = "geneformer"
LATENT_KEY = "latent"


class ImputerTrainingPlan(TrainingPlan):
    """The paper's protocol: AdamW, linear warm-up then cosine annealing (stepped per epoch).

    Parameters
    ----------
    module
        The imputer's module (a :class:`~cfmd.models._latent_imputer_module.LatentImputerModule`).
    warmup_epochs
        Epochs of linear learning-rate warm-up before the cosine schedule.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``weight_decay``, ...).
    """

    def __init__(self, module, *, warmup_epochs: int = 10, **kwargs) -> None:
        kwargs.setdefault("optimizer", "AdamW")
        super().__init__(module, **kwargs)
        self.warmup_epochs = int(warmup_epochs)

    def configure_optimizers(self):
        """AdamW with a per-epoch warm-up + cosine schedule."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        max_epochs = max(int(self.trainer.max_epochs or 1), 1)
        warmup = min(self.warmup_epochs, max_epochs - 1)

        def factor(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(max_epochs - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_train_epoch_start(self) -> None:
        """Tell the module the epoch (a regional decoder's per-epoch positional shuffling)."""
        self.module.set_epoch(self.current_epoch)


class RestoreBestState(pl.Callback):
    """Keep the module state with the lowest validation loss and restore it when training ends."""

    def __init__(self, monitor: str = "validation_loss") -> None:
        self.monitor, self.best, self.state = monitor, math.inf, None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        """Remember the state if the monitored value improved."""
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best = float(value)
            self.state = copy.deepcopy(pl_module.module.state_dict())

    def on_train_end(self, trainer, pl_module) -> None:
        """Restore the best state."""
        if self.state is not None:
            pl_module.module.load_state_dict(self.state)


def validate_imputer_setup(
    mdata, *, latent_key, rna_key, rna_layer, rna_scale, geneformer_key=None, gene_embedding_key=None
) -> None:
    """All checks of an imputer's ``setup_mudata``, before anything is registered."""
    check_choice(rna_scale, "rna_scale", RNA_SCALES)
    rna = check_modality(mdata, rna_key)
    check_unique(mdata.obs_names, "mdata.obs_names")
    check_unique(rna.var_names, f"mdata[{rna_key!r}].var_names")
    missing = mdata.obs_names[~mdata.obs_names.isin(rna.obs_names)]
    if len(missing):
        raise InvalidInputError(
            f"Every patient needs RNA: {len(missing)} patient(s) are missing from mdata[{rna_key!r}] "
            f"({describe_examples(missing)})."
        )
    field = f"mdata[{rna_key!r}]" + (f".layers[{rna_layer!r}]" if rna_layer else ".X")
    check_expression_scale(get_matrix(rna, rna_layer, field=f"mdata[{rna_key!r}]"), rna_scale, field)
    latent = check_obsm(mdata, latent_key, field="mdata")
    infinite = np.isinf(latent).any(axis=1)
    if infinite.any():
        raise InvalidInputError(
            f"mdata.obsm[{latent_key!r}] has infinite values in {int(infinite.sum())} row(s) "
            f"({describe_examples(mdata.obs_names[infinite])}); use all-NaN rows for patients without a latent."
        )
    observed = np.isfinite(latent).all(axis=1)
    partial = ~observed & np.isfinite(latent).any(axis=1)
    if partial.any():
        raise InvalidInputError(
            f"mdata.obsm[{latent_key!r}] has {int(partial.sum())} row(s) with some but not all values NaN "
            f"({describe_examples(mdata.obs_names[partial])}); a patient's latent is either observed or all-NaN."
        )
    if not observed.any():
        raise InvalidInputError(f"mdata.obsm[{latent_key!r}] has no patient with an observed latent to train on.")
    if layout_uns_key(latent_key) in mdata.uns:
        LatentLayout.from_mudata(mdata, latent_key).check_width(latent.shape[1], field=f"mdata.obsm[{latent_key!r}]")
    if geneformer_key is not None:
        if geneformer_key not in rna.obsm:
            raise InvalidInputError(
                f"mdata[{rna_key!r}].obsm has no Geneformer embedding {geneformer_key!r} (available: "
                f"{describe_examples(list(rna.obsm.keys()))}); compute it with cfmd.pp.geneformer, or pass "
                "`geneformer_key=None` when no slice uses Geneformer."
            )
        gf = check_obsm(rna, geneformer_key, field=f"mdata[{rna_key!r}]")
        if not np.isfinite(gf).all():
            raise InvalidInputError(f"mdata[{rna_key!r}].obsm[{geneformer_key!r}] has NaN or infinite values.")
    if gene_embedding_key is not None:
        if gene_embedding_key not in rna.varm:
            raise InvalidInputError(
                f"mdata[{rna_key!r}].varm has no gene embedding {gene_embedding_key!r} (available: "
                f"{describe_examples(list(rna.varm.keys()))}); compute it with cfmd.pp.esm_gene_embeddings, or pass "
                "`gene_embedding_key=None` when no slice uses ESM-2."
            )
        table = np.asarray(rna.varm[gene_embedding_key])
        if table.ndim != 2 or np.isinf(table).any():
            raise InvalidInputError(f"mdata[{rna_key!r}].varm[{gene_embedding_key!r}] must be a finite 2-d table.")


def register_imputer_fields(
    cls, mdata, setup_method_args, *, latent_key, rna_key, rna_layer, rna_scale, geneformer_key, **kwargs
):
    """Register RNA, the (optional at prediction time) target latent and an optional Geneformer embedding."""
    mudata_fields = [
        fields.MuDataLayerField(
            REGISTRY_KEYS.X_KEY, rna_layer, mod_key=rna_key, is_count_data=rna_scale == "counts", mod_required=True
        ),
        MuDataOptionalObsmField(LATENT_KEY, latent_key),
    ]
    if geneformer_key is not None:
        mudata_fields.append(fields.MuDataObsmField(GENEFORMER_KEY, geneformer_key, mod_key=rna_key))
    manager = UnpairedMuDataManager(
        fields=mudata_fields,
        setup_method_args=setup_method_args,
        validation_checks=unpaired_validation(),
    )
    with quiet_scvi_logging():  # scvi-tools' INFO chatter stays out of cfmd's output (no global logger change)
        manager.register_fields(mdata, **kwargs)
    cls.register_manager(manager)


def resolve_layout(mdata, latent_key: str, layout) -> LatentLayout:
    """The layout given (object or dict) or stored next to ``mdata.obsm[latent_key]``, checked against its width."""
    if layout is None:
        layout = LatentLayout.from_mudata(mdata, latent_key)
    elif not isinstance(layout, LatentLayout):
        layout = LatentLayout.from_dict(layout)
    layout.check_width(mdata.obsm[latent_key].shape[1], field=f"mdata.obsm[{latent_key!r}]")
    return layout


def check_split_key(mdata, split_key) -> None:
    """A split key other than the default must name a column of ``mdata.obs`` (a typo is an error)."""
    if split_key is None or split_key == DEFAULT_SPLIT_KEY or split_key in mdata.obs:
        return
    raise InvalidInputError(
        f"`split_key` {split_key!r} is not a column of mdata.obs (columns: {describe_examples(list(mdata.obs))}); "
        f"pass an existing split column, {DEFAULT_SPLIT_KEY!r} (used when present, drawn otherwise) or None to draw "
        "a split."
    )


def make_split(mdata, latent_key, split_key, fractions, seed, *, log: bool = True) -> dict[str, np.ndarray]:
    """Patient-disjoint train / validation / test split (obs names) of the patients with an observed latent.

    ``split_key``: the default ``"cfmd_split"`` is used when it is a column of ``mdata.obs``, else a split is
    drawn; ``None`` draws a split; any other name must be a column of ``mdata.obs``. ``log``: log the split sizes
    (and whether the split was drawn) once.
    """
    check_split_key(mdata, split_key)
    observed = np.isfinite(np.asarray(mdata.obsm[latent_key])).all(axis=1)
    names = mdata.obs_names[observed]
    drawn = split_key is None or split_key not in mdata.obs
    if not drawn:
        labels = mdata.obs.loc[names, split_key].astype(str).to_numpy()
        split = {part: names[labels == part].to_numpy() for part in FITTED_SPLIT_LABELS}
        stray = names[~np.isin(labels, FITTED_SPLIT_LABELS)]
        if len(stray):
            raise InvalidInputError(
                f"mdata.obs[{split_key!r}] labels {len(stray)} patient(s) with an observed latent as neither train, "
                f"validation nor test ({describe_examples(stray)})."
            )
    else:
        fractions = np.asarray(fractions, dtype=float)
        if fractions.shape != (3,) or not np.isclose(fractions.sum(), 1.0) or (fractions < 0).any():
            raise InvalidInputError(f"`split_fractions` must be three fractions summing to 1; got {list(fractions)}.")
        if DEFAULT_STRATIFY_KEY in mdata.obs:
            strata = mdata.obs.loc[names, DEFAULT_STRATIFY_KEY].astype(str).to_numpy()
        else:
            strata = np.zeros(len(names), dtype=object)
        labels = stratified_split_labels(strata, fractions, seed)
        split = {part: np.array(sorted(names[labels == part]), dtype=object) for part in FITTED_SPLIT_LABELS}
    sizes = {k: len(v) for k, v in split.items()}
    if sizes["train"] < 8 or sizes["validation"] < 1 or sizes["test"] < 1:
        raise InvalidInputError(
            f"Too few patients with an observed latent to split: train {sizes['train']}, validation "
            f"{sizes['validation']}, test {sizes['test']} (need >= 8 training patients and at least one each for "
            "validation and test)."
        )
    if log:
        source = f"drawn with seed {int(seed)}" if drawn else f"from mdata.obs[{split_key!r}]"
        logger.info("Patient split (%s): %s.", source, ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return {k: np.asarray(v, dtype=object) for k, v in split.items()}


def _registered(source_registry, geneformer_key) -> set[str]:
    if source_registry is None:
        return {GENEFORMER_KEY} if geneformer_key is not None else set()
    return set(source_registry["field_registries"])


class LatentImputerMixin:
    """Training and prediction shared by :class:`~cfmd.models.CFMD` and :class:`~cfmd.models.LatentRegressor`.

    The model must define ``self.split_`` (``{"train"|"validation"|"test": obs names}``) and a module with
    ``fit_normalisation(x, latent, geneformer)``, ``inference(x, geneformer, ...)`` returning ``{"z": ...}``
    (standardised latent) and ``to_latent_units(z)``.
    """

    @classmethod
    def setup_anndata(cls, adata, **kwargs):
        """Not supported: a latent imputer needs a MuData (use :meth:`setup_mudata`)."""
        raise NotImplementedError(f"{cls.__name__} works on MuData; use `{cls.__name__}.setup_mudata(mdata, ...)`.")

    @classmethod
    def _setup_imputer(cls, mdata, setup_method_args, **kwargs) -> None:
        """What every ``setup_mudata`` does: validate everything (nothing changes on error), then register.

        The keys are read from ``setup_method_args`` (``cls._get_setup_method_args(**locals())``): ``latent_key``,
        ``rna_key``, ``rna_layer``, ``rna_scale`` and, where the model takes them, ``geneformer_key`` and
        ``gene_embedding_key``; ``kwargs`` go to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        args = setup_method_args[SETUP_ARGS_KEY]
        keys = {key: args[key] for key in ("latent_key", "rna_key", "rna_layer", "rna_scale")}
        geneformer_key = args.get("geneformer_key")
        validate_imputer_setup(
            mdata, **keys, geneformer_key=geneformer_key, gene_embedding_key=args.get("gene_embedding_key")
        )
        register_imputer_fields(cls, mdata, setup_method_args, **keys, geneformer_key=geneformer_key, **kwargs)

    def split_indices(self, mdata: MuData | None = None) -> dict[str, np.ndarray]:
        """Positions in ``mdata.obs`` of the stored train / validation / test patients."""
        mdata = self.adata if mdata is None else mdata
        return {name: np.sort(mdata.obs_names.get_indexer(ids)) for name, ids in self.split_.items()}

    def train(
        self,
        max_epochs: int = 200,
        *,
        batch_size: int = 64,
        lr: float = 3e-4,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 10,
        early_stopping: bool = True,
        early_stopping_patience: int = 40,
        accelerator: str = "auto",
        devices: int | str = "auto",
        plan_kwargs: Mapping | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train on the training split with the paper's protocol.

        Normalisation statistics are computed from the training patients only and stored in the module; the
        best state on the validation split is restored at the end.

        Parameters
        ----------
        max_epochs
            Maximum number of epochs (200 in the paper).
        batch_size
            Minibatch size (64).
        lr, weight_decay
            AdamW settings (3e-4, 1e-4).
        warmup_epochs
            Linear warm-up epochs before cosine annealing (10).
        early_stopping, early_stopping_patience
            Early stopping on the validation loss (patience 40).
        accelerator, devices
            Lightning settings (e.g. ``accelerator="gpu"``); ``strategy="ddp..."`` etc. go in ``trainer_kwargs``.
        plan_kwargs
            Extra keyword arguments of :class:`ImputerTrainingPlan`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` / Lightning.
        """
        indices = self.split_indices()
        fitted = np.concatenate([indices["train"], indices["validation"]])
        held_out = np.setdiff1d(np.arange(self.adata.n_obs), fitted)
        self._fit_normalisation(indices["train"])
        plan = {"lr": lr, "weight_decay": weight_decay, "warmup_epochs": warmup_epochs, **dict(plan_kwargs or {})}
        callbacks = [*trainer_kwargs.pop("callbacks", []), RestoreBestState()]
        super().train(
            max_epochs=max_epochs,
            batch_size=batch_size,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            early_stopping_monitor="validation_loss",
            early_stopping_patience=early_stopping_patience,
            check_val_every_n_epoch=1,
            # scvi-tools needs every patient in some subset: unlabelled ones ride with "test" (never used)
            datasplitter_kwargs={"external_indexing": [indices["train"], indices["validation"], held_out]},
            plan_kwargs=plan,
            callbacks=callbacks,
            **trainer_kwargs,
        )

    @torch.no_grad()
    def _fit_normalisation(self, train: np.ndarray) -> None:
        args = setup_args(self)
        mdata = self.adata
        X = align_to_global(mdata, args["rna_key"], self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY))[train]
        x = torch.as_tensor(X.toarray() if sparse.issparse(X) else np.asarray(X), dtype=torch.float32)
        latent = torch.as_tensor(np.asarray(mdata.obsm[args["latent_key"]])[train], dtype=torch.float32)
        geneformer = None
        if GENEFORMER_KEY in self.adata_manager.data_registry:
            geneformer = torch.as_tensor(
                self.adata_manager.get_from_registry(GENEFORMER_KEY)[train], dtype=torch.float32
            )
        self.module.fit_normalisation(x, latent, geneformer)

    @torch.inference_mode()
    def get_imputed_latent(
        self,
        mdata: MuData | None = None,
        *,
        indices: Sequence[int] | None = None,
        batch_size: int = 256,
        **inference_kwargs,
    ) -> np.ndarray:
        """Impute the latent of every patient from RNA (and teacher embeddings) alone.

        Parameters
        ----------
        mdata
            MuData with the same genes (default: the training data). The target latent may be absent.
        indices
            Patients (positions in ``mdata.obs``) to impute; default all.
        batch_size
            Minibatch size.
        **inference_kwargs
            Passed to the module's ``inference`` (e.g. ``masked_chromosomes`` for CFMD).

        Returns
        -------
        ``(n_patients, n_dims)`` imputed latent in the latent's units; slices the model does not write are 0.
        """
        self._check_if_trained(warn=False)
        mdata = self._validate_deployment(self._deployment_data(mdata))
        loader = self._make_data_loader(adata=mdata, indices=indices, batch_size=batch_size, shuffle=False)
        self.module.eval()
        out = []
        for tensors in loader:
            z = self.module.inference(**self.module._get_inference_input(tensors), **inference_kwargs)["z"]
            out.append(self.module.to_latent_units(z).cpu())
        return torch.cat(out).numpy()

    @classmethod
    def _register_fields(cls, mdata, setup_method_args, source_registry=None) -> None:
        """Register ``mdata`` (with the saved registry when loading; the latent may then be absent)."""
        args = setup_method_args[SETUP_ARGS_KEY]
        geneformer_key = args.get("geneformer_key")
        rna = mdata.mod[args["rna_key"]]
        if source_registry is not None and geneformer_key is not None and geneformer_key not in rna.obsm:
            raise InvalidInputError(
                f"mdata[{args['rna_key']!r}].obsm has no Geneformer embedding {geneformer_key!r}, an input of the "
                f"saved {cls.__name__} model (available: {describe_examples(list(rna.obsm.keys()))}); compute it with "
                "cfmd.pp.geneformer and the same checkpoint."
            )
        register_imputer_fields(
            cls,
            mdata,
            setup_method_args,
            latent_key=args["latent_key"],
            rna_key=args["rna_key"],
            rna_layer=args["rna_layer"],
            rna_scale=args["rna_scale"],
            geneformer_key=geneformer_key if GENEFORMER_KEY in _registered(source_registry, geneformer_key) else None,
            **({} if source_registry is None else {"source_registry": source_registry}),
        )

    @property
    def provenance(self) -> dict[str, str]:
        """Per slice: ``"imputed"`` (the model writes it) or ``"zero-masked"``."""
        written = set(self.module.predicted_slices)
        return {s.name: "imputed" if s.name in written else "zero-masked" for s in self.layout}
