"""models._latent_imputer_module: the one base of the supervised imputers' torch modules."""

import numpy as np
import torch

from cfmd import LatentLayout
from cfmd._expression import log_normalise
from cfmd.models._cfmd_module import CFMDModule
from cfmd.models._latent_imputer_module import LatentImputerModule
from cfmd.models._latent_regressor import LatentRegressorModule

LAYOUT = LatentLayout.from_sizes({"a": (2, "rna"), "b": (3, "zero"), "c": (2, "rna")})


def _regressor():
    return LatentRegressorModule(
        layout=LAYOUT, n_genes=6, rna_scale="counts", predicted_slices=["a", "c"], n_hidden=4, n_layers=1
    )


def test_cfmd_and_latent_regressor_modules_share_the_base():
    assert issubclass(CFMDModule, LatentImputerModule) and issubclass(LatentRegressorModule, LatentImputerModule)
    for name in ("fit_normalisation", "to_latent_units", "standardised_expression", "predicted_slices"):
        assert name not in vars(LatentRegressorModule)


def test_normalisation_is_fitted_on_the_rows_given_and_latent_units_round_trip():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.poisson(4.0, size=(20, 6)), dtype=torch.float32)
    latent = torch.as_tensor(rng.normal(3.0, 2.0, size=(20, LAYOUT.n_dims)), dtype=torch.float32)
    module = _regressor()
    module.fit_normalisation(x, latent, None)
    log_expr = log_normalise(x, "counts")
    torch.testing.assert_close(module.gene_mean, log_expr.mean(0))
    torch.testing.assert_close(module.latent_std, latent.std(0))
    back = module.to_latent_units(module.standardised_latent(latent))
    predicted = LAYOUT.mask(["a", "c"])
    torch.testing.assert_close(back[:, predicted], latent[:, predicted])
    assert not back[:, ~predicted].any()  # slices the module does not write stay exactly 0
    assert module.predicted_slices == ["a", "c"]
    standardised = module.standardised_expression(x)
    torch.testing.assert_close(standardised.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
