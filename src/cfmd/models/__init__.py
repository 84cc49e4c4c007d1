"""scvi-tools models: StructuredVAE, CFMD and baselines."""

from ._cfmd import CFMD
from ._cfmd_module import CFMDModule
from ._coherent_denoising import CoherentDenoising
from ._latent_diffusion import LatentDiffusion
from ._latent_diffusion_module import LatentDiffusionModule
from ._latent_imputer import ImputerTrainingPlan, LatentImputerMixin
from ._latent_regressor import LatentRegressor, LatentRegressorModule, mlp_parameter_count, mlp_width_for_parameters
from ._structured_vae import DEFAULT_MODALITIES, StructuredVAE

__all__ = [
    "CFMD",
    "DEFAULT_MODALITIES",
    "CFMDModule",
    "CoherentDenoising",
    "ImputerTrainingPlan",
    "LatentImputerMixin",
    "LatentDiffusion",
    "LatentDiffusionModule",
    "LatentRegressor",
    "LatentRegressorModule",
    "StructuredVAE",
    "mlp_parameter_count",
    "mlp_width_for_parameters",
]
