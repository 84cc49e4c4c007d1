"""LatentDiffusion: a conditional DDPM over part of the structured latent (Generative imputation, seed 004).

The target is one or more slices of the latent (or the slices a modality owns); the conditions are any subset
of: ``"rna"`` (standardised log-expression of all genes), ``"geneformer"`` (``mdata[rna].obsm[geneformer_key]``),
``"esm"`` (the expression-weighted ESM-2 structural fingerprint from ``mdata[rna].varm[gene_embedding_key]``),
``"cancer_type"`` (one-hot of ``mdata.obs[cancer_type_key]``) and other slices of the latent (by name). The noise
schedule, forward noising (``add_noise``) and reverse step are :class:`diffusers.DDPMScheduler`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass

from .._constants import DEFAULT_SEED, DIFFUSION_MAX_EPOCHS
from .._layout import LatentLayout
from .._logging import logger
from .._validation import InvalidInputError, check_positive_int, check_positive_number, describe_examples
from ._ddpm import fit_noise_network, sample_network
from ._io import SafeIOMixin
from ._latent_diffusion_module import LatentDiffusionModule
from ._latent_imputer import (
    GENEFORMER_KEY,
    LATENT_KEY,
    LatentImputerMixin,
    make_split,
    register_imputer_fields,
    resolve_layout,
    validate_imputer_setup,
)
from ._scvi_private import setup_args

__all__ = ["RESERVED_CONDITIONS", "LatentDiffusion", "resolve_target"]

#: Condition names that are not latent slices.
RESERVED_CONDITIONS = ("rna", "geneformer", "esm", "cancer_type")
RNA_COMPONENTS = None  # default width of the "rna" condition (None: every gene)


def resolve_target(mdata, latent_key: str, layout: LatentLayout, target: str | Sequence[str]) -> list[str]:
    """Slice names of ``target``: a slice, a list of slices, or a modality (its slices, from ``fit_latent``'s record).

    The modality -> slices map is ``mdata.uns[latent_key]["modality_slices"/"modality_names"]`` (written by
    :func:`cfmd.tl.fit_latent`), else :data:`cfmd.models.DEFAULT_MODALITIES`.
    """
    from ._structured_vae import DEFAULT_MODALITIES

    names = [target] if isinstance(target, str) else list(target)
    if not names:
        raise InvalidInputError("`target` must name at least one slice of the layout or a modality.")
    record = mdata.uns.get(latent_key, {}) if hasattr(mdata, "uns") else {}
    if isinstance(record, Mapping) and "modality_slices" in record:
        owners = dict(zip(map(str, record["modality_names"]), map(str, record["modality_slices"])))
    else:
        owners = {m: s for s, m in DEFAULT_MODALITIES.items()}
    out: list[str] = []
    for name in names:
        if name in layout:
            out.append(name)
        elif name in owners and owners[name] in layout:
            out += [s for m, s in owners.items() if m == name and s in layout]
        else:
            raise InvalidInputError(
                f"`target` {name!r} is neither a slice of the layout ({layout.names}) nor a modality owning one "
                f"({sorted(owners)})."
            )
    return list(dict.fromkeys(out))


class LatentDiffusion(SafeIOMixin, LatentImputerMixin, BaseModelClass):
    """Multi-condition DDPM imputing a target part of the structured latent (seed 004's multi-condition model).

    A missing condition's projection is zeroed (per patient: a patient without an observed latent has no slice
    conditions); training draws random condition masks, the empty set included, so one model serves every subset
    of conditions. Normalisation statistics come from the training patients only (patient-disjoint split as for
    :class:`~cfmd.models.CFMD`: :attr:`split_`); the seed fixes the split, initialisation, training and sampling.

    Training is a plain torch loop (:meth:`train`), not scvi-tools' ``TrainingPlan``: the early-stopping
    criterion is the MSE of *fully denoised* validation samples (T reverse steps per check, as in the seed),
    which is not a per-minibatch validation loss Lightning can aggregate.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    target
        A slice, a list of slices, or a modality (its slices; see :func:`resolve_target`).
    conditions
        Condition names: ``"rna"``, ``"geneformer"`` (needs ``geneformer_key`` at setup), ``"esm"`` (the
        expression-weighted ESM-2 structural fingerprint; needs ``gene_embedding_key`` at setup),
        ``"cancer_type"`` (needs ``cancer_type_key``) and/or other slices of the latent. Default: ``["rna"]`` plus
        the Geneformer embedding, the ESM-2 fingerprint and cancer type when registered.
    layout
        The latent's layout (default: stored next to the latent).
    rna_components
        Width of the ``"rna"`` condition: the first ``rna_components`` principal components of the standardised
        log-expression (PCA fitted on the training patients and stored with the model), or ``None`` for every gene.
        The seed conditions on low-dimensional (32-d) embeddings; a condition of hundreds of raw genes is learned
        poorly through the noise-prediction loss from a few hundred patients (``benchmarks/generative_diagnosis.py``).
    n_hidden, n_layers, time_embedding_dim, condition_embedding_dim
        Noise-network widths (the seed's grid: hidden 256-1024, 4-7 layers, time 64/128, condition 8-32).
    num_train_timesteps, beta_schedule, beta_start, beta_end, variance_type
        :class:`diffusers.DDPMScheduler` settings (the seed: T = 1000, linear 1e-4 -> 0.02, sigma_t^2 = beta_t).
    clip_denoised
        Clip each reverse step's ``x_0`` estimate to the training targets' per-dimension range (``diffusers``'
        ``clip_sample`` with a data-derived range). It keeps a poorly fitting noise network from driving samples to
        hundreds of standard deviations; ``False`` is the seed's unclipped step.
    fingerprint_tau
        Temperature of the ``"esm"`` condition's fingerprint (as :func:`cfmd.pp.structural_fingerprint`'s ``tau``).
    split_key, split_fractions, seed
        As for :class:`~cfmd.models.CFMD`.
    """

    _module_cls = LatentDiffusionModule
    _saved_attributes = ("layout",)
    _ensemble = False

    def __init__(
        self,
        mdata: MuData,
        *,
        target: str | Sequence[str] = "meth",
        conditions: Sequence[str] | None = None,
        layout: LatentLayout | Mapping | None = None,
        rna_components: int | None = RNA_COMPONENTS,
        n_hidden: int = 256,
        n_layers: int = 3,
        time_embedding_dim: int = 64,
        condition_embedding_dim: int = 16,
        num_train_timesteps: int = 1000,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear",
        beta_start: float | None = None,
        beta_end: float | None = None,
        variance_type: Literal["fixed_small", "fixed_large"] = "fixed_large",
        clip_denoised: bool = True,
        fingerprint_tau: float = 1.0,
        split_key: str | None = "cfmd_split",
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__(mdata)
        args = setup_args(self)
        latent_key = args["latent_key"]
        layout_obj = resolve_layout(mdata, latent_key, layout)
        target_slices = resolve_target(mdata, latent_key, layout_obj, target)
        for name, value in (("n_hidden", n_hidden), ("n_layers", n_layers), ("time_embedding_dim", time_embedding_dim),
                            ("condition_embedding_dim", condition_embedding_dim),
                            ("num_train_timesteps", num_train_timesteps)):  # fmt: skip
            check_positive_int(value, name)
        if rna_components is not None:
            check_positive_int(rna_components, "rna_components")
        if conditions is None:
            conditions = ["rna"] + (["geneformer"] if args.get("geneformer_key") else [])
            conditions += ["esm"] if args.get("gene_embedding_key") else []
            if args.get("cancer_type_key") and args["cancer_type_key"] in mdata.obs:
                conditions.append("cancer_type")
        if not isinstance(clip_denoised, bool | np.bool_):
            raise InvalidInputError(f"`clip_denoised` must be True or False; got {clip_denoised!r}.")
        check_positive_number(fingerprint_tau, "fingerprint_tau")
        specs = self._condition_specs(mdata, layout_obj, target_slices, conditions, args, rna_components)
        if self._ensemble and len(specs) < 1:
            raise InvalidInputError("`conditions` must name at least one condition for a Coherent Denoising ensemble.")
        categories = []
        if any(c["kind"] == "cancer_type" for c in specs):
            categories = next(c["categories"] for c in specs if c["kind"] == "cancer_type")
        self._module_kwargs = {
            "layout": layout_obj,
            "target_slices": target_slices,
            "conditions": [{k: c[k] for k in ("name", "kind", "dim")} for c in specs],
            "n_genes": mdata.mod[args["rna_key"]].n_vars,
            "rna_scale": args["rna_scale"],
            "rna_components": next((c["dim"] for c in specs if c["kind"] == "rna"), None) if rna_components else None,
            "cancer_categories": categories,
            **self._esm_table(mdata, specs, args),
            "fingerprint_tau": float(fingerprint_tau),
            "ensemble": self._ensemble,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "time_embedding_dim": time_embedding_dim,
            "condition_embedding_dim": condition_embedding_dim,
            "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule,
            "beta_start": beta_start,
            "beta_end": beta_end,
            "variance_type": variance_type,
            "clip_denoised": clip_denoised,
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.module = LatentDiffusionModule(**self._module_kwargs)
        self.layout = layout_obj
        self.seed_ = int(seed)
        self.split_ = make_split(mdata, latent_key, split_key, split_fractions, seed)
        self.history_ = {}
        self._model_summary_string = (
            f"{type(self).__name__}: DDPM (T={num_train_timesteps}) over slices {target_slices} conditioned on "
            f"{[c['name'] for c in specs]}"
        )
        layout = layout_obj.to_dict()
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(cls, adata, **kwargs):
        """Not supported: use :meth:`setup_mudata`."""
        raise NotImplementedError(f"{cls.__name__} works on MuData; use `{cls.__name__}.setup_mudata(mdata, ...)`.")

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        latent_key: str = "X_structured",
        rna_key: str = "rna",
        rna_layer: str | None = None,
        rna_scale: Literal["counts", "log2", "zscore"] = "counts",
        geneformer_key: str | None = None,
        gene_embedding_key: str | None = None,
        cancer_type_key: str | None = "cancer_type",
        **kwargs,
    ) -> None:
        """Register RNA, the latent and optional teacher embeddings (validated first; nothing changes on error).

        Parameters
        ----------
        mdata
            MuData with RNA for every patient.
        latent_key
            ``mdata.obsm`` key of the latent (NaN rows: not observed).
        rna_key, rna_layer, rna_scale
            The RNA modality, its layer and declared scale.
        geneformer_key
            ``mdata[rna_key].obsm`` key of the Geneformer embedding (the ``"geneformer"`` condition), or None.
        gene_embedding_key
            ``mdata[rna_key].varm`` key of the per-gene ESM-2 embeddings (:func:`cfmd.pp.esm_gene_embeddings`;
            genes with a non-finite row have none) from which the ``"esm"`` condition, the expression-weighted
            structural fingerprint, is computed; or None.
        cancer_type_key
            ``mdata.obs`` column of the cancer type (the ``"cancer_type"`` condition), or None.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        validate_imputer_setup(
            mdata,
            latent_key=latent_key,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            geneformer_key=geneformer_key,
            gene_embedding_key=gene_embedding_key,
        )
        if (
            gene_embedding_key is not None
            and not np.isfinite(np.asarray(mdata.mod[rna_key].varm[gene_embedding_key], dtype=float)).all(axis=1).any()
        ):
            raise InvalidInputError(
                f"mdata[{rna_key!r}].varm[{gene_embedding_key!r}] has no gene with a finite embedding (the 'esm' "
                "condition needs some)."
            )
        if cancer_type_key is not None and not isinstance(cancer_type_key, str):
            raise InvalidInputError(f"`cancer_type_key` must be a column name or None; got {cancer_type_key!r}.")
        setup_method_args = cls._get_setup_method_args(**locals())
        register_imputer_fields(
            cls,
            mdata,
            setup_method_args,
            latent_key=latent_key,
            rna_key=rna_key,
            rna_layer=rna_layer,
            rna_scale=rna_scale,
            geneformer_key=geneformer_key,
            **kwargs,
        )

    @staticmethod
    def _condition_specs(mdata, layout, target_slices, conditions, args, rna_components=None) -> list[dict]:
        if isinstance(conditions, str) or not isinstance(conditions, Sequence):
            raise InvalidInputError(f"`conditions` must be a list of condition names; got {conditions!r}.")
        conditions = list(conditions)
        if len(set(conditions)) != len(conditions):
            raise InvalidInputError(f"`conditions` has duplicates: {conditions}.")
        specs = []
        for name in conditions:
            if name == "rna":
                n_genes = mdata.mod[args["rna_key"]].n_vars
                dim = n_genes if rna_components is None else min(int(rna_components), n_genes)
                specs.append({"name": name, "kind": "rna", "dim": dim})
            elif name == "geneformer":
                if not args.get("geneformer_key"):
                    raise InvalidInputError(
                        "Condition 'geneformer' needs `geneformer_key` in setup_mudata (the Geneformer embedding)."
                    )
                dim = np.shape(mdata.mod[args["rna_key"]].obsm[args["geneformer_key"]])[1]
                specs.append({"name": name, "kind": "geneformer", "dim": int(dim)})
            elif name == "esm":
                if not args.get("gene_embedding_key"):
                    raise InvalidInputError(
                        "Condition 'esm' needs `gene_embedding_key` in setup_mudata (the per-gene ESM-2 embeddings "
                        "in mdata[rna_key].varm; see cfmd.pp.esm_gene_embeddings)."
                    )
                dim = np.shape(mdata.mod[args["rna_key"]].varm[args["gene_embedding_key"]])[1]
                specs.append({"name": name, "kind": "esm", "dim": int(dim)})
            elif name == "cancer_type":
                key = args.get("cancer_type_key")
                if not key or key not in mdata.obs:
                    raise InvalidInputError(
                        f"Condition 'cancer_type' needs the mdata.obs column `cancer_type_key` ({key!r}); "
                        f"mdata.obs has {describe_examples(list(mdata.obs))}."
                    )
                labels = mdata.obs[key]
                categories = sorted({str(v) for v in labels[labels.notna()]})
                specs.append({"name": name, "kind": "cancer_type", "dim": len(categories), "categories": categories})
            elif name in layout:
                if name in target_slices:
                    raise InvalidInputError(f"Condition {name!r} is a target slice; a target cannot condition itself.")
                specs.append({"name": name, "kind": "slice", "dim": layout[name].dim})
            else:
                raise InvalidInputError(
                    f"Unknown condition {name!r}: expected one of {list(RESERVED_CONDITIONS)} or a slice of the "
                    f"layout ({layout.names})."
                )
        return specs

    @staticmethod
    def _esm_table(mdata, specs, args) -> dict:
        """Module kwargs of the ``"esm"`` condition: covered gene positions and their embeddings (or nothing)."""
        if not any(c["kind"] == "esm" for c in specs):
            return {}
        table = np.asarray(mdata.mod[args["rna_key"]].varm[args["gene_embedding_key"]], dtype=np.float32)
        genes = np.flatnonzero(np.isfinite(table).all(axis=1))
        return {"esm_genes": genes, "esm_embeddings": table[genes]}

    # ------------------------------------------------------------------ data
    @torch.no_grad()
    def _raw_inputs(self, mdata: MuData) -> dict:
        """Raw target and conditions of every patient of (registered) ``mdata``, with availability masks."""
        module = self.module
        loader = self._make_data_loader(adata=mdata, batch_size=1024, shuffle=False)
        xs, latents, gfs = [], [], []
        for tensors in loader:
            xs.append(tensors[REGISTRY_KEYS.X_KEY].float())
            if LATENT_KEY in tensors:
                latents.append(tensors[LATENT_KEY].float())
            if GENEFORMER_KEY in tensors:
                gfs.append(tensors[GENEFORMER_KEY].float())
        x = torch.cat(xs)
        n = x.shape[0]
        width = module.layout.n_dims
        latent = torch.cat(latents) if latents else torch.full((n, width), float("nan"))
        if latent.shape[1] != width:
            latent = torch.full((n, width), float("nan"))
        target_index = torch.as_tensor(module.target_index)
        target = latent[:, target_index]
        raw = {"x": x, "target": target, "observed": torch.isfinite(target).all(1), "conditions": {}, "masks": {}}
        args = setup_args(self)
        for c in module.conditions:
            name, kind = c["name"], c["kind"]
            if kind == "rna":
                value, mask = x, torch.ones(n)
            elif kind == "geneformer":
                value, mask = torch.cat(gfs), torch.ones(n)
            elif kind == "esm":
                value, mask = module.esm_fingerprint(x), torch.ones(n)
            elif kind == "cancer_type":
                key = args.get("cancer_type_key")
                labels = mdata.obs[key].astype(object).to_numpy() if key in mdata.obs else np.full(n, None)
                codes = {cat: i for i, cat in enumerate(module.cancer_categories)}
                idx = np.array([codes.get(str(v), -1) if v == v and v is not None else -1 for v in labels])
                value = torch.zeros(n, len(codes))
                known = idx >= 0
                value[np.flatnonzero(known), idx[known]] = 1.0
                mask = torch.as_tensor(known, dtype=torch.float32)
                if (~known).any() and known.any():
                    logger.info(
                        "%d patient(s) have no known cancer type: that condition is masked.", int((~known).sum())
                    )
            else:
                value = latent[:, module.layout[name].as_slice]
                mask = torch.isfinite(value).all(1).float()
                value = torch.nan_to_num(value)
            raw["conditions"][name], raw["masks"][name] = value, mask
        return raw

    def _prepared(self, mdata: MuData, rows: np.ndarray | None = None) -> dict:
        raw = self._raw_inputs(mdata)
        if rows is not None:
            rows_t = torch.as_tensor(rows, dtype=torch.long)
            raw = {
                "x": raw["x"][rows_t],
                "target": raw["target"][rows_t],
                "observed": raw["observed"][rows_t],
                "conditions": {k: v[rows_t] for k, v in raw["conditions"].items()},
                "masks": {k: v[rows_t] for k, v in raw["masks"].items()},
            }
        return raw

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int = DIFFUSION_MAX_EPOCHS,
        *,
        batch_size: int = 64,
        lr: float = 1e-3,
        validate_every: int = 10,
        early_stopping_patience: int = 5,
        num_inference_steps: int | None = None,
        random_masks: bool | None = None,
    ) -> None:
        """Train on the training split; early stopping on the MSE of fully denoised validation samples.

        Parameters
        ----------
        max_epochs
            Maximum epochs (the seed: up to 20,000); early stopping decides. The default (2000) leaves room:
            capped at 300 epochs, the multi-condition model on TCGA-LIHC was still improving (R^2 of the mean of 10
            on meth from RNA 0.26 capped vs 0.40, ``benchmarks/results/generative_table.md``).
        batch_size, lr
            Adam minibatch size and learning rate (the seed's grid: 64/128, 1e-4/1e-3).
        validate_every
            Epochs between validation checks (each fully denoises the validation patients).
        early_stopping_patience
            Validation checks without improvement before stopping; the best state is restored.
        num_inference_steps
            Reverse steps of the validation denoising (default: all T).
        random_masks
            Train with random condition masks (default: when there are several conditions).
        """
        check_positive_int(max_epochs, "max_epochs")
        check_positive_int(batch_size, "batch_size")
        check_positive_int(validate_every, "validate_every")
        check_positive_int(early_stopping_patience, "early_stopping_patience")
        if batch_size < 2:
            raise InvalidInputError("`batch_size` must be at least 2 (the noise network uses BatchNorm).")
        indices = self.split_indices()
        k = self.module.rna_components
        if k and len(indices["train"]) <= k:
            raise InvalidInputError(
                f"`rna_components={k}` needs more than {k} training patients; the training split has "
                f"{len(indices['train'])}. Lower `rna_components` or pass `rna_components=None` (every gene)."
            )
        train_raw = self._prepared(self.adata, indices["train"])
        self.module.fit_normalisation(train_raw)
        train = self.module.standardise(train_raw)
        validation = self.module.standardise(self._prepared(self.adata, indices["validation"]))
        steps = int(num_inference_steps or self.module.scheduler_config["num_train_timesteps"])
        options = {"max_epochs": max_epochs, "batch_size": batch_size, "lr": lr, "validate_every": validate_every,
                   "patience": early_stopping_patience, "num_inference_steps": steps}  # fmt: skip
        self._fit(train, validation, options, random_masks)
        self.is_trained_ = True
        self.module.eval()

    def _fit(self, train, validation, options, random_masks) -> None:
        network = self.module.network
        random = len(self.module.conditions) > 1 if random_masks is None else bool(random_masks)
        self.history_ = fit_noise_network(
            network,
            self.module.make_scheduler(),
            train,
            validation,
            seed=self.seed_,
            random_masks=random,
            x0_bounds=self.module.denoised_bounds(),
            **options,
        )
        logger.info(
            "LatentDiffusion: best validation MSE (denoised, standardised) %.4f at epoch %d.",
            self.history_["best_validation_mse"],
            self.history_["best_epoch"],
        )

    # ------------------------------------------------------------------ generation
    def _condition_subset(self, conditions: Sequence[str] | None) -> list[str]:
        names = [c["name"] for c in self.module.conditions]
        if conditions is None:
            return names
        unknown = [c for c in conditions if c not in names]
        if unknown:
            raise InvalidInputError(f"`conditions` {unknown} are not conditions of this model ({names}).")
        return list(conditions)

    @torch.no_grad()
    def generate(
        self,
        mdata: MuData | None = None,
        *,
        n_samples: int = 10,
        indices: Sequence[int] | None = None,
        conditions: Sequence[str] | None = None,
        seed: int = 0,
        num_inference_steps: int | None = None,
    ) -> np.ndarray:
        """``n_samples`` generations of the target slices for each patient, in latent units.

        Parameters
        ----------
        mdata
            MuData with RNA (genes matched by name; new RNA-only patients welcome). Default: the training data.
        n_samples
            Generations per patient.
        indices
            Patients (positions in ``mdata.obs``); default all.
        conditions
            Subset of the model's conditions to condition on (the others are masked); default all.
        seed
            Seed of the reverse process.
        num_inference_steps
            Reverse steps (default T).

        Returns
        -------
        ``(n_samples, n_patients, n_target_dims)`` array (target dims in the order of ``target_slices``).
        """
        return self._generate(mdata, n_samples, indices, conditions, seed, num_inference_steps)[0]

    def _inputs_for(self, mdata, indices, conditions):
        self._check_if_trained(warn=False)
        mdata = self._validate_deployment(self._deployment_data(mdata))
        rows = None if indices is None else np.asarray(indices, dtype=int)
        data = self.module.standardise(self._prepared(mdata, rows))
        use = self._condition_subset(conditions)
        for name in data["masks"]:
            if name not in use:
                data["masks"][name] = torch.zeros_like(data["masks"][name])
        return data

    def _generate(self, mdata, n_samples, indices, conditions, seed, num_inference_steps):
        check_positive_int(n_samples, "n_samples")
        data = self._inputs_for(mdata, indices, conditions)
        n_rows = data["target"].shape[0]
        steps = int(num_inference_steps or self.module.scheduler_config["num_train_timesteps"])
        samples, stats = self._sample(data, n_rows, int(n_samples), torch.Generator().manual_seed(int(seed)), steps)
        return self.module.to_latent_units(samples).numpy(), stats

    def _sample(self, data, n_rows, n_samples, generator, steps):
        out = sample_network(
            self.module.network,
            self.module.make_scheduler(),
            data["conditions"],
            data["masks"],
            n_rows=n_rows,
            n_samples=n_samples,
            generator=generator,
            num_inference_steps=steps,
            x0_bounds=self.module.denoised_bounds(),
        )
        return out, {}

    def training_variance(self) -> np.ndarray:
        """Per target dimension: the training patients' variance (latent units)."""
        return (self.module.target_stats.std**2).numpy()

    @torch.no_grad()
    def get_imputed_latent(
        self, mdata: MuData | None = None, *, indices: Sequence[int] | None = None, n_samples: int = 10, seed: int = 0
    ) -> np.ndarray:
        """Mean of ``n_samples`` generations in the target slices; the other slices are 0.

        Returns
        -------
        ``(n_patients, n_dims)`` array in latent units.
        """
        samples = self.generate(mdata, n_samples=n_samples, indices=indices, seed=seed)
        out = np.zeros((samples.shape[1], self.module.layout.n_dims), dtype=np.float32)
        out[:, self.module.target_index] = samples.mean(0)
        return out
