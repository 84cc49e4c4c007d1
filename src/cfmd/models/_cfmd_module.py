"""The torch module of :class:`cfmd.models.CFMD`: teachers' students written into their slices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import LossOutput, auto_move_data
from torch import nn

from .._expression import fingerprint_log_expression
from .._layout import LatentLayout
from .._validation import InvalidInputError
from ._latent_imputer import GENEFORMER_KEY, LATENT_KEY
from ._latent_imputer_module import LatentImputerModule
from .nn import (
    LearnedTemperatureFingerprint,
    PointwiseMethylationMLP,
    Projector,
    RegionalMethylationDecoder,
    ScatterAssignment,
    SharedTrunkImputer,
    expression_weighted_fingerprint,
    orthogonality_loss,
    slice_reconstruction_losses,
)

#: Keys of ``rmd_kwargs`` each methylation decoder accepts (``d_out`` and ``chromosomes`` are set by CFMD).
RMD_KWARGS = {
    "regional": (
        "d_gene", "d_model", "d_gene_hidden", "n_heads", "d_feedforward", "n_layers", "dropout",
        "shuffle_positions", "shuffle_seed", "gene_weights", "norm_first", "positional_embeddings",
    ),
    "pointwise": ("d_hidden", "n_layers", "dropout", "features"),
}  # fmt: skip


def check_rmd_kwargs(rmd_kwargs, methylation_decoder: str) -> dict:
    """Validate ``rmd_kwargs`` against the keys ``methylation_decoder`` accepts; return them as a dict.

    Raises
    ------
    InvalidInputError
        ``rmd_kwargs`` is not a mapping or has a key the decoder does not accept (named, with the allowed keys).
    """
    if rmd_kwargs is None:
        return {}
    if not isinstance(rmd_kwargs, Mapping):
        raise InvalidInputError(f"`rmd_kwargs` must be a mapping (dict) of keyword arguments; got {rmd_kwargs!r}.")
    allowed = RMD_KWARGS.get(methylation_decoder, ())
    unknown = [key for key in rmd_kwargs if key not in allowed]
    if unknown:
        raise InvalidInputError(
            f"`rmd_kwargs` has unknown key(s) {unknown} for methylation_decoder={methylation_decoder!r}; "
            f"allowed keys: {list(allowed)}."
        )
    return dict(rmd_kwargs)


@dataclass(frozen=True)
class Student:
    """One student network of :class:`CFMDModule`: what it writes, where it lives and what it reads.

    Attributes
    ----------
    strategy
        The layout strategy whose slices it writes (``"rna"``, ``"geneformer"``, ``"esm"``,
        ``"regional_methylation"``).
    attribute
        The module attribute holding its network (also the prefix of its parameters in a saved state dict).
    source
        Its input: ``"rna_signature"`` (standardised expression of ``rna_head_genes``), ``"geneformer"``
        (standardised Geneformer embedding), ``"fingerprint"`` (standardised structural fingerprint), ``"rna"``
        (standardised expression of every gene; a switched-off teacher's fill) or ``"tme_genes"`` (standardised
        expression of the TME genes).
    """

    strategy: str
    attribute: str
    source: str


class CFMDModule(LatentImputerModule):
    """Complementary Foundation Model Distillation into a structured latent (paper, Section 3).

    Each non-``zero`` slice of the layout is produced by the student of its strategy and written into its
    index range of a detached zero latent (:class:`~cfmd.models.nn.ScatterAssignment`):

    ``rna``
        a linear head on the standardised expression of ``rna_head_genes`` (the proliferation signature);
    ``geneformer``
        projector P_G on the (standardised) Geneformer sample embedding;
    ``esm``
        projector P_E on the expression-weighted structural fingerprint with learned temperature;
    ``regional_methylation``
        the Regional Methylation Decoder on the TME genes' standardised expression.

    With a teacher switched off (``use_geneformer=False`` / ``use_esm=False``) its slices are filled by a
    projector of the same shape fed with the standardised RNA expression (``ablation_fill="rna"``) or stay
    zero (``"zero"``). The students built are recorded, in the order they run, in :attr:`students`
    (:class:`Student` records; the forward pass runs exactly these). ``architecture="shared_trunk"`` replaces the
    isolated students by one dense MLP over all inputs (:class:`~cfmd.models.nn.SharedTrunkImputer`, the ablation
    without gradient isolation; :attr:`students` is then empty).

    Parameters
    ----------
    layout, n_genes, rna_scale
        As for :class:`~cfmd.models._latent_imputer_module.LatentImputerModule`.
    rna_head_genes
        Indices of the genes feeding ``rna`` slices.
    d_geneformer
        Width of the Geneformer embedding (0 when absent).
    esm_genes, esm_embeddings
        Indices of the genes with an ESM-2 embedding and their ``(n, d_e)`` embeddings.
    tme_genes, tme_chromosomes
        Indices of the TME genes and their chromosome indices (regional decoder).
    use_geneformer, use_esm, ablation_fill, architecture
        Ablation switches (see above).
    ortho_weight
        Weight of the orthogonality loss between P_G and P_E hidden layers.
    slice_weights
        Optional per-slice weights of the reconstruction loss.
    d_hidden, dropout
        Projector width (512 in the paper) and dropout (0.1).
    methylation_decoder
        ``"regional"`` (the Regional Methylation Decoder) or ``"pointwise"`` (the paper's point-wise MLP baseline on
        the same TME-gene inputs, :class:`~cfmd.models.nn.PointwiseMethylationMLP`).
    masked_chromosomes
        Chromosomes removed from the methylation decoder's input in training *and* prediction (the strict
        leave-one-chromosome-out audit); their positional embeddings are ablated.
    rmd_kwargs
        Keyword arguments of the methylation decoder (e.g. ``d_model``, ``shuffle_positions`` for the LOCO
        negative control, the variants ``gene_weights`` / ``norm_first``); keys are checked against
        :data:`RMD_KWARGS` (an unknown key is an :class:`~cfmd._validation.InvalidInputError`).
    """

    def __init__(
        self,
        *,
        layout: LatentLayout,
        n_genes: int,
        rna_scale: str,
        rna_head_genes: np.ndarray,
        d_geneformer: int,
        esm_genes: np.ndarray,
        esm_embeddings: np.ndarray | None,
        tme_genes: np.ndarray,
        tme_chromosomes: np.ndarray,
        use_geneformer: bool = True,
        use_esm: bool = True,
        ablation_fill: str = "rna",
        architecture: str = "scatter",
        ortho_weight: float = 1.0,
        slice_weights: dict[str, float] | None = None,
        d_hidden: int = 512,
        dropout: float = 0.1,
        methylation_decoder: str = "regional",
        masked_chromosomes: Sequence[str] | None = None,
        rmd_kwargs: dict | None = None,
    ) -> None:
        super().__init__(layout=layout, n_genes=n_genes, rna_scale=rna_scale)
        self.methylation_decoder = methylation_decoder
        self.masked_chromosomes = list(masked_chromosomes) if masked_chromosomes else None
        self.use_geneformer, self.use_esm = use_geneformer, use_esm
        self.ablation_fill, self.architecture = ablation_fill, architecture
        self.ortho_weight = float(ortho_weight)
        self.slice_weights = dict(slice_weights or {})

        # teacher-input statistics, set from the training split with the base's (buffers -> saved with the model)
        self.register_buffer("geneformer_mean", torch.zeros(max(d_geneformer, 1)))
        self.register_buffer("geneformer_std", torch.ones(max(d_geneformer, 1)))
        d_e = 0 if esm_embeddings is None else int(esm_embeddings.shape[1])
        self.register_buffer("fingerprint_mean", torch.zeros(max(d_e, 1)))
        self.register_buffer("fingerprint_std", torch.ones(max(d_e, 1)))
        self.register_buffer("rna_head_genes", torch.as_tensor(np.asarray(rna_head_genes), dtype=torch.long))
        self.register_buffer("esm_genes", torch.as_tensor(np.asarray(esm_genes), dtype=torch.long))
        self.register_buffer("tme_genes", torch.as_tensor(np.asarray(tme_genes), dtype=torch.long))

        by_strategy: dict[str, list[str]] = {}
        for s in layout:
            by_strategy.setdefault(s.strategy, []).append(s.name)
        self.slices_by_strategy = by_strategy
        self.assigned_slices = [s.name for s in layout if s.strategy != "zero"]
        self.fingerprint = LearnedTemperatureFingerprint(esm_embeddings) if d_e else None

        def width(strategy: str) -> int:
            return sum(layout[name].dim for name in by_strategy.get(strategy, []))

        if architecture == "shared_trunk":
            inputs = {"rna": n_genes}
            if use_geneformer and d_geneformer:
                inputs["geneformer"] = d_geneformer
            if use_esm and d_e:
                inputs["fingerprint"] = d_e
            self.trunk = SharedTrunkImputer(layout, inputs, d_hidden=d_hidden, dropout=dropout)
            self.students = ()
            return

        self.scatter = ScatterAssignment(self._effective_layout())
        # the students, in the order they are built and run (the order fixes the random initialisation and the
        # dropout draws); each is a submodule under the attribute named by its Student (its state-dict prefix)
        students: list[Student] = []
        if width("rna"):
            self.rna_head = nn.Linear(len(rna_head_genes), width("rna"))
            students.append(Student("rna", "rna_head", "rna_signature"))
        if width("geneformer") and (use_geneformer or ablation_fill == "rna"):
            d_in = d_geneformer if use_geneformer else n_genes
            self.projector_geneformer = Projector(d_in, width("geneformer"), d_hidden=d_hidden, dropout=dropout)
            students.append(Student("geneformer", "projector_geneformer", "geneformer" if use_geneformer else "rna"))
        if width("esm") and (use_esm or ablation_fill == "rna"):
            d_in = d_e if use_esm else n_genes
            self.projector_esm = Projector(d_in, width("esm"), d_hidden=d_hidden, dropout=dropout)
            students.append(Student("esm", "projector_esm", "fingerprint" if use_esm else "rna"))
        if width("regional_methylation"):
            kwargs = {"dropout": dropout, **check_rmd_kwargs(rmd_kwargs, methylation_decoder)}
            if methylation_decoder == "regional":
                self.regional_methylation_decoder = RegionalMethylationDecoder(
                    np.asarray(tme_chromosomes), d_out=width("regional_methylation"), **kwargs
                )
                students.append(Student("regional_methylation", "regional_methylation_decoder", "tme_genes"))
            else:
                self.pointwise_methylation_mlp = PointwiseMethylationMLP(
                    np.asarray(tme_chromosomes), d_out=width("regional_methylation"), **kwargs
                )
                students.append(Student("regional_methylation", "pointwise_methylation_mlp", "tme_genes"))
        self.students: tuple[Student, ...] = tuple(students)

    def _effective_layout(self) -> LatentLayout:
        """The layout with ablated-to-zero slices marked ``zero`` (so scatter assignment leaves them at 0)."""
        changes = {}
        if self.ablation_fill == "zero":
            if not self.use_geneformer:
                changes.update(dict.fromkeys(self.slices_by_strategy.get("geneformer", []), "zero"))
            if not self.use_esm:
                changes.update(dict.fromkeys(self.slices_by_strategy.get("esm", []), "zero"))
        return self.layout.replace_strategies(**changes) if changes else self.layout

    @property
    def assignment(self) -> ScatterAssignment:
        """The scatter assignment that places predictions into the latent."""
        return self.trunk.scatter if self.architecture == "shared_trunk" else self.scatter

    def student_network(self, student: Student) -> nn.Module:
        """The submodule of ``student`` (one of :attr:`students`)."""
        return self.get_submodule(student.attribute)

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch to a regional methylation decoder (its per-epoch positional shuffling)."""
        for student in self.students:
            network = self.student_network(student)
            if isinstance(network, RegionalMethylationDecoder):
                network.set_epoch(epoch)

    # ------------------------------------------------------------------ inputs
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY], "geneformer": tensors.get(GENEFORMER_KEY)}

    def fingerprint_input(self, x: torch.Tensor) -> torch.Tensor:
        r"""The paper's :math:`\log_2(x + 1)` over the ESM-covered genes (values as given for log scales)."""
        return fingerprint_log_expression(x[:, self.esm_genes], self.rna_scale)

    def _split_output(self, output: torch.Tensor, strategy: str) -> dict[str, torch.Tensor]:
        return self.split_by_slice(output, self.slices_by_strategy.get(strategy, []))

    # ------------------------------------------------------------------ forward
    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        geneformer: torch.Tensor | None = None,
        *,
        masked_chromosomes: Sequence[int | str] | None = None,
    ) -> dict:
        """Predict the (standardised) latent.

        Parameters
        ----------
        x
            ``(batch, n_genes)`` RNA as registered.
        geneformer
            ``(batch, d)`` Geneformer embedding (needed when ``use_geneformer``).
        masked_chromosomes
            Chromosomes removed from the methylation decoder's input (default: those given at construction).

        Returns
        -------
        ``z`` (standardised latent, zero in zero slices), ``hidden`` (P_G / P_E penultimate layers),
        ``effective_genes`` (H of the fingerprint) and ``tau``.
        """
        standardised = self.standardised_expression(x)
        out: dict[str, torch.Tensor] = {}
        hidden: dict[str, torch.Tensor] = {}
        extras: dict[str, torch.Tensor] = {}
        fingerprint = None
        if self.fingerprint is not None and self.use_esm:
            fingerprint, effective = self.fingerprint(self.fingerprint_input(x))
            fingerprint = (fingerprint - self.fingerprint_mean) / self.fingerprint_std
            extras["effective_genes"] = effective
            extras["tau"] = self.fingerprint.tau
        gf = None
        if geneformer is not None and self.use_geneformer:
            gf = (geneformer - self.geneformer_mean) / self.geneformer_std

        if self.architecture == "shared_trunk":
            inputs = {"rna": standardised}
            if "geneformer" in self.trunk.input_dims:
                inputs["geneformer"] = gf
            if "fingerprint" in self.trunk.input_dims:
                inputs["fingerprint"] = fingerprint
            return {"z": self.trunk(inputs), "hidden": hidden, **extras}

        if masked_chromosomes is None:
            masked_chromosomes = self.masked_chromosomes
        sources = {
            "rna": standardised,
            "rna_signature": standardised[:, self.rna_head_genes],
            "tme_genes": standardised[:, self.tme_genes],
            "geneformer": gf,
            "fingerprint": fingerprint,
        }
        for student in self.students:
            network = self.student_network(student)
            source = sources[student.source]
            if student.strategy == "regional_methylation":
                pred = network(source, masked_chromosomes=masked_chromosomes)
            elif student.strategy == "rna":
                pred = network(source)
            else:  # the teachers' projectors also return their penultimate layer (for the orthogonality loss)
                pred, hidden[student.strategy] = network(source)
            out.update(self._split_output(pred, student.strategy))
        out = {name: value for name, value in out.items() if name in self.scatter.assigned_slices}
        return {"z": self.scatter(out), "hidden": hidden, **extras}

    @torch.no_grad()
    def fit_normalisation(self, x: torch.Tensor, latent: torch.Tensor, geneformer: torch.Tensor | None) -> None:
        """Set every normalisation statistic from the training patients' data: the base's, then the teachers'."""
        super().fit_normalisation(x, latent, geneformer)
        if geneformer is not None and self.use_geneformer and geneformer.shape[1] == self.geneformer_mean.shape[0]:
            self.geneformer_mean.copy_(geneformer.mean(0))
            self.geneformer_std.copy_(geneformer.std(0).clamp_min(1e-6))
        if self.fingerprint is not None and self.use_esm:
            fp, _ = expression_weighted_fingerprint(self.fingerprint_input(x), self.fingerprint.gene_embeddings, 1.0)
            self.fingerprint_mean.copy_(fp.mean(0))
            self.fingerprint_std.copy_(fp.std(0).clamp_min(1e-6))

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict, **kwargs) -> LossOutput:
        """Per-slice MSE on the standardised latent plus the weighted orthogonality loss."""
        target = self.standardised_latent(tensors[LATENT_KEY])
        observed = torch.isfinite(target).all(dim=1)
        z = inference_outputs["z"][observed]
        target = target[observed]
        slices = self.predicted_slices
        weights = {k: v for k, v in self.slice_weights.items() if k in slices}
        total, per_slice = slice_reconstruction_losses(z, target, self.layout, slices=slices, weights=weights)
        metrics = {f"mse_{name}": value.detach() for name, value in per_slice.items()}
        hidden = inference_outputs["hidden"]
        if self.ortho_weight > 0 and "geneformer" in hidden and "esm" in hidden:
            ortho = orthogonality_loss(hidden["geneformer"][observed], hidden["esm"][observed])
            metrics["ortho"] = ortho.detach()
            total = total + self.ortho_weight * ortho
        if "tau" in inference_outputs:
            metrics["tau"] = inference_outputs["tau"].detach()
            metrics["effective_genes"] = inference_outputs["effective_genes"].mean().detach()
        per_obs = ((z - target) ** 2).mean(dim=1).detach()
        return LossOutput(
            loss=total,
            reconstruction_loss={"latent_mse": per_obs},
            extra_metrics=metrics,
            n_obs_minibatch=int(observed.sum()),
        )
