"""Neural-network building blocks (plain :mod:`torch` modules) used by the models.

=========================================  ==========================================================
block                                      role (paper section)
=========================================  ==========================================================
:func:`expression_weighted_fingerprint`    ESM-2 structural fingerprint and effective genes (3.2)
:class:`LearnedTemperatureFingerprint`     the same with a learned temperature (3.2)
:class:`Projector`                         student projectors P_G / P_E (3.3, 8)
:class:`ScatterAssignment`                 gradient-isolated scatter assignment into the latent (3.3)
:func:`orthogonality_loss`                 cross-covariance penalty between P_G and P_E (3.3)
:func:`slice_reconstruction_losses`        per-slice MSE and their weighted sum
:class:`RegionalMethylationDecoder`        cross-attention decoder of the methylation slice (3.4)
:class:`PointwiseMethylationMLP`           point-wise methylation baseline (4.1, 4.2)
:class:`SharedTrunkImputer`                dense shared-trunk ablation without isolation (3.3)
:func:`chromosome_indices`                 per-gene chromosome labels -> region indices
:class:`ConditionalNoiseMLP`               DDPM noise network, masked condition projections (seed 004)
:class:`StackedNoiseTrunks`                several noise networks as one batched call (Coherent Denoising)
=========================================  ==========================================================
"""

from ._chromosomes import chromosome_indices
from ._fingerprint import expression_weighted_fingerprint
from ._learned_fingerprint import LearnedTemperatureFingerprint
from ._losses import orthogonality_loss, slice_reconstruction_losses
from ._noise_network import ConditionalNoiseMLP, StackedNoiseTrunks
from ._pointwise_methylation_mlp import PointwiseMethylationMLP
from ._projector import Projector
from ._regional_methylation_decoder import RegionalMethylationDecoder
from ._scatter_assignment import ScatterAssignment
from ._shared_trunk import SharedTrunkImputer

__all__ = [
    "ConditionalNoiseMLP",
    "StackedNoiseTrunks",
    "LearnedTemperatureFingerprint",
    "PointwiseMethylationMLP",
    "Projector",
    "RegionalMethylationDecoder",
    "ScatterAssignment",
    "SharedTrunkImputer",
    "chromosome_indices",
    "expression_weighted_fingerprint",
    "orthogonality_loss",
    "slice_reconstruction_losses",
]
